"""The run history: status, method, data, final metrics, failure reasons; overlay curves; one run's
Stop, downloads, files and delete; what fine-tuning changed in a finished run."""
import pandas as pd
import streamlit as st

from lamda_core import figures
from lamda_core.training.runs import RunFolder, list_runs
from studio_ui.common import page_setup, runs_root, sidebar
from studio_ui.runs_view import data_label, run_panel, update_analysis

page_setup("Runs")
sidebar()
st.title("Runs")
root = runs_root()
runs = list_runs(root)
if not runs:
    st.info(f"No runs yet in {root}. Start one on the Fine-tune page.")
    st.stop()
rows = []
for folder in runs:
    run = RunFolder(folder)
    status, config = run.status(), run.config
    rows.append({"run": folder.name, "state": status["state"], "method": config.method, "model": config.source,
                 "rank": config.rank_label, "data": data_label(config.train_data),
                 "steps": f"{status.get('step') or 0}/{status.get('total_steps') or config.max_steps or '?'}",
                 **{k.replace("eval_", ""): round(v, 4) for k, v in run.last_eval().items()},
                 "reason": status.get("reason") or ""})
st.dataframe(pd.DataFrame(rows).fillna(""), hide_index=True, width="stretch")

names = [folder.name for folder in runs]
chosen = st.multiselect("Overlay runs", names, default=names[-2:], key="overlay")
series = st.multiselect("Curves", list(figures.TRAINING_SERIES), default=["loss", "eval_loss"], key="series",
                        format_func=figures.TRAINING_SERIES.get)
if chosen and series:
    st.plotly_chart(figures.training_figure({n: RunFolder(root / n).metrics() for n in chosen}, series),
                    width="stretch")

st.subheader("Run folder")
selected = st.selectbox("Run", names, index=len(names) - 1, key="inspect")
folder = root / selected


@st.fragment(run_every=2.0)
def selected_run() -> None:
    run_panel(folder, charts=False)


selected_run()
files = [{"file": str(p.relative_to(folder)), "bytes": p.stat().st_size} for p in sorted(folder.rglob("*")) if p.is_file()]
st.dataframe(pd.DataFrame(files), hide_index=True, width="stretch")
active = RunFolder(folder).is_active()
confirm = st.checkbox(f"Yes, delete {selected} and all its files", key="confirm_delete", disabled=active)
if st.button("Delete run", key="delete", disabled=active or not confirm):
    RunFolder(folder).delete()
    st.session_state.pop("run_folder", None)
    st.success(f"Deleted {selected}")
    st.rerun()
if active:
    st.caption("A queued or running run cannot be deleted; stop it first.")

st.subheader("What fine-tuning changed")
update_analysis(folder, root)
