"""Use what you trained: type sentences and see the label probabilities of up to three runs side
by side (a causal LM: chat with the runs and the base model side by side, streamed), and score
runs on an uploaded test file: accuracy, macro F1, per class, the confusion matrix and the most
confidently wrong examples (a causal LM on conversations: exact match and answer perplexity
against the base model, the worst answers), all downloadable. Each run is loaded once per session
(use/inference.py)."""
import json
from pathlib import Path

import pandas as pd
import streamlit as st

import lamda_core as lc
from lamda_core import figures
from lamda_core.runs.folder import RunFolder, list_runs
from lamda_core.use.chat_evaluation import ChatReport
from lamda_core.use.evaluation import ClassificationReport, evaluate_run, side_by_side, write_csv
from lamda_core.use.inference import load_base, load_run
from studio_ui.common import file_choice, page_setup, runs_root, sidebar, user_message
from studio_ui.state import kept, kept_choice

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


def chat_report(report: ChatReport) -> None:
    """A causal-LM run scored on conversations: exact match and perplexity against the base
    model, the worst answers, downloads."""
    with st.container(border=True):
        st.markdown(f"**{report.run}**: exact match {100 * report.exact_match:.1f}% (base model "
                    f"{100 * report.base_exact_match:.1f}%), answer perplexity {report.fine_tuned_perplexity:.3f} "
                    f"(base {report.base_perplexity:.3f}) on {report.examples} conversations")
        if report.truncated:
            st.info(f"{report.truncated} conversations are longer than the run's sequence length; their loss counts "
                    "the answer tokens that fit.")
        st.markdown(f"Worst {len(report.worst)} (wrong answers first, then the highest loss per answer token)")
        st.dataframe(pd.DataFrame(report.worst), hide_index=True, width="stretch")
        d1, d2 = st.columns(2)
        d1.download_button("Every answer (CSV)", write_csv(report.rows), f"{report.run}-answers.csv",
                           key=f"answers-{report.run}")
        d2.download_button("Report (JSON)", json.dumps(report.summary(), indent=1), f"{report.run}-report.json",
                           key=f"chat-json-{report.run}")


def loaded(folder: Path):
    with st.spinner(f"Loading {folder.name}…"):
        return cached_run(str(folder), RunFolder(folder).changed_at())


runs = [f for f in list_runs(root) if usable(f)]
if not runs:
    st.info("No finished run yet. Train one on the Fine-tune page; it can be tried and evaluated here.")
    st.stop()
names = [f.name for f in runs]
finished = [n for n in names if RunFolder(root / n).status()["state"] == "finished"]
newest = RunFolder(root / (finished or names)[-1]).config  # the two newest runs of one task and model side by side
default = [n for n in finished if (RunFolder(root / n).config.task, RunFolder(root / n).config.source)
           == (newest.task, newest.source)][-2:] or names[-1:]
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
    chat = any(m.chat for m in models.values())
    c1, c2, c3, c4 = st.columns(4)
    tokens = c1.number_input("Max new tokens", 1, 512, **kept("try_tokens", 40))
    temperature = c2.number_input("Temperature (0: greedy)", 0.0, 2.0, step=0.1, **kept("try_temperature", 0.0))
    top_p = c3.number_input("Top-p", 0.05, 1.0, step=0.05, **kept("try_top_p", 1.0),
                            help="Sampling keeps the smallest set of tokens whose probability adds up to this; "
                                 "used when the temperature is above 0.")
    # a model without a chat template always continues plain text (RunModel._generation), so the
    # toggle is the user's choice for instruct models only, off unless they turn it on
    plain_help = ("Off: the prompt is a user message in the model's chat template (an instruct model). "
                  "On: the model continues the text as it is.")
    if chat:
        raw = c4.toggle("Plain text", **kept("try_raw", False), help=plain_help)
    else:
        raw = c4.toggle("Plain text", value=True, disabled=True, key="try_raw_no_template",
                        help=plain_help + " These runs' models have no chat template: always on.")
    st.caption("Each prompt is answered on its own by every chosen run and by the base model, side by side, "
               "streamed as the tokens come.")
    with st.container():
        prompt = st.chat_input("Ask the models (e.g. Is this review positive or negative? A warm, funny film.)",
                               key="try_chat")
    by_source = {RunFolder(root / name).config.source: name for name in chosen}  # one base model per source
    with st.spinner("Loading the base model…"):
        bases = {"base model" if len(by_source) == 1 else f"base {source}": cached_base(str(root / name))
                 for source, name in by_source.items()}
    answering = {**models, **bases}
    history = st.session_state.setdefault("chat_history", [])
    for past_prompt, past in history[-3:]:
        with st.chat_message("user"):
            st.markdown(past_prompt)
        for column, (name, answer) in zip(st.columns(len(past)), past.items()):
            column.markdown(f"**{name}**")
            column.markdown(answer)
    if prompt:
        with st.chat_message("user"):
            st.markdown(prompt)
        answers = {}
        for column, (name, model) in zip(st.columns(len(answering)), answering.items()):
            column.markdown(f"**{name}**")
            with column:
                answers[name] = st.write_stream(model.stream(prompt, int(tokens), float(temperature), float(top_p),
                                                             raw=bool(raw)))
        history.append((prompt, answers))

# ---- evaluate on a test file -------------------------------------------------------------------
st.subheader("Evaluate on a test file")
kinds = ["csv", "tsv", "jsonl", "parquet"] if task == "classification" else ["txt", "jsonl", "parquet"]
what = ("read like training data; its labels must be the runs' classes" if task == "classification" else
        "conversations: exact match of the greedy answers and answer perplexity, base model beside; plain text: "
        "perplexity")
path = file_choice("Test file: " + ", ".join(kinds) + f" ({what})", kinds, f"eval_file-{task}", root, None,
                   "none: upload a test file")
if path is not None and st.button("Evaluate", type="primary", key="evaluate"):
    reports, bar = [], st.progress(0.0, text="Evaluating…")
    try:
        for index, name in enumerate(chosen):
            def progress(done, total, index=index, name=name):
                bar.progress((index + done / total) / len(chosen), text=f"Evaluating {name}: {done}/{total}")
            base = cached_base(str(root / name)) if task == "causal-lm" else None
            reports.append(evaluate_run(root / name, path, progress=progress, loaded=models[name], base=base))
        st.session_state["eval_reports"] = (Path(path).name, reports)
    except lc.LamdaError as error:
        st.error(user_message(error))
    bar.empty()

if "eval_reports" in st.session_state:
    data_name, reports = st.session_state["eval_reports"]
    st.markdown(f"**{data_name}**")
    st.dataframe(pd.DataFrame(side_by_side(reports)), hide_index=True, width="stretch")
    for report in reports:
        if isinstance(report, ChatReport):
            chat_report(report)
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
