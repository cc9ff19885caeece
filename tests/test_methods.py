"""The method registry: a method added through it alone trains, saves, loads, is estimated and
compared; an unknown method is a ConfigError wherever a name comes in; no code outside the
registry branches on a method name."""
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import run_cli

import lamda_core as lc
from lamda_core.methods import LORA, get_method, method_names, register_method, unregister_method
from lamda_core.runs.compare import comparison_table, create_comparison
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import RunFolder, create_run
from lamda_core.training.trainer import run
from lamda_core.use.export import fine_tuned_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy_method():
    """A LoRA variant with its own name and defaults, registered for the test only."""
    toy = register_method(replace(LORA, name="toy-lora", summary="a LoRA variant for tests", default_rank=2,
                                  default_learning_rate=5e-4))
    yield toy
    unregister_method(toy.name)


def test_a_method_added_through_the_registry_alone_trains_saves_loads_estimates_and_compares(tmp_path, toy_method):
    assert "toy-lora" in method_names()
    config = TrainConfig(method="toy-lora", max_steps=2, eval_interval=2, checkpoint_interval=2)
    assert (config.adapter.rank, config.adapter.dropout, config.rates()[0]) == (2, LORA.default_dropout, 5e-4)

    folder = create_run(config, tmp_path / "toy")
    assert run(folder) == "finished"
    assert RunFolder(folder).saved() == folder / "peft" and (folder / "peft" / "adapter_config.json").is_file()
    model, _ = fine_tuned_model(folder)
    assert type(model).__name__ == "BertForSequenceClassification"  # merged back into a plain model

    estimate = lc.estimate_costs(lc.CostQuery.from_train_config(config))
    matrices = lc.default_targets(lc.load_model("default")[0])
    assert estimate.adapter_start == sum(2 * (m.d_in + m.d_out) for m in matrices)
    trained = RunFolder(folder).metrics()[-1]["adapter_parameters"]
    assert trained == estimate.adapter_start  # the trainer counts what the cost model counts

    base = TrainConfig(max_steps=2, eval_interval=2, checkpoint_interval=2)
    folders = create_comparison(base, ["toy-lora", "lamda"], tmp_path / "runs", match="defaults", name="toy")
    assert [RunFolder(f).config.adapter.rank for f in folders] == [2, get_method("lamda").default_rank]
    for f in folders:
        assert run(f) == "finished"
    rows = comparison_table(tmp_path / "runs", "toy")
    assert [r["method"] for r in rows] == ["toy-lora", "lamda"] and all(r["accuracy"] is not None for r in rows)


def test_an_unknown_method_is_a_config_error_naming_the_known_ones(tmp_path):
    known = re.escape(str(method_names()))
    for attempt in (lambda: get_method("qlorax"), lambda: TrainConfig(method="qlorax"),
                    lambda: lc.CostQuery(method="qlorax"), lambda: lc.adapt(lc.load_model("tiny-llama")[0], "qlorax")):
        with pytest.raises(lc.ConfigError, match=f"unknown method 'qlorax': method must be one of {known}"):
            attempt()
    # a run config file naming a method this install does not know
    folder = create_run(TrainConfig(max_steps=1), tmp_path / "run")
    config = json.loads((folder / "run_config.json").read_text())
    (folder / "run_config.json").write_text(json.dumps({**config, "method": "qlorax"}))
    with pytest.raises(lc.ConfigError, match="unknown method 'qlorax'"):
        RunFolder(folder).config
    result = run_cli("resume", folder)
    assert result.returncode == 2 and "unknown method 'qlorax'" in result.stderr
    result = run_cli("train", "--method", "qlorax", "--output", tmp_path / "cli")
    assert result.returncode == 2 and "invalid choice: 'qlorax'" in result.stderr and "lamda++" in result.stderr


def test_lamda_plus_plus_without_ranks_gets_them_from_the_spectra(tmp_path):
    """LaMDA++ is "ranks from the spectra, then train": without a rank_pattern, a run, a cost
    query and adapt() allocate them at LaMDA's default total rank (as `lamda compare` does), and
    the command line says so."""
    from lamda_core.choices import DEFAULT_LAMDA_RANK
    from lamda_core.runs.config import TrainConfig

    config = TrainConfig(method="lamda++")
    pattern = config.adapter.rank_pattern
    assert len(pattern) == 36 and sum(pattern.values()) == 36 * DEFAULT_LAMDA_RANK and len(set(pattern.values())) > 1
    assert lc.CostQuery("default", "lamda++").adapter_config().rank_pattern == pattern
    model, _ = lc.load_model("default")
    lc.adapt(model, "lamda++")
    # the spectra are the bare encoder's ("encoder.layer..."), matched as suffixes of the classifier's names
    assert {name.removeprefix("bert."): layer.rank for name, layer in lc.lamda_layers(model).items()} == pattern
    result = run_cli("train", "--method", "lamda++", "--max-steps", "1", "--eval-interval", "1",
                     "--output", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "no per-matrix ranks given, so they were allocated from the spectra at LaMDA's total rank 40 x 36 = 1440" \
        in result.stdout


METHOD_LITERAL = re.compile(
    r"""(==|!=)\s*["'](lamda|lamda\+\+|lora|full)["']|["'](lamda|lamda\+\+|lora|full)["']\s*(==|!=)"""
    r"""|\bin\s*\(\s*["'](lamda|lamda\+\+|lora|full)["']"""
)


def test_no_code_outside_the_registry_branches_on_a_method_name():
    """At most 8 comparisons of a method name with a string literal outside methods.py (there
    were 35 before the registry); today there are none."""
    files = [p for folder in ("lamda_core", "app_pages", "studio_ui") for p in (ROOT / folder).rglob("*.py")
             if p.name != "methods.py"] + [ROOT / "app.py"]
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in files for n, line in enumerate(p.read_text().splitlines(), 1)
            if METHOD_LITERAL.search(line)]
    assert len(hits) <= 8, hits
