"""Server-side time of an app rerun after each main interaction, measured with AppTest; and the
server's CPU use with one idle open tab on each page (nothing queued or running), file watcher off
(our config), and on About with the watcher on.

    python benchmarks/app.py [--repeats 5] [--idle-seconds 60]

The model and its spectra are cached first (one warm-up run of each page), as in a session that
has loaded them; then each interaction is timed as the wall time of AppTest's rerun, the median
of the repeats. Target: under 0.3 s for the budget slider and the cost inputs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


IDLE_PAGES = {"Model": "", "Spectrum": "Spectrum", "Rank budget": "Rank_budget", "Costs": "Costs",
              "Fine-tune": "Fine_tune", "Runs": "Runs", "Try & evaluate": "Try_and_evaluate", "Compare": "Compare",
              "About LaMDA": "About_LaMDA"}


def finished_comparison(runs: Path) -> None:
    """A finished LoRA / LaMDA comparison (4 steps each) in ``runs``: what Fine-tune, Runs and
    Compare show (and used to keep polling) after a user's runs are done."""
    from lamda_core.adapter.config import LamdaConfig
    from lamda_core.runs.compare import create_comparison
    from lamda_core.runs.config import TrainConfig
    from lamda_core.training.trainer import run

    base = TrainConfig(max_steps=4, batch_size=4, eval_interval=4, checkpoint_interval=10, adapter=LamdaConfig(rank=2))
    for folder in create_comparison(base, ["lora", "lamda"], runs, name="idle"):
        run(folder)


def idle_cpu_per_minute(watcher: str, seconds: float, pages: dict[str, str], runs: Path) -> dict[str, float]:
    """Server CPU seconds per minute while one chromium tab sits on each page in turn, nothing
    queued or running; ``watcher`` is server.fileWatcherType ("none" as in .streamlit/config.toml,
    or "auto")."""
    import socket
    import subprocess
    import sys
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.fileWatcherType",
            watcher,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LAMDA_RUNS": str(runs)},
    )
    url = f"http://127.0.0.1:{port}"
    used = {}
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            for title, path in pages.items():
                page.goto(f"{url}/{path}")
                page.get_by_role("heading").first.wait_for(timeout=300_000)
                time.sleep(8)  # let the page load its model, spectra and figures
                start = _cpu_seconds(server.pid)
                time.sleep(seconds)
                used[title] = (_cpu_seconds(server.pid) - start) / seconds * 60
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return used


def try_it_rows(app, repeats: int) -> list[tuple[str, list[float]]]:
    """Try & evaluate with two finished MiniLM runs (LaMDA, LoRA; 6 steps each): the first
    answer (both runs loaded), then typing a new sentence with the runs loaded, and the model
    call alone (one sentence, one run)."""
    from lamda_core.runs.config import TrainConfig
    from lamda_core.runs.folder import create_run
    from lamda_core.training.trainer import run
    from lamda_core.use.inference import load_run

    root = Path(os.environ["LAMDA_RUNS"])
    for method in ("lamda", "lora"):
        run(create_run(TrainConfig(method=method, max_steps=6, eval_interval=6, checkpoint_interval=10), root / method))
    page = app("Try_and_evaluate")
    first = timed(lambda: page.run() and page.text_area(key="try_text").input("A warm, witty film.").run())
    sentences = iter(f"A warm, witty film number {i}." for i in range(repeats))
    typed = [timed(lambda: page.text_area(key="try_text").input(next(sentences)).run()) for _ in range(repeats)]
    loaded = load_run(root / "lamda")
    call = [timed(lambda: loaded.probabilities(["A warm, witty film."])) for _ in range(repeats)]
    return [("Try: first sentence, two runs loaded on the way (Try & evaluate)", [first]),
            ("Try: type a sentence, two runs side by side (loaded)", typed),
            ("Try: the model call alone, one sentence, one run", call)]


def main() -> None:
    from streamlit.testing.v1 import AppTest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=60, help="0 skips the idle-tab measurement")
    args = parser.parse_args()
    os.environ["LAMDA_RUNS"] = tempfile.mkdtemp()

    def app(name: str) -> AppTest:
        path = ROOT / "app.py" if name == "app" else next((ROOT / "app_pages").glob(f"*_{name}.py"))
        return AppTest.from_file(str(path), default_timeout=600)

    budget = app("Rank_budget")
    budget.run()  # warm-up: model, spectra
    costs = app("Costs")
    costs.run()
    rows = []
    values = iter(range(300, 300 + 10 * args.repeats, 10))
    rows.append(
        (
            "move the budget slider (Rank budget)",
            [
                timed(lambda: budget.slider(key="budget_rank").set_value(next(values)).run())
                for _ in range(args.repeats)
            ],
        )
    )
    strategies = iter(["energy-deficit", "equal-energy"] * args.repeats)
    rows.append(
        (
            "change the strategy (Rank budget)",
            [
                timed(lambda: budget.selectbox(key="strategy").set_value(next(strategies)).run())
                for _ in range(args.repeats)
            ],
        )
    )
    batches = iter(range(17, 17 + args.repeats))
    rows.append(
        (
            "change the batch size (Costs)",
            [
                timed(lambda: costs.number_input(key="run_batch").set_value(next(batches)).run())
                for _ in range(args.repeats)
            ],
        )
    )
    lengths = iter(range(129, 129 + args.repeats))
    rows.append(
        (
            "change the sequence length (Costs)",
            [
                timed(lambda: costs.number_input(key="run_seq").set_value(next(lengths)).run())
                for _ in range(args.repeats)
            ],
        )
    )
    rows += try_it_rows(app, args.repeats)
    for page in ("app", "Spectrum", "Rank_budget", "Costs", "Fine_tune", "Runs"):
        test = app(page)
        test.run()  # first visit in this session
        rows.append((f"switch to {page if page != 'app' else 'Model'} (page run, cached model)",
                     [timed(test.run) for _ in range(args.repeats)]))

    print(f"### App reruns (server side, median of {args.repeats}, seconds)\n")
    print("| interaction | median | max |")
    print("|---|---:|---:|")
    for label, times in rows:
        print(f"| {label} | {statistics.median(times):.3f} | {max(times):.3f} |")
    if args.idle_seconds:
        runs = Path(os.environ["LAMDA_RUNS"])
        finished_comparison(runs)
        off = idle_cpu_per_minute("none", args.idle_seconds, IDLE_PAGES, runs)
        on = idle_cpu_per_minute("auto", args.idle_seconds, {"About LaMDA": "About_LaMDA"}, runs)["About LaMDA"]
        print(
            f"\n### Server CPU with one idle tab per page, nothing queued or running ({args.idle_seconds:.0f} s each; "
            "a finished comparison in the runs folder; CPU seconds per minute; goal: under 1 on every page)\n"
        )
        print("| page | CPU s / min |")
        print("|---|---:|")
        for title, value in off.items():
            print(f"| {title} | {value:.2f} |")
        print(f"\nFile watcher on (`auto`: watchdog over the project and its .venv), About: {on:.2f} CPU s / min, "
              f"{on / max(off['About LaMDA'], 1e-3):.0f}x the off setting of our config.")

if __name__ == "__main__":
    main()
