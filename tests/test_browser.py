"""End to end: a real `streamlit run` server driven by Debian's chromium through Playwright.

Visits every page, moves the budget slider, launches a short fine-tune on the demo data and waits
for it to finish, saving a screenshot of each page under test-artifacts/screenshots/.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = 300_000  # hang guard for a page to render or a run to finish; not a speed check

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = {**os.environ, "LAMDA_RUNS": str(tmp_path_factory.mktemp("runs")), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).status == 200:
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the streamlit server did not come up")
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        yield page
        browser.close()


def visit(page, url: str, path: str, ready_text: str, shot: str) -> None:
    page.goto(f"{url}/{path}")
    page.get_by_text(ready_text, exact=False).first.wait_for()
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)


def metric_text(page, label: str) -> str:
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).first.inner_text()


def test_every_page_renders(page, server):
    page.goto(server)
    page.locator('[data-testid="stDataFrame"] canvas').first.wait_for()  # the matrices-by-kind table
    visit(page, server, "", "Adaptable matrices", "1-home")
    assert "36" in metric_text(page, "Adaptable matrices")
    page.goto(f"{server}/Spectrum")
    page.locator('[data-testid="stPlotlyChart"]').nth(1).wait_for()  # the heatmap and the spectra
    visit(page, server, "Spectrum", "Download spectra (JSON)", "2-spectrum")
    visit(page, server, "Costs", "Measure on this machine", "4-costs")
    visit(page, server, "Runs", "No runs yet", "7-runs-empty")
    visit(page, server, "About_LaMDA", "About LaMDA", "8-about")
    assert not page.locator('[data-testid="stException"]').count()


def test_moving_the_budget_slider_updates_the_allocation(page, server):
    visit(page, server, "Rank_budget", "Total rank", "3-rank-budget")
    assert "288" in metric_text(page, "Total rank")
    slider = page.locator('input[type="range"][aria-label="Budget (total rank)"]')
    slider.first.focus()
    page.keyboard.press("End")  # the whole budget the bounds allow: 36 matrices x r_max 32
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')].some(m => m.innerText.includes('Total rank') && m.innerText.includes('1152'))")
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
    page.screenshot(path=str(ARTIFACTS / "3-rank-budget-moved.png"), full_page=True)


def test_launch_a_fine_tune_and_watch_it_finish(page, server):
    visit(page, server, "Fine_tune", "No run yet", "5-fine-tune-empty")
    steps = page.locator('[data-testid="stNumberInput"]').filter(has_text="Steps").locator("input")
    steps.fill("12")
    page.get_by_role("button", name="Start").click()
    page.get_by_text(": finished").wait_for()
    page.get_by_text("Download adapter (zip)").wait_for()
    page.screenshot(path=str(ARTIFACTS / "6-fine-tune-finished.png"), full_page=True)
    visit(page, server, "Runs", "Overlay runs", "7-runs")
    page.get_by_text("Run folder").wait_for()
