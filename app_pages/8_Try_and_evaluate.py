"""Use what you trained: type sentences and see the label probabilities of up to three runs side
by side (a causal LM: continue a prompt, the base model beside it), and score runs on an uploaded
test file: accuracy, macro F1, per class, the confusion matrix and the most confidently wrong
examples, all downloadable. Each run is loaded once per session (training/inference.py)."""
import json
from pathlib import Path

import pandas as pd
import streamlit as st

import lamda_core as lc
from lamda_core import figures
from lamda_core.training.evaluation import ClassificationReport, evaluate_run, side_by_side
from lamda_core.training.inference import load_base, load_run
from lamda_core.training.runs import RunFolder, list_runs
from studio_ui.common import file_choice, kept, kept_choice, page_setup, runs_root, sidebar, user_message

MAX_RUNS = 3
page_setup("Try & evaluate")
sidebar()
st.title("Try & evaluate")
root = runs_root()


def usable(folder: Path) -> bool:
    """Finished, or stopped / failed with a checkpoint to load from."""
    run = RunFolder(folder)
    state = run.status()["state"]
    return state == "finished" or (state in ("stopped", "failed") and bool(run.checkpoints()))


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_run(folder: str, version: float):
    """The run's model, loaded once per run folder and version (its status file's time)."""
    return load_run(folder)


@st.cache_resource(show_spinner=False, max_entries=2)
def cached_base(folder: str):
    return load_base(folder)


def loaded(folder: Path):
    with st.spinner(f"Loading {folder.name}…"):
        return cached_run(str(folder), (folder / "status.json").stat().st_mtime)


runs = [f for f in list_runs(root) if usable(f)]
if not runs:
    st.info("No finished run yet. Train one on the Fine-tune page; it can be tried and evaluated here.")
    st.stop()
names = [f.name for f in runs]
default = [n for n in names if RunFolder(root / n).status()["state"] == "finished"][-2:] or names[-1:]
chosen = st.multiselect(f"Runs (up to {MAX_RUNS})", names, max_selections=MAX_RUNS,
                        help="Finished runs, and stopped ones (from their last checkpoint).",
                        **kept_choice("use_runs", names, default))
if not chosen:
    st.stop()
try:
    models = {name: loaded(root / name) for name in chosen}
except lc.LamdaError as error:
    st.error(user_message(error))
    st.stop()
tasks = {m.task for m in models.values()}
if len(tasks) > 1:
    st.warning("Choose runs of one task: classification and causal-lm runs cannot be shown side by side.")
    st.stop()
task = tasks.pop()

# ---- try it ----------------------------------------------------------------------------------
st.subheader("Try it")
if task == "classification":
    text = st.text_area("Sentences, one per line", **kept("try_text", ""),
                        placeholder="A warm, funny film.\nThe battery died after a day.")
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if sentences:
        labels = list(dict.fromkeys(n for m in models.values() for n in m.label_names))
        probabilities = {}
        for name, model in models.items():
            probs = model.probabilities(sentences)
            probabilities[name] = [{label: float(p) for label, p in zip(model.label_names, row)} for row in probs]
        for i, sentence in enumerate(sentences):
            by_run = {name: [rows[i].get(label, 0.0) for label in labels] for name, rows in probabilities.items()}
            st.plotly_chart(figures.probability_figure(sentence, by_run, labels), width="stretch", key=f"try-{i}")
else:
    prompt = st.text_input("Prompt", placeholder="Once upon a time", **kept("try_prompt", ""))
    c1, c2 = st.columns(2)
    tokens = c1.number_input("New tokens", 1, 512, **kept("try_tokens", 40))
    temperature = c2.number_input("Temperature (0: greedy decoding)", 0.0, 2.0, **kept("try_temperature", 0.0))
    if prompt:
        first = root / chosen[0]
        with st.spinner("Loading the base model…"):
            answers = {**models, "base model": cached_base(str(first))}
        for name, model in answers.items():
            st.markdown(f"**{name}**: {prompt}{model.generate(prompt, int(tokens), float(temperature))}")

# ---- evaluate on a test file -------------------------------------------------------------------
st.subheader("Evaluate on a test file")
kinds = ["csv", "tsv", "jsonl", "parquet"] if task == "classification" else ["txt", "jsonl"]
path = file_choice("Test file: " + ", ".join(kinds) + " (read like training data; its labels must be the runs' "
                   "classes)", kinds, f"eval_file-{task}", root, None, "none: upload a test file")
if path is not None and st.button("Evaluate", type="primary", key="evaluate"):
    reports, bar = [], st.progress(0.0, text="Evaluating…")
    try:
        for index, name in enumerate(chosen):
            def progress(done, total, index=index, name=name):
                bar.progress((index + done / total) / len(chosen), text=f"Evaluating {name}: {done}/{total}")
            reports.append(evaluate_run(root / name, path, progress=progress, loaded=models[name]))
        st.session_state["eval_reports"] = (Path(path).name, reports)
    except lc.LamdaError as error:
        st.error(user_message(error))
    bar.empty()

if "eval_reports" in st.session_state:
    data_name, reports = st.session_state["eval_reports"]
    st.markdown(f"**{data_name}**")
    st.dataframe(pd.DataFrame(side_by_side(reports)), hide_index=True, width="stretch")
    for report in reports:
        if not isinstance(report, ClassificationReport):
            continue
        with st.container(border=True):
            st.markdown(f"**{report.run}**: accuracy {100 * report.accuracy:.1f}%, macro F1 "
                        f"{100 * report.macro_f1:.1f}% on {report.examples} examples")
            left, right = st.columns([1, 1])
            left.plotly_chart(figures.confusion_figure(report.confusion, report.label_names, "confusion matrix"),
                              width="stretch", key=f"confusion-{report.run}")
            right.dataframe(pd.DataFrame(report.per_class), hide_index=True, width="stretch")
            st.markdown(f"Most confidently wrong ({len(report.wrong)})")
            st.dataframe(pd.DataFrame(report.wrong), hide_index=True, width="stretch")
            d1, d2, d3 = st.columns(3)
            d1.download_button("Wrong examples (CSV)", report.wrong_csv(), f"{report.run}-wrong.csv",
                               key=f"wrong-{report.run}")
            d2.download_button("Every prediction (CSV)", report.rows_csv(), f"{report.run}-predictions.csv",
                               key=f"rows-{report.run}")
            d3.download_button("Report (JSON)", json.dumps(report.summary(), indent=1), f"{report.run}-report.json",
                               key=f"json-{report.run}")
