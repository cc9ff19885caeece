"""The run history: status, method, data, final metrics, failure reasons; overlay curves; one run's
Stop, downloads, files and delete; what fine-tuning changed in a finished run."""
import pandas as pd
import streamlit as st

from lamda_core import LamdaError, figures
from lamda_core.runs.folder import RunFolder, list_runs
from studio_ui.common import model_label, page_setup, runs_root, sidebar
from studio_ui.runs_view import data_label, run_panel, update_analysis
from studio_ui.state import kept_choice

page_setup("Runs")
sidebar()
st.title("Runs")
root = runs_root()
if message := st.session_state.pop("runs_message", None):  # the result of the last Delete
    (st.error if message.startswith("Could not") else st.success)(message)
runs = list_runs(root)
if not runs:
    st.info("No runs yet. Start one on the Fine-tune page.")
    st.stop()
rows = []
for folder in runs:
    run = RunFolder(folder)
    status, config = run.status(), run.config
    rows.append(
        {
            "run": folder.name,
            "state": status["state"],
            "method": config.method,
            "model": model_label(config.source),
            "rank": config.rank_label,
            "data": data_label(config.train_data),
            "steps": f"{status.get('step') or 0}/{status.get('total_steps') or config.max_steps or '?'}",
            **{k.replace("eval_", ""): round(v, 4) for k, v in run.last_eval().items()},
            "reason": status.get("reason") or "",
        }
    )
st.dataframe(pd.DataFrame(rows).fillna(""), hide_index=True, width="stretch")

names = [folder.name for folder in runs]
chosen = st.multiselect("Overlay runs", names, **kept_choice("overlay", names, names[-2:]))
series_names = list(figures.TRAINING_SERIES)
series = st.multiselect("Curves", series_names, format_func=figures.TRAINING_SERIES.get,
                        **kept_choice("series", series_names, ["loss", "eval_loss"]))
if chosen and series:
    st.plotly_chart(figures.training_figure({n: RunFolder(root / n).metrics() for n in chosen}, series),
                    width="stretch")

st.subheader("Run folder")
selected = st.selectbox("Run", names, **kept_choice("inspect", names, names[-1]))
folder = root / selected


following = RunFolder(folder).is_live()


@st.fragment(run_every=2.0 if following else None)
def selected_run() -> None:
    """The selected run's panel, followed every 2 s while it is queued or training, then still."""
    run_panel(folder, charts=False)
    if following and not RunFolder(folder).is_live():
        st.rerun()  # it is done: redraw the page (Delete, its files) once, without the timer


selected_run()
files = pd.DataFrame(RunFolder(folder).files(), columns=["file", "bytes"])
st.dataframe(files, hide_index=True, width="stretch")
active = RunFolder(folder).is_live()
# one confirmation per run: the checkbox's key names the run, so ticking it for one run never
# carries over to the next one selected (Streamlit drops the state of a widget it does not draw)
confirm = st.checkbox(f"Yes, delete {selected} and all its files", key=f"confirm_delete-{selected}", disabled=active)
if st.button("Delete run", key=f"delete-{selected}", disabled=active or not confirm):
    try:
        RunFolder(folder).delete()
        st.session_state["runs_message"] = f"Deleted {selected} and all its files."
    except LamdaError as error:
        st.session_state["runs_message"] = f"Could not delete {selected}: {error}"
    st.rerun()
if active:
    st.caption("A queued or running run cannot be deleted; stop it first.")

st.subheader("What fine-tuning changed")
update_analysis(folder, root)
