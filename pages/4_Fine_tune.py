"""Launch a short local fine-tune and watch it converge; re-attaches after a reload."""
import time
from pathlib import Path

import streamlit as st

import lamda_core as lc
from lamda_core import figures
from lamda_core import choices
from lamda_core.training.config import TrainConfig
from lamda_core.training.export import export_merged
from lamda_core.training.preflight import check_run
from lamda_core.training.runs import RunFolder, active_run, read_config, read_metrics, read_status, request_stop, start_run
from studio_ui.common import page_setup, runs_root, sidebar
from studio_ui.runs_view import zip_folder

page_setup("Fine-tune")
source, task, dtype = sidebar()
st.title("Fine-tune")
root = runs_root()

with st.form("launch"):
    st.subheader("New run")
    if task not in choices.TRAIN_TASKS:
        st.warning("Choose the classification or causal-lm task in the sidebar to fine-tune.")
    demo = "demo-sentiment" if task == "classification" else "demo-corpus"
    c1, c2 = st.columns(2)
    data_choice = c1.radio("Data", [f"Built-in demo ({demo})", "Upload a file"], key="data_choice")
    upload = c2.file_uploader("CSV, TSV (header line optional), JSONL, Parquet (classification) or TXT (causal LM)",
                              type=["csv", "tsv", "jsonl", "parquet", "txt"],
                              key="upload")
    allocation = st.session_state.get("allocation") if st.session_state.get("allocation_source") == source else None
    methods = [m for m in choices.METHODS if m != "lamda++" or allocation is not None]
    c3, c4, c5, c6 = st.columns(4)
    method = c3.selectbox("Method", methods, key="ft_method")
    rank = c4.number_input("Rank", 1, 256, choices.DEFAULT_RANK, key="ft_rank")
    steps = c5.number_input("Steps", 1, 100000, 60, key="ft_steps")
    batch = c6.number_input("Batch size", 1, 1024, 16, key="ft_batch")
    c7, c8, c9, c10 = st.columns(4)
    lr = c7.number_input("Learning rate (0 = method default)", 0.0, 1.0, 0.0, format="%.5f", key="ft_lr")
    seq = c8.number_input("Sequence length", 8, 4096, 64, key="ft_seq")
    init = c9.selectbox("Init (LaMDA)", choices.INIT_VARIANTS, key="ft_init")
    freeze = c10.slider("Freeze fraction eta", 0.05, 1.0, choices.DEFAULT_FREEZE_FRACTION, key="ft_freeze")
    start = st.form_submit_button("Start", type="primary")

if start:
    try:
        if task not in choices.TRAIN_TASKS or not source:
            raise lc.LamdaError("pick a model and the classification or causal-lm task first")
        folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{method}"
        train_data = demo
        if data_choice.startswith("Upload"):
            if upload is None:
                raise lc.LamdaError("choose a file to upload, or the built-in demo data")
            uploads = root / "uploads"
            uploads.mkdir(parents=True, exist_ok=True)
            train_data = str(uploads / Path(upload.name).name)
            Path(train_data).write_bytes(upload.getvalue())
        adapter = lc.LamdaConfig(rank=int(rank), init=init, freeze_fraction=float(freeze),
                                 rank_pattern=allocation.rank_pattern if method == "lamda++" else {},
                                 dropout=choices.DEFAULT_DROPOUT[method])
        config = TrainConfig(source=source, task=task, train_data=train_data, method=method, adapter=adapter,
                             learning_rate=lr or None, max_steps=int(steps), batch_size=int(batch), seq_len=int(seq),
                             eval_interval=max(1, int(steps) // 6), checkpoint_interval=max(1, int(steps) // 3),
                             dtype=dtype)
        for note in check_run(config):  # data, model and ranks, before the folder exists
            st.info(note)
        RunFolder.create(config, folder)
        start_run(folder)
        st.session_state["run_folder"] = str(folder)
    except lc.LamdaError as error:
        st.error(str(error))

attached = st.session_state.get("run_folder")
if attached and not (Path(attached) / "status.json").is_file():  # deleted meanwhile
    attached = None
if not attached:
    newest_active = active_run(root)  # after a reload: re-attach to the job that is still going
    attached = str(newest_active) if newest_active else None
st.session_state["run_folder"] = attached


@st.fragment(run_every=1.0)
def live(folder: Path) -> None:
    status, metrics, config = read_status(folder), read_metrics(folder), read_config(folder)
    state, total = status["state"], status.get("total_steps") or config.max_steps or 1
    step = metrics[-1]["step"] if metrics else 0
    remaining = metrics[-1]["remaining"] if metrics else None
    st.subheader(f"Run {folder.name}: {state}")
    eta = f", about {remaining:.0f} s left" if remaining is not None and state == "running" else ""
    st.progress(min(1.0, step / total), text=f"step {step} / {total}{eta}")
    if state == "failed":
        st.error(status.get("reason") or "the run failed")
    if state in ("queued", "running") and st.button("Stop", key="stop_run"):
        request_stop(folder)
    if metrics:
        c1, c2, c3 = st.columns(3)
        quality = "eval_accuracy" if config.task == "classification" else "eval_perplexity"
        c1.plotly_chart(figures.training_figure({folder.name: metrics}, ["loss", "eval_loss"]), width="stretch",
                        key=f"loss-{step}")
        c2.plotly_chart(figures.training_figure({folder.name: metrics}, [quality]), width="stretch",
                        key=f"quality-{step}")
        c3.plotly_chart(figures.training_figure({folder.name: metrics}, ["trainable_parameters"]),
                        width="stretch", key=f"params-{step}")
        last_eval = [row for row in metrics if quality in row]
        if last_eval:
            st.metric(quality.replace("eval_", "validation "), f"{last_eval[-1][quality]:.4f}")
    if state == "finished":
        d1, d2, d3 = st.columns(3)
        for column, name in ((d1, "adapter"), (d2, "peft"), (d3, "model")):
            if (folder / name).is_dir():
                column.download_button(f"Download {name} (zip)", zip_folder(folder / name), f"{folder.name}-{name}.zip",
                                       key=f"download-{name}")
        if st.button("Export a merged model", key="merge"):
            target = export_merged(folder)
            st.success(f"Merged model written to {target}")


if attached:
    live(Path(attached))
else:
    st.caption("No run yet: set the options above and press Start.")
