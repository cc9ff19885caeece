"""Compare methods trained on the same data (queued from Fine-tune or `lamda compare`): final
quality against averaged trainable parameters, peak memory or time, the Pareto front highlighted,
and a table; it follows the runs while they train."""
import json

import pandas as pd
import streamlit as st

from lamda_core import LamdaError, figures
from lamda_core.runs.compare import (
    COST_AXES,
    METRIC_LABELS,
    comparison_runs,
    comparison_table,
    list_comparisons,
    quality_metric,
)
from lamda_core.runs.folder import RunFolder, any_live
from lamda_core.use.evaluation import ClassificationReport, evaluate_run
from studio_ui.common import file_choice, model_label, page_setup, runs_root, sidebar
from studio_ui.runs_view import data_label
from studio_ui.state import kept_choice, set_kept

page_setup("Compare")
sidebar()
st.title("Compare")
root = runs_root()
names = list_comparisons(root)
if not names:
    st.info("No comparison yet. On the Fine-tune page, choose the methods under **Compare methods** and press "
            "**Compare methods** (or run `lamda compare --data FILE`).")
    st.stop()
wanted = st.session_state.get("comparison")
if wanted in names:  # a comparison just queued on Fine-tune is the one shown
    set_kept("comparison_shown", wanted)
    st.session_state.pop("comparison")
name = st.selectbox("Comparison", names, **kept_choice("comparison_shown", names, names[-1]))
config = RunFolder(comparison_runs(root, name)[0]).config
metrics = [quality_metric(config.task)] + (["f1"] if config.task == "classification" else [])
c1, c2 = st.columns(2)
metric = c1.radio("Quality", metrics, format_func=METRIC_LABELS.get, horizontal=True,
                  **kept_choice("compare_metric", metrics, metrics[0]))
axes = [k for k in COST_AXES if k != "adapter_average"]
x = c2.radio("Against", axes, format_func=COST_AXES.get, horizontal=True, **kept_choice("compare_x", axes, axes[0]))
st.caption(
    f"Model {model_label(config.source)}, data {data_label(config.train_data)}, "
    f"{config.max_steps} steps of batch {config.batch_size}, "
    f"seed {config.seed}; each method at its default learning rate."
)
held_out_path = file_choice("Held-out test file (optional): adds each finished run's score on it as a column",
                            ["csv", "tsv", "jsonl", "parquet", "txt"], "compare_held_out", root, None, "none")


@st.cache_data(show_spinner=False, max_entries=32)
def held_out_score(folder: str, finished_at: float, path: str) -> tuple[str, float | None]:
    """(column label, score) of a finished run on a held-out file: accuracy (%) or perplexity
    (use/evaluation.py, the code `lamda evaluate` runs); (label of the error, None) when the
    file does not fit the run."""
    try:
        report = evaluate_run(folder, path)
    except LamdaError as error:
        return f"held-out: {error}", None
    if isinstance(report, ClassificationReport):
        return "held-out accuracy (%)", round(100 * report.accuracy, 2)
    return "held-out perplexity", round(report.fine_tuned_perplexity, 3)


def held_out_column(rows: list[dict]) -> dict[str, tuple[str, float | None]]:
    """{run: (label, score)} of the finished runs, when a held-out file is given."""
    if held_out_path is None:
        return {}
    scores = {}
    with st.spinner("Scoring the finished runs on the held-out file…"):
        for r in rows:
            if r["state"] == "finished":
                folder = root / r["run"]
                scores[r["run"]] = held_out_score(str(folder), RunFolder(folder).changed_at("summary"), held_out_path)
    return scores


following = any_live(comparison_runs(root, name))


@st.fragment(run_every=2.0 if following else None)
def comparison() -> None:
    """The figure and table, followed every 2 s while a run of the comparison is queued or training."""
    if following and not any_live(comparison_runs(root, name)):
        st.rerun()  # all done: redraw the page once, without the timer
    rows = comparison_table(root, name, metric, x)
    active = [r for r in rows if r["state"] in ("queued", "running", "stopping")]
    if active:
        done = sum(r["step"] for r in rows)
        total = sum(r["total_steps"] or 0 for r in rows) or 1
        st.progress(min(1.0, done / total), text=f"{len(rows) - len(active)} of {len(rows)} runs done; "
                    + ", ".join(f"{r['method']} {r['state']} ({r['step']}/{r['total_steps']})" for r in active))
    scored = [r for r in rows if r[metric] is not None and r[x] is not None]
    if scored:
        st.plotly_chart(figures.pareto_figure([{**r, "label": f"r={r['rank']}" if r["rank"].isdigit() else r["rank"]}
                                                    for r in scored], x, metric),
                        width="stretch", key="compare_figure")
        front = [r["method"] for r in rows if r["pareto"]]
        st.markdown(f"**Pareto front** ({METRIC_LABELS[metric]} against {COST_AXES[x]}): {', '.join(front)}")
    else:
        st.caption("The figure appears when the first run has evaluated.")
    scale = 100 if metric in ("accuracy", "f1") else 1
    held_out = held_out_column(rows)
    errors = sorted({label for label, score in held_out.values() if score is None})
    for error in errors:
        st.error(error)
    table = pd.DataFrame([{
        "method": r["method"], "rank": r["rank"], "state": r["state"], "steps": f"{r['step']}/{r['total_steps']}",
        **{METRIC_LABELS[m]: None if r[m] is None else round(scale * r[m], 2) for m in metrics},
        "averaged adapter params": r["adapter_average"], "averaged trainable params": r["trainable_average"],
        "peak memory (MiB)": r["peak_memory_mib"], "time (s)": None if r["seconds"] is None else round(r["seconds"], 1),
        **{label: score for label, score in [held_out.get(r["run"], (None, None))] if label and score is not None},
        "Pareto": "yes" if r["pareto"] else "", "run": r["run"]} for r in rows])
    counts = {c: st.column_config.NumberColumn(format="localized")
              for c in ("averaged adapter params", "averaged trainable params", "peak memory (MiB)")}
    st.dataframe(table, hide_index=True, width="stretch", key="compare_table", column_config=counts)
    kinds = sorted({r["peak_memory_kind"] for r in rows if r["peak_memory_kind"]})
    st.caption(f"Peak memory: {', '.join(kinds) or 'recorded when a run finishes'} of each trainer process "
               "(the process RSS also counts loading, initialization and evaluation). Time: seconds spent training.")
    st.download_button("Download table (JSON)", json.dumps({"comparison": name, "metric": metric, "x": x, "runs": rows},
                                                          indent=1), file_name=f"{name}.json", key="compare_json")


comparison()
