"""The sidebar every page shares, and what pages reuse across reruns (model, spectra)."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from lamda_core import LamdaError, load_model, scan_spectra
from lamda_core.choices import DEFAULT_CHAT_SEQ_LEN, DEFAULT_SEQ_LEN, MODEL_DTYPES, TASKS
from lamda_core.models.embedded_llm import DISPLAY_NAME as EMBEDDED_LLM_NAME
from lamda_core.models.embedded_llm import SOURCE_NAME as EMBEDDED_LLM
from studio_ui.state import follow, kept, set_kept

ROOT = Path(__file__).resolve().parent.parent
LOGO = str(ROOT / "assets" / "logo.svg")
SOURCES = {"MiniLM-L6 (embedded)": "default", EMBEDDED_LLM_NAME: EMBEDDED_LLM, "Tiny Llama (demo)": "tiny-llama",
           "Tiny GPT-2 (demo)": "tiny-gpt2", "Local folder or hub id": None}
# the task a built-in model is for, set when the user picks that model (they can change it after)
NATURAL_TASKS = {"default": "classification", EMBEDDED_LLM: "causal-lm"}
SIDEBAR_DEFAULTS = {"model_choice": next(iter(SOURCES)), "model_path": "", "task": "classification",
                    "dtype": "float32"}


def model_label(source: str) -> str:
    """A model as the sidebar names it (a built-in one), else the folder's name or the hub id."""
    names = {value: name for name, value in SOURCES.items() if value}
    return names.get(source) or (Path(source).name if "/" in source and Path(source).exists() else source)


def runs_root() -> Path:
    return Path(os.environ.get("LAMDA_RUNS", Path.cwd() / "runs"))


def saved_upload(upload, root: Path) -> str:
    """An uploaded file kept as ``root``/uploads/<content hash>/<its own name>: two uploads never
    collide, and every page shows the name the user chose."""
    import hashlib

    digest = hashlib.sha256(upload.getvalue()).hexdigest()[:10]
    target = root / "uploads" / digest / Path(upload.name).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(upload.getvalue())
    return str(target)


def earlier_uploads(root: Path, kinds: list[str]) -> list[str]:
    """The files uploaded to ``root`` with one of the suffixes ``kinds``, newest first."""
    found = [p for p in (root / "uploads").glob("*/*") if p.suffix.lower().lstrip(".") in kinds]
    return [str(p) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def _take_upload(uploader_key: str, choice_key: str, root: Path) -> None:
    upload = st.session_state.get(uploader_key)
    if upload is not None:
        set_kept(choice_key, saved_upload(upload, root))


def file_choice(label: str, kinds: list[str], key: str, root: Path, fallback: str | None,
                fallback_label: str, help: str | None = None) -> str | None:
    """An uploader and, below it, the file in use, kept across pages: the fallback (a built-in
    data set, or None) or any earlier upload, shown by its own name. Uploading selects the file."""
    st.file_uploader(label, type=kinds, key=f"{key}_uploader", help=help, on_change=_take_upload,
                            args=(f"{key}_uploader", key, root))
    fallback = fallback or ""  # "" for none: a selectbox shows None as its empty placeholder
    options = [fallback] + earlier_uploads(root, kinds)
    if st.session_state.get(f"keep_{key}") not in options:
        set_kept(key, fallback)
    chosen = st.selectbox("In use", options, format_func=lambda p: fallback_label if p == fallback else Path(p).name,
                          **kept(key, fallback), help="The uploaded file in use, or an earlier upload to the runs "
                          "folder.")
    return chosen or None


def user_message(error: Exception | str) -> str:
    """An error's (or a message's) text as a user reads it: an uploaded file by the name they
    gave it, the runs folder by that name, never a path of the server."""
    import re

    root = str(runs_root())
    text = re.sub(re.escape(root) + r"/uploads/[0-9a-f]{10}/", "", str(error))
    return text.replace(root, "the runs folder").replace(str(ROOT) + "/", "")


def page_setup(title: str) -> None:
    st.set_page_config(page_title=f"{title} · LaMDA Studio", page_icon=LOGO, layout="wide")


def sidebar() -> tuple[str | None, str, str]:
    """(source, task, dtype) chosen in the sidebar, the same on every page; source is None until
    a path is typed."""
    with st.sidebar:
        st.image(LOGO, width=170)
        choice = st.selectbox("Model", list(SOURCES), **kept("model_choice", SIDEBAR_DEFAULTS["model_choice"]),
                              help="The model every page works on; a local folder holds config.json and weights.")
        source = SOURCES[choice]
        if st.session_state.get("sidebar_last_choice", choice) != choice and source in NATURAL_TASKS:
            set_kept("task", NATURAL_TASKS[source])
            follow("run_seq", DEFAULT_CHAT_SEQ_LEN if source == EMBEDDED_LLM else DEFAULT_SEQ_LEN)
        st.session_state["sidebar_last_choice"] = choice
        if source is None:
            source = st.text_input("Folder or hub id", placeholder="/path/to/model",
                                   **kept("model_path", SIDEBAR_DEFAULTS["model_path"])).strip() or None
        task = st.selectbox("Task", TASKS, **kept("task", SIDEBAR_DEFAULTS["task"]),
                            help="classification: a sequence-classification head; causal-lm: next-token "
                                 "prediction; encoder: the bare model (spectra and costs only).")
        dtype = st.selectbox("Weights dtype", MODEL_DTYPES, **kept("dtype", SIDEBAR_DEFAULTS["dtype"]),
                             help="The base weights' dtype; LaMDA's A, S, B stay float32.")
    return source, task, dtype


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def cached_model(source: str, task: str, dtype: str):
    return load_model(source, task=task, dtype=dtype)


def model_or_stop(source: str | None, task: str, dtype: str):
    """The loaded (model, tokenizer), or an info / error message and the end of this run."""
    if not source:
        st.info("Enter a local model folder or a hub id in the sidebar.")
        st.stop()
    try:
        return cached_model(source, task, dtype)
    except LamdaError as error:
        st.error(user_message(error))
        st.stop()


def report_or_stop(source: str | None, top_k: int | None = None):
    """The spectrum report of a source, scanned once per session (and cached on disk), with a
    progress bar while it scans."""
    if not source:
        st.info("Enter a local model folder or a hub id in the sidebar.")
        st.stop()
    key = ("report", source, top_k)
    if key not in st.session_state:
        bar = st.progress(0.0, text="Scanning spectra…")
        try:
            st.session_state[key] = scan_spectra(
                source, top_k=top_k, progress=lambda done, total, name: bar.progress(
                    done / total, text=f"Scanning spectra: {done}/{total} {name}"))
        except LamdaError as error:
            bar.empty()
            st.error(user_message(error))
            st.stop()
        bar.empty()
    return st.session_state[key]


def matrix_labels(report) -> dict[str, str]:
    return {m.name: (f"L{m.layer} {m.kind}" if m.layer is not None else m.name) for m in report.matrices}
