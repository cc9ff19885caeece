"""Every page through streamlit's AppTest (server-side script runs, no browser)."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import lamda_core as lc
from lamda_core import choices
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import create_run
from lamda_core.training.trainer import run

ROOT = Path(__file__).resolve().parents[1]


def page(name: str) -> AppTest:
    path = ROOT / "app.py" if name == "app" else next((ROOT / "app_pages").glob(f"*_{name}.py"))
    return AppTest.from_file(str(path), default_timeout=300)


@pytest.fixture(autouse=True)
def runs_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMDA_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def test_home_renders_default_model_summary():
    app = page("app").run()
    assert not app.exception
    assert metric(app, "Layers") == "6" and metric(app, "Hidden size") == "384"
    assert metric(app, "Adaptable matrices") == "36"
    assert [s.label for s in app.sidebar.selectbox] == ["Model", "Task", "Weights dtype"]


def test_bad_model_path_shows_an_error_message_not_an_exception(tmp_path):
    app = page("app").run()
    app.selectbox(key="model_choice").set_value("Local folder or hub id").run()
    app.text_input(key="model_path").input(str(tmp_path / "missing")).run()
    assert not app.exception
    assert "no such model folder" in app.error[0].value


def test_spectrum_page_shows_heatmap_spectra_table_and_downloads():
    app = page("Spectrum").run()
    assert not app.exception
    assert len(app.get("plotly_chart")) == 2
    assert len(app.dataframe[0].value) == 36
    assert {b.label for b in app.get("download_button")} == {"Download table (CSV)", "Download spectra (JSON)"}
    app.radio(key="spec_y").set_value("energy").run()
    assert not app.exception


def test_rank_budget_slider_changes_allocation_and_costs():
    app = page("Rank_budget").run()
    assert not app.exception
    assert metric(app, "Total rank") == str(36 * choices.DEFAULT_LAMDA_RANK)  # r0 starts at LaMDA's default rank
    params_before = metric(app, "LaMDA++ adapter params (start)")
    memory_before = metric(app, "Training memory (batch 16 x 128)")
    app.slider(key="budget_rank").set_value(1000).run()
    assert not app.exception
    assert metric(app, "Total rank") == "1000"
    assert metric(app, "LaMDA++ adapter params (start)") != params_before
    assert metric(app, "Training memory (batch 16 x 128)") != memory_before
    assert int(app.dataframe[0].value["rank"].sum()) == 1000
    app.button(key="use_ranks").click().run()
    assert app.session_state["allocation_source"] == "default"
    assert any("uniform" in i.value for i in app.info)  # the measured recommendation, above the controls
    app.button(key="use_uniform").click().run()  # the recommended choice: uniform LaMDA at r0
    assert (app.session_state["keep_run_method"], app.session_state["keep_run_rank"]) == (
        "lamda", choices.DEFAULT_LAMDA_RANK)
    assert "allocation" not in app.session_state


def test_rank_budget_gradient_rule_reads_the_fine_tune_pages_training_file(tmp_path):
    data = tmp_path / "reviews.csv"
    rows = (f"{'a fine' if i % 2 else 'a dull'} film {i},{i % 2}\n" for i in range(64))
    data.write_text("text,label\n" + "".join(rows))
    app = page("Rank_budget")
    app.session_state["keep_run_train_file-classification"] = str(data)
    app.run()
    uniform_ranks = app.dataframe[0].value["rank"].tolist()
    app.selectbox(key="strategy").set_value("gradient").run()
    assert not app.exception
    assert "reviews.csv" in " ".join(c.value for c in app.caption)
    ranks = app.dataframe[0].value["rank"]
    assert int(ranks.sum()) == 36 * choices.DEFAULT_LAMDA_RANK and ranks.tolist() != uniform_ranks
    expected = lc.allocate_ranks(lc.scan_spectra("default"), choices.DEFAULT_LAMDA_RANK, strategy="gradient",
                                 importance=lc.gradient_importance("default", data))
    assert ranks.tolist() == list(expected.ranks.values())


def test_costs_page_responds_to_the_batch_size():
    app = page("Costs").run()
    assert not app.exception
    before = app.dataframe[0].value["peak (MiB)"].to_dict()
    app.number_input(key="run_batch").set_value(64).run()
    after = app.dataframe[0].value["peak (MiB)"].to_dict()
    assert all(after[m] > before[m] for m in before)  # every method's memory is modelled
    table = app.dataframe[0].value
    assert set(table["peak in"]) <= {"forward", "backward", "optimizer step"}  # every method modelled
    assert {"dora", "pissa", "vera", "psoft"} <= set(table.index)
    assert (table["peak (MiB)"] > 0).all() and (table["trainable at start"] > 0).all()
    app.button(key="measure").click().run()
    assert not app.exception
    table = app.dataframe[1].value
    error = float(table.loc["peak (allocator)", "error"].rstrip("%"))
    assert abs(error) < 5  # the estimate models the peak (benchmarks/memory.py: within 1% on MiniLM)
    assert any("measured peak" in m.value and "resident memory grew" in m.value for m in app.markdown)


def test_fine_tune_page_renders_and_refuses_the_encoder_task():
    app = page("Fine_tune").run()
    assert not app.exception
    assert any("No run yet" in caption.value for caption in app.caption)
    assert "built-in demo data **demo-sentiment**" in app.caption[0].value
    assert app.selectbox(key="run_pooling").value == "auto" and not app.selectbox(key="run_pooling").disabled
    app.selectbox(key="task").set_value("causal-lm").run()
    assert app.selectbox(key="run_pooling").disabled  # a language model reads every token
    app.selectbox(key="task").set_value("encoder").run()
    assert "Choose the classification or causal-lm task" in app.warning[0].value
    assert app.button(key="start").disabled


def test_costs_page_estimates_the_run_that_fine_tunes_start_creates(runs_folder):
    """One session, as a user goes: set the shape on Costs, switch to Fine-tune, press Start for
    each method; the run created has the method settings the Costs page estimated, and the
    estimate shown beside Start is that run's."""
    from lamda_core.methods import method_names
    from lamda_core.runs.folder import read_config, request_stop

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    ranks = lc.allocate_ranks(lc.scan_spectra("default", top_k=160), base_rank=choices.DEFAULT_LAMDA_RANK)
    app.session_state["allocation"], app.session_state["allocation_source"] = ranks, "default"
    app.switch_page("app_pages/3_Costs.py").run()
    app.number_input(key="run_batch").set_value(8).run()
    app.number_input(key="run_seq").set_value(96).run()
    queries = app.session_state["cost_queries"]
    assert set(queries) == set(method_names())
    app.switch_page("app_pages/4_Fine_tune.py").run()
    assert (app.number_input(key="run_batch").value, app.number_input(key="run_seq").value) == (8, 96)
    for method in method_names():
        app.selectbox(key="run_method").set_value(method).run()
        app.button(key="start").click().run()
        assert not app.exception and not app.error
        folder = Path(app.session_state["watched_runs"][-1])
        request_stop(folder)
        started = read_config(folder)
        estimated = queries[method]
        assert estimated.adapter_config() == started.adapter, method  # rank, dropout, ranks per matrix, freezing
        assert (estimated.batch_size, estimated.seq_len, estimated.dtype) == (started.batch_size, started.seq_len,
                                                                              started.dtype) == (8, 96, "float32")
        peak = lc.estimate_costs(lc.CostQuery.from_train_config(started)).peak
        assert any(f"**{peak / 2 ** 20:,.0f} MiB**" in c.value for c in app.caption), method
    assert queries["lora"].adapter_config().dropout == 0.05  # LoRA trains with dropout; so its estimate counts it


def test_runs_page_lists_runs_and_deletes_with_confirmation(runs_folder):
    folder = create_run(
        TrainConfig(max_steps=2, eval_interval=2, checkpoint_interval=10, adapter=lc.LamdaConfig(rank=2)),
        runs_folder / "r1",
    )
    assert run(folder) == "finished"
    app = page("Runs").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert table.loc[0, "run"] == "r1" and table.loc[0, "state"] == "finished" and "accuracy" in table
    assert table.loc[0, "data"] == "demo-sentiment (built in)" and table.loc[0, "reason"] == ""
    assert not table.isna().any().any() and "None" not in table.astype(str).to_string()
    assert any("Measured peak memory" in c.value and "estimated training step peak" in c.value for c in app.caption)
    assert app.button(key="delete-r1").disabled
    app.checkbox(key="confirm_delete-r1").check().run()
    app.button(key="delete-r1").click().run()
    assert not folder.exists()
    assert any("Deleted r1" in s.value for s in app.success)  # the result shows after the page redraws


def test_runs_page_shows_what_fine_tuning_changed(runs_folder):
    for name, method in (("lamda-run", "lamda"), ("lora-run", "lora")):
        config = TrainConfig(method=method, max_steps=4, eval_interval=4, checkpoint_interval=10,
                             adapter=lc.LamdaConfig(rank=2))
        assert run(create_run(config, runs_folder / name)) == "finished"
    app = page("Runs").run()
    app.selectbox(key="inspect").set_value("lamda-run").run()
    app.toggle(key="analyze").set_value(True).run()
    assert not app.exception
    app.selectbox(key="update_metric").set_value("principal_share").run()
    app.multiselect(key="update_overlay").set_value(["lora-run"]).run()
    assert not app.exception and not app.warning
    assert len(app.get("download_button")) >= 2
    import json

    figures = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    titles = [f["layout"].get("title", {}).get("text", "") for f in figures]
    assert any("share of dW in W's top-r subspaces" in t for t in titles)
    assert any(trace["type"] == "heatmap" for f in figures for trace in f["data"])
    overlay = next(f for f in figures if f["layout"].get("yaxis2"))
    assert {trace["name"] for trace in overlay["data"]} >= {"W before", "lamda-run: W after", "lora-run: W after"}


def test_compare_page_plots_quality_against_cost_with_the_front_and_a_table(runs_folder):
    from lamda_core.runs.compare import create_comparison

    assert any("No comparison yet" in info.value for info in page("Compare").run().info)
    base = TrainConfig(
        max_steps=4, batch_size=4, eval_interval=4, checkpoint_interval=10, adapter=lc.LamdaConfig(rank=2)
    )
    for folder in create_comparison(base, ["lora", "lamda"], runs_folder, name="pair"):
        assert run(folder) == "finished"
    app = page("Compare").run()
    assert not app.exception
    assert app.selectbox(key="comparison_shown").value == "pair"
    table = app.dataframe[0].value
    assert list(table["method"]) == ["lora", "lamda"] and set(table["state"]) == {"finished"}
    assert table["peak memory (MiB)"].min() > 100 and table["time (s)"].notna().all()  # recorded, not timed
    assert table.loc[1, "averaged adapter params"] < table.loc[0, "averaged adapter params"]
    import json

    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in figure["data"]] == ["lora", "lamda", "Pareto front"]
    assert figure["layout"]["xaxis"]["type"] == "log"
    assert any("Pareto front" in m.value and "lamda" in m.value for m in app.markdown)
    from lamda_core.data.reading import DEMO_DATASETS

    app.file_uploader(key="compare_held_out_uploader").upload(
        "held-out.tsv", DEMO_DATASETS["demo-sentiment"][1].read_bytes()
    ).run()
    assert not app.exception and not app.error
    held_out = app.dataframe[0].value["held-out accuracy (%)"]
    assert held_out.notna().all() and held_out.between(0, 100).all()
    app.radio(key="compare_x").set_value("peak_memory_mib").run()
    app.radio(key="compare_metric").set_value("f1").run()
    assert not app.exception
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert "MiB" in figure["layout"]["xaxis"]["title"]["text"] and "F1" in figure["layout"]["yaxis"]["title"]["text"]


def test_about_page_renders():
    app = page("About_LaMDA").run()
    assert not app.exception and "About LaMDA" in app.title[0].value


def test_try_and_evaluate_page_compares_two_runs_and_scores_a_test_file(runs_folder):
    from lamda_core.data.reading import DEMO_DATASETS
    from lamda_core.use.evaluation import evaluate_run

    assert any("No finished run yet" in info.value for info in page("Try_and_evaluate").run().info)
    for name, method in (("lamda-run", "lamda"), ("lora-run", "lora")):
        config = TrainConfig(method=method, max_steps=6, eval_interval=6, checkpoint_interval=10)
        assert run(create_run(config, runs_folder / name)) == "finished"
    app = page("Try_and_evaluate").run()
    assert not app.exception
    assert app.multiselect(key="use_runs").value == ["lamda-run", "lora-run"]
    app.text_area(key="try_text").input("What a wonderful film.\nA dull, tiring evening.").run()
    import json

    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    assert len(charts) == 2 and [t["name"] for t in charts[0]["data"]] == ["lamda-run", "lora-run"]
    assert charts[0]["data"][0]["x"] == ["negative", "positive"]
    assert abs(sum(charts[0]["data"][0]["y"]) - 100) < 1e-3  # one run's probabilities over the labels
    app.file_uploader(key="eval_file-classification_uploader").upload(
        "validation.tsv", DEMO_DATASETS["demo-sentiment"][1].read_bytes()
    ).run()
    app.button(key="evaluate").click().run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert list(table["run"]) == ["lamda-run", "lora-run"] and table["examples"].tolist() == [100, 100]
    heatmaps = [
        f for f in (json.loads(c.proto.spec) for c in app.get("plotly_chart")) if f["data"][0]["type"] == "heatmap"
    ]
    assert len(heatmaps) == 2 and sum(map(sum, heatmaps[0]["data"][0]["z"])) == 100
    assert {b.label for b in app.get("download_button")} >= {"Wrong examples (CSV)", "Every prediction (CSV)"}
    cli = evaluate_run(runs_folder / "lamda-run", DEMO_DATASETS["demo-sentiment"][1])  # what `lamda evaluate` reports
    assert table.loc[0, "accuracy"] == pytest.approx(cli.accuracy) and heatmaps[0]["data"][0]["z"] == cli.confusion
    app.file_uploader(key="eval_file-classification_uploader").upload(
        "odd.csv", b"text,label\ngood,positive\nso-so,neutral\n"
    ).run()
    app.button(key="evaluate").click().run()
    assert "label 'neutral' is not among the run's classes" in app.error[0].value
