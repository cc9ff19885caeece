"""The app through streamlit's AppTest (server-side script runs, no browser)."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_home_renders_default_model_summary():
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Layers"] == "6" and metrics["Hidden size"] == "384"
    assert metrics["Adaptable matrices"] == "36"


def test_home_shows_a_bad_path_as_an_error_message(tmp_path):
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    app.selectbox(key="model_choice").set_value("Local folder or hub id").run()
    app.text_input(key="model_path").input(str(tmp_path / "missing")).run()
    assert not app.exception
    assert "no such model folder" in app.error[0].value


def test_about_page_renders():
    app = AppTest.from_file(str(ROOT / "pages" / "6_About_LaMDA.py")).run()
    assert not app.exception and "About LaMDA" in app.title[0].value
