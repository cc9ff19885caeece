"""What stays across pages: kept widgets (a widget's value survives pages that do not draw it),
values that follow other settings until the user sets them, and values set from code."""
from __future__ import annotations

import streamlit as st


def _keep(key: str) -> None:
    value = st.session_state[key]
    st.session_state[f"keep_{key}"] = value
    # A value code wrote (set_kept) that comes back from the browser is a stale echo, not the
    # user's: fast key presses interrupt the script run that would have shown the new value, and
    # the next run reports the browser's old one as a change.
    if value not in st.session_state.get(f"{key}_written", ()):
        st.session_state[f"{key}_set_by_user"] = True


def kept(key: str, default) -> dict:
    """Widget arguments that keep a widget's value across pages. Streamlit drops the state of a
    widget that a page run does not draw, so the value lives under ``keep_<key>``: it is written
    back to the widget key before the widget is drawn, and on_change updates it (and records
    that the user set it, see set_by_user)."""
    st.session_state[key] = st.session_state.setdefault(f"keep_{key}", default)
    return {"key": key, "on_change": _keep, "args": (key,)}


def set_by_user(key: str) -> bool:
    """Whether the user has changed the kept widget ``key`` (else code may move it)."""
    return bool(st.session_state.get(f"{key}_set_by_user"))


def kept_choice(key: str, options: list, default) -> dict:
    """kept() for a selectbox, radio or multiselect whose options may change: a kept value (or
    the values of a list) no longer among ``options`` falls back to ``default``."""
    value = st.session_state.get(f"keep_{key}", default)
    if isinstance(value, list):
        value = [v for v in value if v in options]
    elif value not in options:
        value = default
    set_kept(key, value)
    return kept(key, value)


def set_kept(key: str, value) -> None:
    """Change a kept widget's value from code (before the widget is drawn); the last values
    written are remembered, so their stale echoes are not taken for the user's (see _keep)."""
    st.session_state[f"keep_{key}"] = value
    written = st.session_state.setdefault(f"{key}_written", [])
    if value not in written:
        written.append(value)
        del written[:-64]


def follow(key: str, value) -> None:
    """Move a kept widget to ``value`` (a value derived from other settings) until the user sets it."""
    if not set_by_user(key):
        set_kept(key, value)
