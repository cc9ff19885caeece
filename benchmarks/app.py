"""Server-side time of an app rerun after each main interaction, measured with AppTest.

    python benchmarks/app.py [--repeats 5]

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


def main() -> None:
    from streamlit.testing.v1 import AppTest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ["LAMDA_RUNS"] = tempfile.mkdtemp()

    def app(name: str) -> AppTest:
        path = ROOT / "app.py" if name == "app" else next((ROOT / "pages").glob(f"*_{name}.py"))
        return AppTest.from_file(str(path), default_timeout=600)

    budget = app("Rank_budget")
    budget.run()  # warm-up: model, spectra
    costs = app("Costs")
    costs.run()
    rows = []
    values = iter(range(300, 300 + 10 * args.repeats, 10))
    rows.append(("move the budget slider (Rank budget)",
                 [timed(lambda: budget.slider(key="budget_rank").set_value(next(values)).run()) for _ in range(args.repeats)]))
    strategies = iter(["energy-deficit", "equal-energy"] * args.repeats)
    rows.append(("change the strategy (Rank budget)",
                 [timed(lambda: budget.selectbox(key="strategy").set_value(next(strategies)).run()) for _ in range(args.repeats)]))
    batches = iter(range(17, 17 + args.repeats))
    rows.append(("change the batch size (Costs)",
                 [timed(lambda: costs.number_input(key="cost_batch").set_value(next(batches)).run()) for _ in range(args.repeats)]))
    lengths = iter(range(129, 129 + args.repeats))
    rows.append(("change the sequence length (Costs)",
                 [timed(lambda: costs.number_input(key="cost_seq").set_value(next(lengths)).run()) for _ in range(args.repeats)]))
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


if __name__ == "__main__":
    main()
