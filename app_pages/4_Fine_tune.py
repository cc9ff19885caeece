"""Launch a short local fine-tune and watch it converge: the data is checked and previewed on
upload, every queued or running run shows its own progress and Stop, and the last run stays after
a reload."""
from pathlib import Path

import pandas as pd
import streamlit as st

import lamda_core as lc
from lamda_core import choices
from lamda_core.data.chat import check_language_model_text, is_chat_file
from lamda_core.data.reading import ColumnError, file_columns, preview_classification
from lamda_core.methods import get_method, method_names
from lamda_core.runs.compare import create_comparison
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import RunFolder, any_live, create_run, list_runs, new_run_folder, start_run
from studio_ui.common import file_choice, page_setup, runs_root, sidebar, user_message
from studio_ui.run_settings import RunData, draft_config, fitted_rank, setting
from studio_ui.runs_view import run_panel
from studio_ui.state import kept, kept_choice, set_kept
from studio_ui.sweep_form import sweep_section

page_setup("Fine-tune")
source, task, dtype = sidebar()
st.title("Fine-tune")
root = runs_root()
trainable_task = task in choices.TRAIN_TASKS
if not trainable_task:
    st.warning("Choose the classification or causal-lm task in the sidebar to fine-tune.")


def show_preview(preview) -> None:
    """A checked classification file's first rows and its classes."""
    for note in preview.notes:
        st.info(note)
    left, right = st.columns([3, 1])
    left.dataframe(pd.DataFrame(preview.head), hide_index=True, width="stretch")
    right.dataframe(pd.DataFrame({"class": list(preview.class_counts), "rows": list(preview.class_counts.values())}),
                    hide_index=True, width="stretch")


@st.cache_data(show_spinner=False, max_entries=8)
def has_chat_template(source: str) -> bool:
    from lamda_core.models.loading import load_tokenizer, resolve_source

    try:
        return bool(getattr(load_tokenizer(resolve_source(source)), "chat_template", None))
    except lc.LamdaError:
        return False


def show_conversations(path: str) -> None:
    """A checked instruction file: how many conversations, in which format, the first three."""
    from lamda_core.data.chat import read_conversations, row_format
    from lamda_core.data.reading import read_records

    conversations = read_conversations(path)
    formats = sorted({row_format(r) for r in read_records(Path(path)).rows})
    st.success(f"{len(conversations)} conversations ({', '.join(formats)} format); the loss is on the assistant's "
               "answers, rendered with the model's chat template.")
    rows = [{"conversation": i + 1, "role": m["role"], "content": m["content"]}
            for i, c in enumerate(conversations[:3]) for m in c]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def classification_columns(path: str, validation: str | None) -> tuple[bool, str | None, str | None]:
    """(data ok, text column, label column) of an uploaded classification file: detected, or
    picked by the user (kept per file) whenever detection fails; checked and previewed at once."""
    name, file_key = Path(path).name, Path(path).parent.name  # the upload's content hash
    text_key, label_key = f"text_column-{file_key}", f"label_column-{file_key}"
    try:
        columns, *detected = file_columns(path)
    except lc.LamdaError as error:
        st.error(user_message(error))
        return False, None, None
    given = [st.session_state.get(f"keep_{k}") for k in (text_key, label_key)]
    given = [c if c in columns else None for c in given]
    defaults = [g or d for g, d in zip(given, detected)]
    preview, problem = None, None
    try:
        preview = preview_classification(path, *given)
    except ColumnError as error:
        problem = (f"{name}: no column is named like a {error.what} column (its columns: {', '.join(error.columns)}). "
                   "Pick the column that holds the text and the one that holds the label below; the file is "
                   "checked again at once.")
    except lc.LamdaError as error:
        problem = user_message(error)
    c1, c2 = st.columns(2)
    text = c1.selectbox("Text column", columns, placeholder="pick the text column",
                        **kept_choice(text_key, columns, defaults[0]))
    label = c2.selectbox("Label column", columns, placeholder="pick the label column",
                         **kept_choice(label_key, columns, defaults[1]))
    if problem:
        st.error(problem)
        return False, text, label
    show_preview(preview)
    if validation:
        try:
            preview_classification(validation, text, label)
        except lc.LamdaError as error:
            st.error(f"Validation file: {user_message(error)}")
            return False, text, label
    return True, text, label


# ---- data: the file in use is kept across pages; an upload is selected, checked and previewed at once
st.subheader("Data")
instruct = task == "causal-lm" and source is not None and has_chat_template(source)
demo = "demo-sentiment" if task != "causal-lm" else "demo-chat" if instruct else "demo-corpus"
kinds = ["csv", "tsv", "jsonl", "parquet"] if task != "causal-lm" else ["jsonl", "parquet", "txt"]
u1, u2 = st.columns(2)
with u1:
    train_data = file_choice("Training file: " + ", ".join(kinds), kinds, f"run_train_file-{task}", root, demo,
                             f"{demo} (built-in demo data)", help="Classification: a text and a label column (CSV / "
                             "TSV with or without a header line, JSONL, Parquet). Causal LM: instruction data (JSONL / "
                             "Parquet rows with 'messages', 'prompt' + 'completion' or 'instruction' + 'output'; the "
                             "loss is on the answers) or plain text (.txt).")
with u2:
    validation_data = file_choice("Validation file (optional)", kinds, f"run_validation_file-{task}", root, None,
                                  "none: a seeded 10% of the training file")
text_column, label_column, data_ok = None, None, True
if train_data == demo:
    st.caption(f"Training on the built-in demo data **{demo}**. Upload a file to train on your own.")
else:
    st.caption(f"Training on **{Path(train_data).name}**" + (f", validating on **{Path(validation_data).name}**"
                                                              if validation_data else ""))
    if task == "causal-lm":
        try:
            check_language_model_text(train_data, validation_data)
            if is_chat_file(train_data):
                show_conversations(train_data)
            else:
                st.code(Path(train_data).read_text(errors="replace")[:400] + " ...", language=None)
        except lc.LamdaError as error:
            st.error(user_message(error))
            data_ok = False
    else:
        data_ok, text_column, label_column = classification_columns(train_data, validation_data)

# ---- options: kept across pages (run_settings), the same run the Costs page estimates ----------
MATCH_LABELS = {"defaults": "each at its defaults", "rank": "same total rank",
                "parameters": "same averaged parameters"}
allocation = st.session_state.get("allocation") if st.session_state.get("allocation_source") == source else None
methods = method_names()  # LaMDA++ without the Rank budget page's ranks allocates from the spectra
data = RunData(train_data, validation_data, text_column, label_column)
st.subheader("New run")
c3, c4, c5, c6 = st.columns(4)
if setting("run_method") not in methods:
    set_kept("run_method", choices.DEFAULT_METHOD)
method = c3.selectbox("Method", methods, **kept("run_method", setting("run_method")),
                      help="; ".join(get_method(m).summary for m in methods) + ".")
c4.number_input("Rank (0 = method default)", 0, 256, **kept("run_rank", setting("run_rank")),
                help="r of every adapted matrix. Defaults, chosen on real data: " + ", ".join(
                    f"{m} {get_method(m).default_rank}" for m in methods if get_method(m).adapts_matrices))
if not setting("run_rank") and trainable_task and (rank_note := fitted_rank(method, source, task)[1]):
    st.info(rank_note)
if get_method(method).needs_rank_pattern:
    st.caption("LaMDA++ ranks: " + ("the Rank budget page's allocation (total rank "
                                    f"{allocation.total_rank})." if allocation else "allocated from the spectra at "
                                    "the rank above x matrices (equal-energy); the Rank budget page chooses others."))
c5.number_input("Steps", 1, 100000, **kept("run_steps", setting("run_steps")), help="Optimizer steps")
c6.number_input("Batch size", 1, 1024, **kept("run_batch", setting("run_batch")))
c7, c8, c9, c10, c10b = st.columns(5)
c7.number_input("Learning rate (0 = method default)", 0.0, 1.0, format="%.5f", **kept("run_lr", setting("run_lr")),
                help="Defaults, chosen on real data: " + ", ".join(
                    f"{m} {get_method(m).default_learning_rate:g}" for m in methods))
c8.number_input("Sequence length", 8, 4096, **kept("run_seq", setting("run_seq")),
                help="Tokens per example (longer ones are cut)")
c9.selectbox("Init (LaMDA)", choices.INIT_VARIANTS, **kept("run_init", setting("run_init")),
             help="svd (the paper): A = top-r right singular vectors of W, B = the left ones, S = 0; "
                  "gradient: the same from the task gradient dL/dW over 8 batches, so S starts along "
                  "the best rank-r part of full fine-tuning's first step; svd-residual: "
                  "the top-r part moves from W into the adapter; random: A, S random, B = 0.")
c10.slider("Freeze fraction eta", 0.0, 1.0, step=0.01, **kept("run_freeze", setting("run_freeze")),
           help="B is fully frozen after eta x steps, one column at a time (largest singular "
                "direction first); by default within the first 1%, so S carries the update.")
c10b.selectbox("Pooling", choices.POOLINGS, disabled=task != "classification",
               **kept("run_pooling", setting("run_pooling")),
               help="What the classifier reads: auto = what the model was trained with (MiniLM: the "
                    "mean of the token states; docs/training.md, Pooling); cls = the model's own head, which "
                    "plain transformers reloads the same way; mean = the masked mean of the token states.")


def launch_config(method: str) -> TrainConfig:
    """The run the form describes, for ``method``."""
    return draft_config(source, task, dtype, method, data, allocation.rank_pattern if allocation else None)


ready = data_ok and trainable_task and bool(source)
b1, b2 = st.columns([1, 5])
start = b1.button("Start", type="primary", disabled=not ready, key="start",
                  help=None if data_ok else "Fix the data file first (see the message above).")
if ready:
    try:
        estimate = lc.estimate_costs(lc.CostQuery.from_train_config(launch_config(method)))
        b2.caption(f"Estimated peak training memory of this run: **{estimate.peak / 2 ** 20:,.0f} MiB** "
                   f"({estimate.trainable_average:,.0f} trainable parameters averaged over its steps; the Costs "
                   "page itemizes it). The run panel shows the measured peak beside it once it has finished.")
    except lc.LamdaError as error:
        b2.caption(f"No estimate for this run: {error}")

st.markdown("**Compare methods**: the same data, seed, steps and shape for each, every method at its default "
            "learning rate, queued one after another; the results are on the Compare page.")
c11, c12 = st.columns(2)
compare_methods = c11.multiselect(
    "Methods to compare",
    method_names(),
    **kept_choice("cmp_methods", method_names(), list(choices.DEFAULT_COMPARE_METHODS)),
    help="full: full fine-tuning, the unmatched reference (every weight trains).",
)
match = c12.radio("Matched budget", choices.COMPARE_MATCHES, horizontal=True,
                  **kept_choice("cmp_match", list(choices.COMPARE_MATCHES), choices.COMPARE_MATCHES[0]),
                  format_func=MATCH_LABELS.get,
                  help="each at its defaults: LoRA at its default rank, LaMDA at Rank (0: its own), LaMDA++ "
                       "at LaMDA's total rank; same total rank: every adapter at Rank (0: LaMDA's), LaMDA++ at "
                       "the same total rank; same averaged "
                       "parameters: LoRA at the rank whose parameters come closest to LaMDA's parameters "
                       "averaged over its freezing schedule.")
compare = st.button("Compare methods", disabled=not ready, key="compare",
                     help="Queue one run per chosen method with matched budgets.")

def watch(folders: list[Path]) -> None:
    """Keep ``folders`` on this page, whatever their state, until dismissed."""
    watched = st.session_state.setdefault("watched_runs", [])
    watched.extend(str(f) for f in folders if str(f) not in watched)


def dismiss(folder: Path) -> None:
    st.session_state["watched_runs"] = [f for f in st.session_state.get("watched_runs", []) if f != str(folder)]
    st.session_state.setdefault("dismissed_runs", set()).add(str(folder))


if compare:
    try:
        with st.spinner("Preparing the comparison (LaMDA++ ranks from the spectra, checks of every run)…"):
            folders = create_comparison(launch_config(choices.DEFAULT_METHOD), compare_methods, root, match)
        for folder in folders:
            start_run(folder, warm=True)
        watch(folders)
        st.session_state["comparison"] = RunFolder(folders[0]).config.comparison
        st.session_state["comparison_notice"] = f"Comparison **{st.session_state['comparison']}**: " + ", ".join(
            f"{RunFolder(f).config.method} (rank {RunFolder(f).config.rank_label})" for f in folders) + \
            ". They train one after another below; the Compare page shows the results."
    except lc.LamdaError as error:
        st.error(user_message(error))
if st.session_state.get("comparison_notice"):  # kept while the runs train and after (the page reruns when they end)
    st.success(st.session_state["comparison_notice"])
    st.page_link("app_pages/6_Compare.py", label="Open the Compare page", icon=":material/compare_arrows:")

sweep_section(lambda: launch_config(choices.DEFAULT_METHOD), root, ready, watch)

if start:
    st.session_state.pop("comparison_notice", None)
    try:
        folder = create_run(launch_config(method), new_run_folder(root, method))
        start_run(folder, warm=True)
        watch([folder])
    except lc.LamdaError as error:
        st.error(user_message(error))


# ---- runs: every active one, every one started in this session until dismissed (a stopped or
# failed one with its reason and Resume), and after a reload the newest. The panel follows the
# runs once a second while any is queued or training, and costs nothing when none is. ----------
def shown_runs() -> list[Path]:
    runs = list_runs(root)
    dismissed = st.session_state.get("dismissed_runs", set())
    watched = [Path(f) for f in st.session_state.get("watched_runs", []) if RunFolder(f).exists()]
    newest = [runs[-1]] if runs and not watched and str(runs[-1]) not in dismissed else []
    active = [f for f in runs if RunFolder(f).is_active() and str(f) not in dismissed]
    return list(dict.fromkeys(active + watched + newest))


following = any_live(shown_runs())


@st.fragment(run_every=1.0 if following else None)
def live_runs() -> None:
    shown = shown_runs()
    if not shown:
        st.caption("No run yet: set the options above and press Start.")
        return
    st.subheader("Runs" if len(shown) > 1 else "Run")
    for folder in shown:
        with st.container(border=True):
            run_panel(folder, dismiss=dismiss)
    if following and not any_live(shown):
        st.rerun()  # the last run is done: redraw the page once, without the timer


live_runs()
