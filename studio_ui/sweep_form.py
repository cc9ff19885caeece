"""The Fine-tune page's Sweep form: a grid of learning rates and ranks per method on the form's
data (judged on a split of its train file, runs/sweep.py), the best setting per method as the
runs finish, and each method's best compared on the validation file."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

import lamda_core as lc
from lamda_core import choices
from lamda_core.data.reading import DEMO_DATASETS
from lamda_core.methods import get_method, method_names
from lamda_core.runs.compare import comparison_runs
from lamda_core.runs.folder import RunFolder, any_live, start_run
from lamda_core.runs.sweep import best_settings, create_best_comparison, create_sweep
from studio_ui.common import user_message
from studio_ui.state import kept, kept_choice


def parse_values(text: str, kind: type, what: str) -> list | None:
    """Comma-separated numbers (None when empty); a ConfigError naming the entry that is not one."""
    values = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            values.append(kind(entry))
        except ValueError:
            raise lc.ConfigError(f"{what}: {entry!r} is not a number; write them comma-separated, "
                                 f"e.g. {'1e-3, 3e-3' if kind is float else '8, 16'}") from None
    return values or None


def sweep_section(base: Callable[[], object], root: Path, ready: bool, watch: Callable[[list[Path]], None]) -> None:
    """Draw the form; ``base()`` is the run the Fine-tune form describes (data, shape, model)."""
    st.markdown("**Sweep**: every method x learning rate x rank below, each run judged on a seeded 10% split of "
                "the train file (never on the validation file); then each method's best setting, trained on the "
                "whole file and compared on the validation file.")
    sweepable = [m for m in method_names() if not get_method(m).needs_rank_pattern]
    c1, c2, c3 = st.columns([2, 1, 1])
    methods = c1.multiselect("Methods to sweep", sweepable,
                             **kept_choice("sweep_methods", sweepable, list(choices.DEFAULT_SWEEP_METHODS)))
    rates = c2.text_input("Learning rates", **kept("sweep_lrs", "1e-3, 3e-3"),
                          help="comma-separated; empty: each method's default rate")
    ranks = c3.text_input("Ranks", **kept("sweep_ranks", ""),
                          help="comma-separated; empty: each method's default rank (full fine-tuning has none)")
    if st.button("Start sweep", disabled=not ready, key="sweep"):
        try:
            folders = create_sweep(base(), methods, root, parse_values(rates, float, "Learning rates"),
                                   parse_values(ranks, int, "Ranks"))
            for folder in folders:
                start_run(folder, warm=True)
            watch(folders)
            st.session_state["sweep_name"] = RunFolder(folders[0]).config.comparison
        except lc.LamdaError as error:
            st.error(user_message(error))
    name = st.session_state.get("sweep_name")
    if name:  # redrawn every 2 s while a run of the sweep is queued or training, never when idle
        following = any_live(sweep_runs(root, name))
        st.fragment(run_every=2.0 if following else None)(sweep_results)(name, base, root, watch, following)


def sweep_runs(root: Path, name: str) -> list[Path]:
    """The sweep's run folders (a sweep is a comparison by name); none once they were deleted."""
    try:
        return comparison_runs(root, name)
    except lc.RunError:
        return []


def sweep_results(name: str, base: Callable[[], object], root: Path, watch: Callable[[list[Path]], None],
                  following: bool) -> None:
    """The best setting per method so far, and the button that compares them on the validation file."""
    runs = sweep_runs(root, name)
    if following and not any_live(runs):
        st.rerun()  # the sweep is done: redraw the page once, without the timer
    best = best_settings(root, name) if runs else {}
    done = sum(RunFolder(f).status()["state"] == "finished" for f in runs)
    st.markdown(f"Sweep **{name}**: {done} of {len(runs)} runs finished.")
    if best:
        st.dataframe(pd.DataFrame([{"method": m, "learning rate": r["learning_rate"], "rank": r["rank"],
                                    "split accuracy (%)": 100 * (r["accuracy"] or 0)} for m, r in best.items()]),
                     hide_index=True, key="sweep_best")
    config = base()  # a demo dataset's name carries its validation file
    demo = DEMO_DATASETS.get(str(config.train_data))
    validation = config.validation_data or (str(demo[1]) if demo and demo[1] else None)
    blocked = ("runs still training" if any_live(runs) else None) or (
        None if validation else "needs a validation file in the form above") or (None if best else "no run finished")
    if st.button("Compare each method's best on the validation file", key="sweep_compare", disabled=bool(blocked),
                 help=blocked):
        try:
            folders = create_best_comparison(root, name, validation)
            for folder in folders:
                start_run(folder, warm=True)
            watch(folders)
            st.session_state["comparison"] = f"{name}-best"
            st.session_state["sweep_queued"] = f"{name}-best"
            st.rerun()  # the whole page, so the run panels below follow the new runs
        except lc.LamdaError as error:
            st.error(user_message(error))
    if st.session_state.get("sweep_queued") == f"{name}-best":
        st.success(f"Queued comparison **{name}-best**; the Compare page shows it.")
