"""Launch a short local fine-tune and watch it converge: the data is checked and previewed on
upload, every queued or running run shows its own progress and Stop, and the last run stays after
a reload."""
from pathlib import Path

import pandas as pd
import streamlit as st

import lamda_core as lc
from lamda_core import choices
from lamda_core.methods import get_method, method_names
from lamda_core.training.compare import create_comparison
from lamda_core.training.config import TrainConfig
from lamda_core.training.data import check_language_model_text, preview_classification
from lamda_core.training.runs import RunFolder, create_run, list_runs, new_run_folder, start_run
from studio_ui.common import kept, page_setup, runs_root, saved_upload, set_kept, sidebar
from studio_ui.run_settings import RunData, draft_config, setting
from studio_ui.runs_view import run_panel

page_setup("Fine-tune")
source, task, dtype = sidebar()
st.title("Fine-tune")
root = runs_root()
trainable_task = task in choices.TRAIN_TASKS
if not trainable_task:
    st.warning("Choose the classification or causal-lm task in the sidebar to fine-tune.")


def show_preview(path: str, label: str, columns: tuple[str | None, str | None]):
    """Check a classification file and show its first rows and classes; the preview, or None
    after showing the error."""
    try:
        preview = preview_classification(path, *columns)
    except lc.LamdaError as error:
        st.error(f"{label}: {error}")
        return None
    for note in preview.notes:
        st.info(note)
    left, right = st.columns([3, 1])
    left.dataframe(pd.DataFrame(preview.head), hide_index=True, width="stretch")
    right.dataframe(pd.DataFrame({"class": list(preview.class_counts), "rows": list(preview.class_counts.values())}),
                    hide_index=True, width="stretch")
    return preview


# ---- data: an uploaded file is used as soon as it is chosen, checked and previewed at once ----
st.subheader("Data")
demo = "demo-sentiment" if task != "causal-lm" else "demo-corpus"
kinds = ["csv", "tsv", "jsonl", "parquet"] if task != "causal-lm" else ["txt", "jsonl"]
u1, u2 = st.columns(2)
upload = u1.file_uploader("Training file: " + ", ".join(kinds) + " (none: the built-in demo data)", type=kinds,
                          key="upload", help="Classification: a text and a label column (CSV / TSV with or "
                          "without a header line, JSONL, Parquet). Causal LM: plain text.")
validation_upload = u2.file_uploader("Validation file (optional; default: a seeded 10% of the training file)",
                                     type=kinds, key="upload_validation")
train_data, validation_data, text_column, label_column, data_ok = demo, None, None, None, True
if upload is None:
    st.caption(f"Training on the built-in demo data **{demo}**. Upload a file to train on your own.")
else:
    train_data = saved_upload(upload, root)
    validation_data = saved_upload(validation_upload, root) if validation_upload is not None else None
    st.caption(f"Training on **{upload.name}**" + (f", validating on **{validation_upload.name}**"
                                                    if validation_upload is not None else ""))
    if task == "causal-lm":
        try:
            check_language_model_text(train_data, validation_data)
            st.code(Path(train_data).read_text(errors="replace")[:400] + " ...", language=None)
        except lc.LamdaError as error:
            st.error(str(error))
            data_ok = False
    else:
        detected = show_preview(train_data, upload.name, (None, None))
        if detected is None:
            data_ok = False
        else:
            file_key = Path(train_data).stem
            c1, c2 = st.columns(2)
            text_column = c1.selectbox("Text column", detected.columns, index=detected.columns.index(detected.text_column),
                                       key=f"text_column-{file_key}")
            label_column = c2.selectbox("Label column", detected.columns,
                                        index=detected.columns.index(detected.label_column), key=f"label_column-{file_key}")
            if (text_column, label_column) != (detected.text_column, detected.label_column):
                data_ok = show_preview(train_data, upload.name, (text_column, label_column)) is not None
            if data_ok and validation_data:
                try:
                    preview_classification(validation_data, text_column, label_column)
                except lc.LamdaError as error:
                    st.error(f"{validation_upload.name}: {error}")
                    data_ok = False

# ---- options: kept across pages (run_settings), the same run the Costs page estimates ----------
MATCH_LABELS = {"defaults": "each at its defaults", "rank": "same total rank",
                "parameters": "same averaged parameters"}
allocation = st.session_state.get("allocation") if st.session_state.get("allocation_source") == source else None
methods = [m for m in method_names() if allocation is not None or not get_method(m).needs_rank_pattern]
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
c10.slider("Freeze fraction eta", 0.01, 1.0, step=0.01, **kept("run_freeze", setting("run_freeze")),
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
c11, c12, c13 = st.columns([2, 2, 1])
compare_methods = c11.multiselect(
    "Methods to compare", method_names(), default=list(choices.DEFAULT_COMPARE_METHODS), key="cmp_methods",
    help="full: full fine-tuning, the unmatched reference (every weight trains).")
match = c12.radio("Matched budget", choices.COMPARE_MATCHES, key="cmp_match", horizontal=True,
                  format_func=MATCH_LABELS.get,
                  help="each at its defaults: LoRA at its default rank, LaMDA at Rank (0: its own), LaMDA++ "
                       "at LaMDA's total rank; same total rank: every adapter at Rank (0: LaMDA's), LaMDA++ at "
                       "the same total rank; same averaged "
                       "parameters: LoRA at the rank whose parameters come closest to LaMDA's parameters "
                       "averaged over its freezing schedule.")
compare = c13.button("Compare methods", disabled=not ready, key="compare",
                     help="Queue one run per chosen method with matched budgets.")

if compare:
    try:
        with st.spinner("Preparing the comparison (LaMDA++ ranks from the spectra, checks of every run)…"):
            folders = create_comparison(launch_config(choices.DEFAULT_METHOD), compare_methods, root, match)
        for folder in folders:
            start_run(folder)
        st.session_state["comparison"] = RunFolder(folders[0]).config.comparison
        st.session_state["run_folder"] = str(folders[-1])
        st.success(f"Queued comparison **{st.session_state['comparison']}**: " + ", ".join(
            f"{RunFolder(f).config.method} (rank {RunFolder(f).config.rank_label})" for f in folders)
            + ". They train one after another below; the Compare page shows the results.")
        st.page_link("app_pages/6_Compare.py", label="Open the Compare page", icon=":material/compare_arrows:")
    except lc.LamdaError as error:
        st.error(str(error))

if start:
    try:
        folder = create_run(launch_config(method), new_run_folder(root, method))
        start_run(folder)
        st.session_state["run_folder"] = str(folder)
    except lc.LamdaError as error:
        st.error(str(error))


# ---- runs: every active one, and the last one started (after a reload: the newest) ------------
@st.fragment(run_every=1.0)
def live_runs() -> None:
    runs = list_runs(root)
    active = [folder for folder in runs if RunFolder(folder).is_active()]
    attached = st.session_state.get("run_folder")
    last = Path(attached) if attached and (Path(attached) / "status.json").is_file() else (runs[-1] if runs else None)
    shown = active + ([last] if last is not None and last not in active else [])
    if not shown:
        st.caption("No run yet: set the options above and press Start.")
        return
    st.subheader("Runs" if len(shown) > 1 else "Run")
    for folder in shown:
        with st.container(border=True):
            run_panel(folder)


live_runs()
