"""End to end: a real `streamlit run` server driven by Debian's chromium through Playwright.

Visits every page, moves the budget slider, launches a short fine-tune on the demo data and waits
for it to finish; then the flows users take: a model choice that must survive page switches and
reach the run, ranks handed from Rank budget to Costs and Fine-tune, uploads checked at once, two
runs at a time with Stop, a reload, Rank budget settings that follow r0 and stick, and a comparison
of methods launched in one click and followed on the Compare page. Saves a
screenshot of each page under test-artifacts/screenshots/.
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

from lamda_core.choices import DEFAULT_LAMDA_RANK

R0 = DEFAULT_LAMDA_RANK  # the Rank budget page's r0 starts at LaMDA's default rank

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = int(
    os.environ.get("LAMDA_TEST_WAIT_MS", 300_000)
)  # hang guard for a page to render or a run to finish; not a speed check

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian chromium is not installed (apt-get install chromium)"),
    pytest.mark.xdist_group("browser"),  # one worker, one server, the flows in order
    pytest.mark.heavy,
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """The server's runs folder; trainers still alive at the end (a failed test) are killed."""
    import json
    import signal

    folder = tmp_path_factory.mktemp("runs")
    yield folder
    for status in folder.glob("*/status.json"):
        pid = json.loads(status.read_text()).get("pid")
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except (TypeError, ValueError, OSError):
            pass


@pytest.fixture(scope="module")
def server(runs_dir):
    port = free_port()
    env = {**os.environ, "LAMDA_RUNS": str(runs_dir), "HF_HUB_OFFLINE": "1"}
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
        page.outside_requests = []  # anything fetched from beyond the local server (favicons, fonts, ...)
        page.on("request", lambda request: None if request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                else page.outside_requests.append(request.url))
        yield page
        browser.close()


def visit(page, url: str, path: str, ready_text: str, shot: str) -> None:
    page.goto(f"{url}/{path}")
    page.get_by_text(ready_text, exact=False).first.wait_for()
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)


def metric_text(page, label: str) -> str:
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).first.inner_text()


def test_a_bookmarked_page_opened_first_shows_the_apps_navigation(page, server):
    """The server's very first session opens a deep link: the sidebar must be the app's own
    navigation (a folder named pages/ would make Streamlit list its files, "app" included)."""
    page.goto(f"{server}/About_LaMDA")
    page.get_by_role("heading", name="About LaMDA").first.wait_for()
    settle(page)
    links = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()  # "<icon ligature>\n\n<title>"
    assert [link.split("\n")[-1].strip() for link in links] == [
        "Model",
        "Spectrum",
        "Rank budget",
        "Costs",
        "Fine-tune",
        "Runs",
        "Try & evaluate",
        "Compare",
        "About LaMDA",
    ], links


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
    assert str(36 * R0) in metric_text(page, "Total rank")  # 36 matrices x r0
    slider = page.locator('input[type="range"][aria-label="Budget (total rank)"]')
    slider.first.focus()
    page.keyboard.press("End")  # the whole budget the bounds allow: 36 matrices x r_max = 4 x r0
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
        ".some(m => m.innerText.includes('Total rank') && m.innerText.includes('%d'))"
        % (36 * 4 * R0)
    )
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
    page.screenshot(path=str(ARTIFACTS / "3-rank-budget-moved.png"), full_page=True)


def test_launch_a_fine_tune_and_watch_it_finish(page, server):
    visit(page, server, "Fine_tune", "No run yet", "5-fine-tune-empty")
    steps = page.locator('[data-testid="stNumberInput"]').filter(has_text="Steps").locator("input")
    steps.fill("12")
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_text(": finished").wait_for()
    page.get_by_text("Download adapter (zip)").wait_for()
    page.screenshot(path=str(ARTIFACTS / "6-fine-tune-finished.png"), full_page=True)
    visit(page, server, "Runs", "Overlay runs", "7-runs")
    page.get_by_text("Run folder").wait_for()


# ---- the flows users take (issue 13), each driven through the sidebar's page links: a page.goto
# would start a new session and hide exactly the state bugs these look for ----------------------
def fresh_session(page, server) -> None:
    page.goto(server)
    page.get_by_text("Adaptable matrices").wait_for()
    settle(page)


def settle(page) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")


def go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
    page.get_by_role("heading", name={"Model": "LaMDA Studio"}.get(title, title)).first.wait_for()
    settle(page)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``. A rerun that lands just after the click
    closes the open list, so the list is opened again (a few times) until the option shows."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    for attempt in range(4):
        box.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == 3:
                raise
            settle(page)
    settle(page)


def selected(page, label: str) -> str:
    """The shown value of a selectbox (its text, or its input's value where it renders one)."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    inputs = box.locator("input")
    return box.inner_text() + " " + " ".join(inputs.nth(i).input_value() for i in range(inputs.count()))


def run_configs(runs_dir) -> dict:
    import json

    return {folder.name: json.loads((folder / "run_config.json").read_text())
            for folder in sorted(runs_dir.iterdir()) if (folder / "run_config.json").is_file()}


def live(page):
    """Elements of the current render (not the faded copies Streamlit keeps while a live panel redraws)."""
    return page.locator('[data-testid="stElementContainer"][data-stale="false"]')


def keyed_button(page, key: str):
    """The current button of widget ``key`` (Streamlit marks its container st-key-<key>); run
    panels carry the run's name in their keys."""
    return page.locator(f'[data-stale="false"].st-key-{key} button').first


def stop_button(page, run):
    return keyed_button(page, f"stop-{run.name}")


def start_and_find(page, runs_dir):
    """Press Start and return the run folder it created."""
    before = set(run_configs(runs_dir))
    page.get_by_role("button", name="Start", exact=True).click()
    deadline = time.monotonic() + WAIT_MS / 1000
    while not set(run_configs(runs_dir)) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    (name,) = set(run_configs(runs_dir)) - before
    return runs_dir / name


def wait_for_state(folder, state: str) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while read_state(folder) != state and time.monotonic() < deadline:
        time.sleep(0.2)
    import json
    assert read_state(folder) == state, {f.name: json.loads((f / "status.json").read_text())
                                         for f in folder.parent.iterdir() if (f / "status.json").is_file()}


def read_state(folder) -> str:
    import json

    path = folder / "status.json"
    return json.loads(path.read_text())["state"] if path.is_file() else ""  # "": being created


def fill_number(page, label: str, value: str) -> None:
    field = page.locator('[data-testid="stNumberInput"]').filter(has_text=label).locator("input")
    field.fill(value)
    field.press("Tab")  # not Enter: inside a form, Enter submits it
    settle(page)


def test_the_model_choice_survives_page_switches_and_reaches_the_run(page, server, runs_dir):
    fresh_session(page, server)
    choose(page, "Model", "Tiny GPT-2 (demo)")
    choose(page, "Task", "causal-lm")
    for title in ("Spectrum", "About LaMDA", "Costs", "Rank budget", "Model", "Fine-tune"):
        go(page, title)
        assert "Tiny GPT-2" in selected(page, "Model") and "causal-lm" in selected(page, "Task"), title
    fill_number(page, "Steps", "3")
    started = start_and_find(page, runs_dir)
    config = run_configs(runs_dir)[started.name]
    assert config["source"] == "tiny-gpt2" and config["task"] == "causal-lm"  # what the sidebar showed
    page.get_by_text(": finished").first.wait_for()
    choose(page, "Model", "MiniLM-L6 (embedded)")
    choose(page, "Task", "classification")
    assert not page.outside_requests, page.outside_requests  # favicon, fonts: all local


def test_rank_budget_follows_r0_sticks_and_hands_ranks_to_costs_and_fine_tune(page, server):
    fresh_session(page, server)
    go(page, "Rank budget")
    page.get_by_text("Total rank").first.wait_for()
    r0 = page.locator('input[type="range"][aria-label="Base rank r0"]')
    r0.first.focus()
    page.keyboard.press("ArrowRight")  # r0 -> r0 + 1: the budget follows, 36 x (r0 + 1)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
        ".some(m => m.innerText.includes('Total rank') && m.innerText.includes('%d'))"
        % (36 * (R0 + 1))
    )
    settle(page)
    budget = page.locator('input[type="range"][aria-label="Budget (total rank)"]')
    assert budget.first.get_attribute("max") == str(36 * 4 * (R0 + 1))  # r_max follows r0: 4 x r0
    go(page, "Spectrum")
    go(page, "Rank budget")
    assert page.locator('input[type="range"][aria-label="Base rank r0"]').first.input_value() == str(R0 + 1)
    assert str(36 * (R0 + 1)) in metric_text(page, "Total rank")
    page.get_by_role("button", name="Use for fine-tune").click()
    page.get_by_text("The Fine-tune page will offer LaMDA++").wait_for()
    go(page, "Costs")
    page.get_by_text("lamda++").first.wait_for()
    assert not page.locator('[data-testid="stException"]').count()
    go(page, "Fine-tune")
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Method").first.click()
    assert page.get_by_role("option", name="lamda++", exact=True).count() == 1
    page.keyboard.press("Escape")
    settle(page)


def test_an_upload_is_used_at_once_previewed_and_checked(page, server, tmp_path):
    fresh_session(page, server)
    go(page, "Fine-tune")
    good = tmp_path / "reviews.tsv"
    good.write_text("".join(f"{text}\t{label}\n" for text, label in
                            [("a warm and witty film", "pos"), ("dull and far too long", "neg")] * 20))
    uploader = page.locator('[data-testid="stFileUploader"]').first.locator('input[type="file"]')
    uploader.set_input_files(str(good))
    page.get_by_text("no header line; read as two columns").first.wait_for()  # detected, said so
    page.get_by_text("Training on reviews.tsv").wait_for()  # choosing the file selected it
    page.get_by_text("a warm and witty film").first.wait_for(state="attached")  # the preview (a data grid)
    settle(page)
    assert page.get_by_role("button", name="Start", exact=True).is_enabled()
    page.screenshot(path=str(ARTIFACTS / "5-fine-tune-upload.png"), full_page=True)
    bad = tmp_path / "one_class.csv"
    bad.write_text("text,label\ngood,1\nfine,1\n")
    uploader.set_input_files(str(bad))
    page.get_by_text("only one class").first.wait_for()  # the error before Start, not a minute later
    settle(page)
    assert page.get_by_role("button", name="Start", exact=True).is_disabled()


def test_two_runs_show_side_by_side_stop_and_survive_a_reload(page, server, runs_dir):
    fresh_session(page, server)
    go(page, "Fine-tune")
    choose(page, "Method", "lamda")
    fill_number(page, "Steps", "3000")
    long_run = start_and_find(page, runs_dir)
    wait_for_state(long_run, "running")
    fill_number(page, "Steps", "6")
    queued = start_and_find(page, runs_dir)
    wait_for_state(queued, "queued")
    live(page).get_by_text("Waiting: one run trains at a time").first.wait_for()  # the reason it waits
    for run in (long_run, queued):  # both runs on the page, each with its own Stop
        stop_button(page, run).wait_for()
    page.screenshot(path=str(ARTIFACTS / "6-fine-tune-two-runs.png"), full_page=True)
    stop_button(page, queued).click()  # the queued one: out of the queue at once
    live(page).get_by_text("stopped while queued").first.wait_for()
    assert read_state(queued) == "stopped" and read_state(long_run) == "running"
    stop_button(page, long_run).click()  # the running one checkpoints and stops
    wait_for_state(long_run, "stopped")
    fill_number(page, "Steps", "6")
    finished_run = start_and_find(page, runs_dir)
    wait_for_state(finished_run, "finished")
    live(page).get_by_text("Download adapter (zip)").first.wait_for()
    keyed_button(page, f"merge-{finished_run.name}").click()
    live(page).get_by_text("Merged model written to").first.wait_for()
    page.wait_for_timeout(2500)  # several refreshes of the live panel later ...
    live(page).get_by_text("Merged model written to").first.wait_for(timeout=10_000)  # ... the message is still there
    zipped = (finished_run / "downloads" / "adapter.zip").stat().st_mtime
    page.reload()  # a new session: the last run is still on the page with its downloads
    live(page).get_by_text("Download adapter (zip)").first.wait_for()
    live(page).get_by_text(f"{finished_run.name}: finished").first.wait_for()
    page.wait_for_timeout(2500)
    assert (finished_run / "downloads" / "adapter.zip").stat().st_mtime == zipped  # built once, not per refresh
    go(page, "Runs")
    keyed_button(page, f"merge-{finished_run.name}").wait_for()  # Runs has the downloads too


def test_compare_methods_in_one_click(page, server, runs_dir):
    """Fine-tune's Compare methods queues LoRA, LaMDA and LaMDA++ on the same data; the Compare page
    follows them and plots accuracy against cost with the Pareto front."""
    fresh_session(page, server)
    go(page, "Fine-tune")
    fill_number(page, "Steps", "4")
    before = set(run_configs(runs_dir))
    page.get_by_role("button", name="Compare methods").click()
    page.get_by_text("They train one after another below").first.wait_for()
    created = sorted(set(run_configs(runs_dir)) - before)
    configs = run_configs(runs_dir)
    assert sorted(configs[n]["method"] for n in created) == ["lamda", "lamda++", "lora"]
    assert len({configs[n]["comparison"] for n in created}) == 1  # one comparison, the same data and steps
    assert {(configs[n]["train_data"], configs[n]["max_steps"], configs[n]["seed"]) for n in created} == \
        {("demo-sentiment", 4, 0)}
    page.screenshot(path=str(ARTIFACTS / "6-fine-tune-compare-queued.png"), full_page=True)
    for name in created:
        wait_for_state(runs_dir / name, "finished")
    settle(page)  # the page reran when the last run ended; the message and its link stay
    page.get_by_role("link", name="Open the Compare page").click()
    page.get_by_role("heading", name="Compare").first.wait_for()
    settle(page)
    live(page).get_by_text("Pareto front (accuracy").first.wait_for()
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    page.locator('[data-testid="stRadio"]').filter(has_text="Against").get_by_text("peak training memory").click()
    settle(page)
    live(page).get_by_text("Pareto front (accuracy (%) against peak training memory").first.wait_for()
    assert not page.locator('[data-testid="stException"]').count()
    page.screenshot(path=str(ARTIFACTS / "9-compare.png"), full_page=True)


def test_a_sweep_finds_each_methods_best_and_compares_them(page, server, runs_dir):
    """Fine-tune's Sweep queues the grid, each run judged on the train file's split; the best
    setting per method shows as they finish, and one click compares the bests on the validation file."""
    fresh_session(page, server)
    go(page, "Fine-tune")
    fill_number(page, "Steps", "3")
    rates = page.locator('[data-testid="stTextInput"]').filter(has_text="Learning rates").locator("input")
    rates.fill("1e-3, 1e-2")
    rates.press("Tab")
    settle(page)
    before = set(run_configs(runs_dir))
    page.get_by_role("button", name="Start sweep").click()
    page.get_by_text("0 of 4 runs finished").first.wait_for()
    configs = run_configs(runs_dir)
    created = sorted(set(configs) - before)
    assert sorted((configs[n]["method"], configs[n]["learning_rate"]) for n in created) == [
        ("lamda", 1e-3), ("lamda", 1e-2), ("lora", 1e-3), ("lora", 1e-2)]
    assert all(configs[n]["validation_data"] is None and configs[n]["max_steps"] == 3 for n in created)
    for name in created:
        wait_for_state(runs_dir / name, "finished")
    live(page).get_by_text("4 of 4 runs finished").first.wait_for()
    compare = page.get_by_role("button", name="Compare each method's best on the validation file")
    compare.click()
    page.get_by_text("Queued comparison").first.wait_for()
    best = sorted(set(run_configs(runs_dir)) - before - set(created))
    assert [run_configs(runs_dir)[n]["method"] for n in best] == ["lamda", "lora"] and all("-best-" in n for n in best)
    assert all(run_configs(runs_dir)[n]["validation_data"] for n in best)  # judged on the validation file
    page.screenshot(path=str(ARTIFACTS / "7-fine-tune-sweep.png"), full_page=True)
    for name in best:
        wait_for_state(runs_dir / name, "finished")
    assert not page.locator('[data-testid="stException"]').count()


def test_train_two_runs_then_try_them_side_by_side_and_evaluate_an_uploaded_test_file(page, server, runs_dir, tmp_path):
    """As a user would after training: two runs from Start, then Try & evaluate: a typed sentence
    gets both runs' probabilities side by side, an uploaded test file its confusion matrix and
    wrong examples (a label the runs never saw: tests/test_use.py)."""
    fresh_session(page, server)
    go(page, "Fine-tune")
    fill_number(page, "Steps", "4")
    folders = []
    for method in ("lamda", "lora"):
        choose(page, "Method", method)
        settle(page)
        folders.append(start_and_find(page, runs_dir))
        wait_for_state(folders[-1], "finished")
    go(page, "Try & evaluate")
    chosen = page.locator('[data-testid="stMultiSelect"]').first.inner_text()
    assert folders[0].name in chosen and folders[1].name in chosen  # the two newest finished runs
    box = page.get_by_label("Sentences, one per line")
    box.fill("What a wonderful, moving film.")
    box.press("Control+Enter")
    settle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for()
    legend = chart.inner_text()
    assert folders[0].name in legend and folders[1].name in legend and "positive" in legend
    page.screenshot(path=str(ARTIFACTS / "10-try.png"), full_page=True)

    test_file = tmp_path / "held-out.csv"
    test_file.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in [
        ("a warm and witty film", "positive"), ("dull and far too long", "negative"),
        ("the cast shines", "positive"), ("a waste of an evening", "negative")] * 5))
    uploader = page.locator('[data-testid="stFileUploader"]').first.locator('input[type="file"]')
    uploader.set_input_files(str(test_file))
    settle(page)
    page.get_by_role("button", name="Evaluate").click()
    page.get_by_text("Most confidently wrong").first.wait_for()
    settle(page)
    assert page.get_by_text("confusion matrix").count() >= 2  # one heatmap per run
    assert page.get_by_text("on 20 examples").count() == 2
    page.get_by_text("on 20 examples").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "11-evaluate.png"))


# ---- the app a user can trust (issue 25) --------------------------------------------------------
CLIPPED_TEXT_JS = """() => [...document.querySelectorAll('[data-testid="stApp"] *')]
  .filter(e => !e.closest('svg, canvas, [data-testid="stDataFrame"], [data-testid="stCode"], '
                          + '[data-testid="stTooltipContent"]')
          && e.offsetParent !== null && e.clientWidth > 4 && e.innerText && e.innerText.trim()
          && e.innerText.length < 200 && e.scrollWidth > e.clientWidth + 1
          && ['hidden', 'clip'].includes(getComputedStyle(e).overflowX))
  .map(e => e.innerText.trim().slice(0, 60))"""


def test_rank_budget_bounds_follow_r0_through_fast_key_presses(page, server):
    """Problem 4: quick presses on r0 used to leave r min, r max and the budget stuck for the
    rest of the session, as if the user had set them."""
    fresh_session(page, server)
    go(page, "Rank budget")
    r0 = page.locator('input[type="range"][aria-label="Base rank r0"]').first
    r0.focus()
    for _ in range(8):
        page.keyboard.press("ArrowRight", delay=0)  # no waiting between presses
    settle(page)
    page.wait_for_timeout(1500)
    settle(page)
    r = int(r0.input_value())
    assert r > R0
    budget = page.locator('input[type="range"][aria-label="Budget (total rank)"]').first
    page.wait_for_function("(r) => document.querySelector('input[aria-label=\"Budget (total rank)\"]')"
                           ".getAttribute('max') == String(36 * 4 * r)", arg=r)
    assert str(36 * r) in metric_text(page, "Total rank")
    r0.focus()
    page.keyboard.press("ArrowLeft")  # and it still follows afterwards
    page.wait_for_function("(r) => document.querySelector('input[aria-label=\"Budget (total rank)\"]')"
                           ".getAttribute('max') == String(36 * 4 * r)", arg=r - 1)
    assert budget.get_attribute("max") == str(36 * 4 * (r - 1))


def test_every_fine_tune_setting_and_an_upload_survive_every_page(page, server, runs_dir, tmp_path):
    """Problem 2, as a user: upload, set every field, visit every page through the sidebar, come
    back, press Start: the run has every value and trains on the upload."""
    fresh_session(page, server)
    go(page, "Fine-tune")
    data = tmp_path / "my-reviews.csv"
    data.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in [("a warm and witty film", "pos"),
                                                                      ("dull and far too long", "neg")] * 20))
    page.locator('[data-testid="stFileUploader"]').first.locator('input[type="file"]').set_input_files(str(data))
    page.get_by_text("Training on my-reviews.csv").wait_for()
    settle(page)
    choose(page, "Method", "lora")
    for label, value in (("Rank (0", "6"), ("Steps", "5"), ("Batch size", "4"), ("Learning rate", "0.00200"),
                         ("Sequence length", "40")):
        fill_number(page, label, value)
    choose(page, "Init (LaMDA)", "random")
    choose(page, "Pooling", "cls")
    for title in ("Model", "Spectrum", "Rank budget", "Costs", "Runs", "Try & evaluate", "Compare", "About LaMDA",
                  "Fine-tune"):
        go(page, title)
    page.get_by_text("Training on my-reviews.csv").wait_for()
    assert "my-reviews.csv" in selected(page, "In use")  # its own name, not a hash
    started = start_and_find(page, runs_dir)
    config = run_configs(runs_dir)[started.name]
    assert Path(config["train_data"]).name == "my-reviews.csv"
    assert (config["method"], config["adapter"]["rank"], config["max_steps"], config["batch_size"],
            config["learning_rate"], config["seq_len"], config["adapter"]["init"], config["pooling"]) == \
        ("lora", 6, 5, 4, 0.002, 40, "random", "cls")
    wait_for_state(started, "finished")
    fill_number(page, "Rank (0", "0")
    choose(page, "Method", "lamda")
    choose(page, "Pooling", "auto")
    choose(page, "Init (LaMDA)", "svd")


def test_an_idle_page_sends_no_reruns(page, server, runs_dir):
    """Problem 7: with nothing queued or running, an open page does not poll the server (a
    polling fragment sends a rerun request every second or two)."""
    for folder in runs_dir.iterdir():  # the earlier flows' runs are done
        if (folder / "status.json").is_file() and read_state(folder) in ("queued", "running"):
            wait_for_state(folder, "finished")
    fresh_session(page, server)
    sent = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    page.reload()  # the session's websocket, now watched
    page.get_by_text("Adaptable matrices").wait_for()
    settle(page)
    for title in ("Fine-tune", "Runs", "Compare"):
        go(page, title)
        page.wait_for_timeout(500)
        before = len(sent)
        page.wait_for_timeout(5000)
        assert len(sent) == before, f"{title} sent {len(sent) - before} messages in 5 s while idle"


@pytest.mark.parametrize("width", [1440, 1024])
def test_no_text_is_cut_off_at_common_widths(page, server, width):
    """Problem 9: every page at 1440 and 1024 px wide: no label, caption, metric, button or
    sidebar entry whose text is clipped; a screenshot of each."""
    page.set_viewport_size({"width": width, "height": 1000})
    try:
        fresh_session(page, server)
        clipped = {}
        for title in ("Model", "Spectrum", "Rank budget", "Costs", "Fine-tune", "Runs", "Try & evaluate", "Compare",
                      "About LaMDA"):
            go(page, title)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / f"width-{width}-{title.replace(' ', '-').replace('&', 'and')}.png"),
                            full_page=True)
            found = page.evaluate(CLIPPED_TEXT_JS)
            if found:
                clipped[title] = found
        assert not clipped, "\n".join(f"{k}: {v}" for k, v in clipped.items())
    finally:
        page.set_viewport_size({"width": 1440, "height": 1000})


# ---- a real LLM (issue 35) ----------------------------------------------------------------------
def test_instruction_tune_smollm2_then_chat_with_base_and_fine_tuned_side_by_side(page, server, runs_dir, tmp_path):
    """Choose the embedded SmolLM2 (the task follows to causal-lm), upload conversations (checked
    and previewed), train a few steps, then ask the run and the base model the same question."""
    import json

    fresh_session(page, server)
    choose(page, "Model", "SmolLM2-135M-Instruct (embedded)")
    assert "causal-lm" in selected(page, "Task")
    go(page, "Fine-tune")
    sequence = page.locator('[data-testid="stNumberInput"]').filter(has_text="Sequence length").locator("input")
    assert sequence.input_value() == "128"  # room for the chat template (choices.DEFAULT_CHAT_SEQ_LEN)
    chat = tmp_path / "reviews-chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Is this review positive or negative? {text}"},
        {"role": "assistant", "content": label}]}) + "\n" for text, label in [
        ("A warm, funny film.", "positive"), ("Dull and far too long.", "negative")] * 6))
    page.locator('[data-testid="stFileUploader"]').first.locator('input[type="file"]').set_input_files(str(chat))
    settle(page)
    page.get_by_text("12 conversations (messages format)").wait_for()
    page.screenshot(path=str(ARTIFACTS / "12-fine-tune-chat-upload.png"), full_page=True)
    fill_number(page, "Steps", "3")
    fill_number(page, "Batch size", "4")
    started = start_and_find(page, runs_dir)
    config = run_configs(runs_dir)[started.name]
    assert config["source"] == "smollm2" and config["task"] == "causal-lm"
    assert config["train_data"].endswith("reviews-chat.jsonl")
    wait_for_state(started, "finished")
    go(page, "Try & evaluate")
    assert started.name in page.locator('[data-testid="stMultiSelect"]').first.inner_text()
    box = page.locator('[data-testid="stChatInputTextArea"]')
    box.fill("Is this review positive or negative? A warm, funny film.")
    box.press("Enter")
    page.get_by_text("base model", exact=True).first.wait_for()

    def answers() -> dict:
        """Each answering column's text below its name (the base model streams after the run)."""
        found = {}
        columns = page.locator('[data-testid="stColumn"]').filter(has=page.locator("strong"))
        for i in range(columns.count()):
            lines = [line.strip() for line in columns.nth(i).inner_text().splitlines() if line.strip()]
            if lines and lines[0] in (started.name, "base model"):
                found[lines[0]] = " ".join(lines[1:])
        return found

    deadline = time.monotonic() + WAIT_MS / 1000  # a hang guard, not a speed check
    found = answers()
    while not (len(found) == 2 and all(found.values())) and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        found = answers()
    assert set(found) == {started.name, "base model"} and all(found.values()), found
    settle(page)
    page.screenshot(path=str(ARTIFACTS / "13-chat-side-by-side.png"), full_page=True)

    held_out = tmp_path / "held-out-chat.jsonl"
    held_out.write_text("".join(json.dumps({"prompt": f"Is this review positive or negative? {text}",
                                            "completion": label}) + "\n"
                                for text, label in [("Loved it.", "positive"), ("A waste of time.", "negative")]))
    page.locator('[data-testid="stFileUploader"]').first.locator('input[type="file"]').set_input_files(str(held_out))
    settle(page)
    page.get_by_role("button", name="Evaluate").click()
    page.get_by_text("on 2 conversations").first.wait_for()
    assert "exact match" in page.get_by_text("on 2 conversations").first.inner_text()
    page.get_by_text("Every answer (CSV)").wait_for()
