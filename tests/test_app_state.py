"""The app a user can trust (issue 25), through streamlit's AppTest in one session per test: what
a user sets stays across pages, uploads keep their names, confirmations never carry over, a
stopped run stays with Resume, a defaulted rank fits the model, no server path reaches the user.
The browser flows of the same issue are in tests/test_browser.py."""
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import RunFolder, create_run, read_config, request_stop
from lamda_core.training.trainer import run

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["app_pages/0_Model.py", "app_pages/1_Spectrum.py", "app_pages/2_Rank_budget.py", "app_pages/3_Costs.py",
         "app_pages/5_Runs.py", "app_pages/6_Compare.py", "app_pages/7_About_LaMDA.py",
         "app_pages/8_Try_and_evaluate.py"]
REVIEWS = "".join(f"{text},{label}\n" for text, label in [("a warm and witty film", "pos"),
                                                            ("dull and far too long", "neg")] * 20)


@pytest.fixture(autouse=True)
def runs_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMDA_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def open_page(path: str) -> AppTest:
    """A new session on the app, switched to the page ``path`` (so it can switch pages again)."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    return app.switch_page(path).run()


def fine_tune() -> AppTest:
    return open_page("app_pages/4_Fine_tune.py")


def visit_every_page(app: AppTest) -> None:
    for path in PAGES:
        app.switch_page(path).run()
        assert not app.exception, path
    app.switch_page("app_pages/4_Fine_tune.py").run()


def wait_for(folder: Path, *states: str) -> None:
    deadline = time.monotonic() + 300  # a hang guard, not a speed check
    while RunFolder(folder).status()["state"] not in states and time.monotonic() < deadline:
        time.sleep(0.2)
    assert RunFolder(folder).status()["state"] in states


def test_every_fine_tune_setting_and_the_upload_survive_a_tour_of_every_page(runs_folder):
    """Problem 2: upload a file, set every field, visit every page, come back, Start: the run
    has every value, and the upload is shown by its own name."""
    app = fine_tune()
    app.file_uploader(key="run_train_file-classification_uploader").upload(
        "reviews.csv", ("text,label\n" + REVIEWS).encode()
    ).run()
    settings = {"run_method": "lora", "run_rank": 6, "run_steps": 7, "run_batch": 4, "run_lr": 0.002, "run_seq": 48,
                "run_init": "random", "run_freeze": 0.2, "run_pooling": "cls"}
    for key, value in settings.items():
        widget = app.selectbox(key=key) if key in ("run_method", "run_init", "run_pooling") else (
            app.slider(key=key) if key == "run_freeze" else app.number_input(key=key))
        widget.set_value(value).run()
    app.multiselect(key="cmp_methods").set_value(["lora", "full"]).run()
    app.radio(key="cmp_match").set_value("rank").run()
    visit_every_page(app)
    chosen = app.selectbox(key="run_train_file-classification")
    assert Path(chosen.value).name == "reviews.csv" and "reviews.csv" in chosen.options  # its own name, not a hash
    assert app.multiselect(key="cmp_methods").value == ["lora", "full"] and app.radio(key="cmp_match").value == "rank"
    assert app.selectbox(key="run_validation_file-classification").value == ""  # "none", not the empty placeholder
    app.button(key="start").click().run()
    assert not app.exception and not app.error
    folder = Path(app.session_state["watched_runs"][-1])
    request_stop(folder)
    config = read_config(folder)
    assert Path(config.train_data).name == "reviews.csv"
    assert (config.method, config.adapter.rank, config.max_steps, config.batch_size, config.learning_rate,
            config.seq_len, config.adapter.init, config.adapter.freeze_fraction, config.pooling) == \
        ("lora", 6, 7, 4, 0.002, 48, "random", 0.2, "cls")
    # an earlier upload can be chosen again after the uploader was cleared (a new session, same folder)
    again = fine_tune()
    assert any(Path(o).name == "reviews.csv" for o in again.selectbox(key="run_train_file-classification").options)


def test_a_file_without_known_column_names_offers_the_column_pickers(runs_folder):
    """Problem 5: the error says what to pick, and the pickers are there to pick it."""
    app = fine_tune()
    app.file_uploader(key="run_train_file-classification_uploader").upload(
        "reviews.csv", ("review,stars\n" + REVIEWS).encode()
    ).run()
    assert not app.exception
    assert "no column is named like a label column (its columns: review, stars)" in app.error[0].value
    assert "Pick the column that holds the text" in app.error[0].value
    assert str(runs_folder) not in app.error[0].value  # the file by its name, not the server's path
    assert app.button(key="start").disabled
    text, label = (next(s for s in app.selectbox if s.label == f"{w} column") for w in ("Text", "Label"))
    assert text.value == "review" and label.value is None  # what was detected, and the placeholder
    label.set_value("stars").run()
    assert not app.error and not app.button(key="start").disabled
    assert {"pos", "neg"} <= set(app.dataframe[1].value["class"])  # the preview of the classes


def test_a_delete_confirmation_belongs_to_one_run_and_the_result_shows(runs_folder):
    """Problem 3: after deleting A, B is not pre-confirmed; ticking for one run and switching to
    another leaves the other unticked."""
    for name in ("a", "b"):
        assert (
            run(create_run(TrainConfig(max_steps=1, eval_interval=1, checkpoint_interval=10), runs_folder / name))
            == "finished"
        )
    app = open_page("app_pages/5_Runs.py")
    app.selectbox(key="inspect").set_value("a").run()
    app.checkbox(key="confirm_delete-a").check().run()
    app.selectbox(key="inspect").set_value("b").run()
    assert not app.checkbox(key="confirm_delete-b").value and app.button(key="delete-b").disabled
    app.selectbox(key="inspect").set_value("a").run()
    assert not app.checkbox(key="confirm_delete-a").value  # not carried back either
    app.checkbox(key="confirm_delete-a").check().run()
    app.button(key="delete-a").click().run()
    assert not (runs_folder / "a").exists() and any("Deleted a" in s.value for s in app.success)
    assert app.selectbox(key="inspect").value == "b"
    assert not app.checkbox(key="confirm_delete-b").value and app.button(key="delete-b").disabled


def test_a_stopped_run_stays_with_its_state_and_resumes_from_the_app(runs_folder):
    """Problem 6: a stopped run stays on Fine-tune (not only the last one started) until
    dismissed, and Resume continues it with the checks of `lamda resume`."""
    app = fine_tune()
    app.number_input(key="run_steps").set_value(3000).run()
    app.button(key="start").click().run()
    first = Path(app.session_state["watched_runs"][-1])
    app.number_input(key="run_steps").set_value(4).run()
    app.button(key="start").click().run()
    wait_for(first, "running")
    request_stop(first)
    wait_for(first, "stopped")
    app.run()
    assert any(f"**{first.name}**: stopped" in m.value for m in app.markdown)  # still there, beside the newer run
    assert any("Stopped:" in i.value for i in app.info)
    app.button(key=f"resume-{first.name}").click().run()
    assert not app.error
    assert RunFolder(first).status()["state"] in ("queued", "running")
    request_stop(first)
    wait_for(first, "stopped")
    app.run()
    app.button(key=f"dismiss-{first.name}").click().run()
    assert not any(f"**{first.name}**:" in m.value for m in app.markdown)
    finished = RunFolder(first).status()
    assert finished["state"] == "stopped"  # dismissing only hides it


def test_resume_refuses_a_run_whose_checkpoint_was_damaged(runs_folder):
    folder = create_run(TrainConfig(max_steps=30, eval_interval=1000, checkpoint_interval=1000), runs_folder / "r")
    original = RunFolder.stop_requested
    RunFolder.stop_requested = lambda self: (self.status().get("step") or 0) >= 2  # as Stop would, after step 2
    try:
        assert run(folder) == "stopped"  # the stop's checkpoint, as a Stop from the app leaves it
    finally:
        RunFolder.stop_requested = original
    for path in (folder / "checkpoints").rglob("*.safetensors"):
        path.write_bytes(b"broken")
    app = open_page("app_pages/5_Runs.py")
    app.button(key="resume-r").click().run()
    assert "Cannot resume r" in app.error[0].value and RunFolder(folder).status()["state"] == "stopped"


def test_the_tiny_llama_trains_with_the_defaults_at_the_largest_rank_it_allows(runs_folder):
    """Problem 8: LaMDA's default rank 40 exceeds the Tiny Llama's 32-wide key and value
    projections; the default is capped with a note, Start works."""
    app = fine_tune()
    app.selectbox(key="model_choice").set_value("Tiny Llama (demo)").run()
    assert any("this run uses rank 32" in i.value for i in app.info)
    app.number_input(key="run_steps").set_value(2).run()
    app.button(key="start").click().run()
    assert not app.error and not app.exception
    folder = Path(app.session_state["watched_runs"][-1])
    assert read_config(folder).adapter.rank == 32
    wait_for(folder, "finished", "failed")
    assert RunFolder(folder).status()["state"] == "finished"
