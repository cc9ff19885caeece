"""LaMDA Studio home: pick a model and see its summary. Run with `./studio app`."""
from pathlib import Path

import streamlit as st

from lamda_core import LamdaError, load_model
from lamda_core.summary import summarize_model

LOGO = str(Path(__file__).parent / "assets" / "logo.svg")

st.set_page_config(page_title="LaMDA Studio", page_icon=LOGO, layout="wide")

SOURCES = {"Embedded MiniLM (all-MiniLM-L6-v2)": "default", "Tiny Llama (demo)": "tiny-llama",
           "Tiny GPT-2 (demo)": "tiny-gpt2", "Local folder or hub id": None}


@st.cache_resource(show_spinner="Loading model…")
def cached_model(source: str, task: str, dtype: str):
    return load_model(source, task=task, dtype=dtype)


with st.sidebar:
    st.image(LOGO, width=160)
    choice = st.selectbox("Model", list(SOURCES), key="model_choice")
    source = SOURCES[choice] or st.text_input("Folder or hub id", key="model_path", placeholder="/path/to/model")
    task = st.selectbox("Task", ["classification", "causal-lm", "encoder"], key="task")
    dtype = st.selectbox("Weights dtype", ["float32", "bfloat16", "float16"], key="dtype")

st.title("LaMDA Studio")
st.caption("Understand a transformer's weights and adapt it cheaply with LaMDA and LaMDA++.")

if not source:
    st.info("Enter a local model folder or a hub id in the sidebar.")
    st.stop()
try:
    model, tokenizer = cached_model(source, task, dtype)
except LamdaError as error:
    st.error(str(error))
    st.stop()

summary = summarize_model(model)
cols = st.columns(4)
cols[0].metric("Parameters", f"{summary.parameters / 1e6:.1f} M")
cols[1].metric("Layers", summary.layers if summary.layers is not None else "?")
cols[2].metric("Hidden size", summary.hidden_size if summary.hidden_size is not None else "?")
cols[3].metric("Adaptable matrices", summary.target_count)
st.write(f"**{summary.architecture}** ({summary.family} family, {summary.dtype} weights)")
st.dataframe({"kind": list(summary.targets_by_kind), "matrices": list(summary.targets_by_kind.values())},
             hide_index=True)
