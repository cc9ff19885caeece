"""Comparisons: matched budgets, the trainer's parameter count, the Pareto front, `lamda compare`."""
import json

import pytest
from conftest import run_cli

from lamda_core import ConfigError, DataError, LamdaConfig, RunError, allocate_ranks, scan_spectra
from lamda_core.choices import DEFAULT_SCALE
from lamda_core.costs.parameters import average_lamda_parameters
from lamda_core.methods import LORA, get_method
from lamda_core.runs.compare import (
    comparison_table,
    create_comparison,
    list_comparisons,
    matched_configs,
    pareto_front,
)
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import RunFolder, read_metrics
from lamda_core.training.trainer import run


def base_config(**changes) -> TrainConfig:
    return TrainConfig(**{"max_steps": 30, "batch_size": 4, "seq_len": 16, "learning_rate": 5e-3,
                          "adapter": LamdaConfig(rank=8), **changes})


def test_same_total_rank_gives_every_adapter_the_rank_and_lamda_plus_plus_the_same_sum():
    configs = matched_configs(base_config(), ["lora", "lamda", "lamda++", "full"], "rank")
    assert list(configs) == ["lora", "lamda", "lamda++", "full"]
    assert configs["lora"].adapter.rank == configs["lamda"].adapter.rank == 8
    pattern = configs["lamda++"].adapter.rank_pattern
    assert len(pattern) == 36 and sum(pattern.values()) == 36 * 8 and len(set(pattern.values())) > 1
    for method, config in configs.items():  # the same run otherwise, each at its own defaults
        assert (config.max_steps, config.batch_size, config.seed, config.train_data) == (30, 4, 0, "demo-sentiment")
        assert config.learning_rate is None and config.adapter.dropout == get_method(method).default_dropout
    created = [c.created for c in configs.values()]
    assert created == sorted(created) and len(set(created)) == 4  # they queue in the order given


def test_each_at_its_defaults_gives_lora_its_default_rank_and_scale_and_lamda_the_rank_given():
    configs = matched_configs(base_config(adapter=LamdaConfig(rank=12, alpha=6.0)), ["lamda", "lora", "lamda++"])
    assert configs["lora"].adapter.rank == LORA.default_rank != 12
    assert configs["lora"].adapter.alpha == DEFAULT_SCALE * LORA.default_rank  # LoRA's own scale, not LaMDA's
    assert (configs["lamda"].adapter.rank, configs["lamda"].adapter.alpha) == (12, 6.0)
    assert sum(configs["lamda++"].adapter.rank_pattern.values()) == 36 * 12  # LaMDA's total rank
    family = matched_configs(base_config(adapter=LamdaConfig(rank=12)), ["lamda", "dora", "vera", "psoft"])
    for method in ("dora", "vera", "psoft"):  # every PEFT method as a user gets it, at its own rank and dropout
        assert family[method].adapter.rank == get_method(method).default_rank, method
        assert family[method].adapter.dropout == get_method(method).default_dropout, method


def test_same_parameters_gives_lora_the_rank_closest_to_lamdas_averaged_count():
    configs = matched_configs(base_config(), ["lamda", "lora", "lamda++"], "parameters")
    eta = configs["lamda"].adapter.freeze_fraction
    lamda_average = 6 * sum(
        average_lamda_parameters(8, d_out, 30, eta, "linear", "whole") for d_out in (384,) * 5 + (1536,)
    )
    lora = {r: 6 * r * (4 * (384 + 384) + 2 * (384 + 1536)) for r in range(1, 33)}
    assert configs["lora"].adapter.rank == min(lora, key=lambda r: abs(lora[r] - lamda_average))
    assert configs["lora"].adapter.rank < 8  # LaMDA trains far fewer parameters on average than LoRA at r
    lamda, lora_adapter = configs["lamda"].adapter, configs["lora"].adapter  # LoRA at its rank keeps LaMDA's scale
    assert lora_adapter.alpha / lora_adapter.rank == pytest.approx(lamda.alpha / lamda.rank)
    allocation = allocate_ranks(scan_spectra("default"), base_rank=8, budget_kind="params")
    assert configs["lamda++"].adapter.rank_pattern == allocation.rank_pattern


def test_the_averaged_count_is_the_trainers(tmp_path):
    """average_lamda_parameters(..., "whole") predicts the mean of the trainer's adapter_parameters column."""
    config = TrainConfig(
        source="tiny-llama",
        task="causal-lm",
        train_data="demo-corpus",
        max_steps=20,
        batch_size=2,
        seq_len=16,
        eval_interval=20,
        checkpoint_interval=100,
        adapter=LamdaConfig(rank=4, freeze_fraction=0.3),
    )
    (folder,) = create_comparison(config, ["lamda", "lora"], tmp_path, "rank", name="count")[:1]
    assert run(folder) == "finished"
    measured = sum(r["adapter_parameters"] for r in read_metrics(folder)) / 20
    from lamda_core.models.loading import load_model
    from lamda_core.models.targets import default_targets

    model, _ = load_model("tiny-llama", task="causal-lm")
    predicted = sum(average_lamda_parameters(4, m.d_out, 20, 0.3, "linear", "whole") for m in default_targets(model))
    assert measured == pytest.approx(predicted, rel=0.02)


def test_bad_comparisons_are_refused_before_any_folder_exists(tmp_path):
    with pytest.raises(ConfigError, match="at least two different methods"):
        matched_configs(base_config(), ["lamda", "lamda"])
    with pytest.raises(ConfigError, match="fixed step budget"):
        matched_configs(base_config(max_steps=None), ["lamda", "lora"])
    with pytest.raises(ConfigError, match="match must be one of"):
        matched_configs(base_config(), ["lamda", "lora"], "flops")
    with pytest.raises(DataError, match="no such data file"):
        create_comparison(base_config(train_data=str(tmp_path / "missing.csv")), ["lamda", "lora"], tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    create_comparison(base_config(), ["lamda", "lora"], tmp_path / "runs", name="mine")
    with pytest.raises(RunError, match="already holds a comparison named 'mine'"):
        create_comparison(base_config(), ["lamda", "full"], tmp_path / "runs", name="mine")
    assert list_comparisons(tmp_path / "runs") == ["mine"]


def test_pareto_front_keeps_what_nothing_beats():
    points = [{"p": 10, "accuracy": 0.80}, {"p": 20, "accuracy": 0.85}, {"p": 30, "accuracy": 0.84},
              {"p": 5, "accuracy": 0.70}, {"p": 20, "accuracy": 0.85}, {"p": 40, "accuracy": None}]
    assert pareto_front(points, "p", "accuracy") == [0, 1, 3, 4]  # equal points both stay; no metric: left out
    perplexities = [{"p": 1, "perplexity": 30.0}, {"p": 2, "perplexity": 20.0}, {"p": 3, "perplexity": 25.0}]
    assert pareto_front(perplexities, "p", "perplexity") == [0, 1]  # lower is better


@pytest.mark.heavy
def test_lamda_compare_trains_every_method_and_prints_the_table(tmp_path):
    out = tmp_path / "compare.json"
    result = run_cli("compare", "--source", "tiny-gpt2", "--task", "causal-lm", "--data", "demo-corpus",
                     "--methods", "lora", "lamda", "lamda++", "full", "--steps", "4", "--batch", "2", "--seq", "16",
                     "--root", tmp_path / "runs", "--name", "tiny", "--json", out)
    assert result.returncode == 0, result.stderr
    assert "comparison tiny: 4 runs queued" in result.stdout and "comparison" in result.stderr  # the progress bar
    table = json.loads(out.read_text())["runs"]
    assert [r["method"] for r in table] == ["lora", "lamda", "lamda++", "full"]
    assert all(r["state"] == "finished" and r["perplexity"] > 1 and r["peak_memory_mib"] > 100 for r in table)
    assert all(r["trainable_average"] > 0 for r in table)
    assert table[1]["adapter_average"] < table[0]["adapter_average"]  # LaMDA's averaged count below LoRA's
    assert any(r["pareto"] for r in table) and "*" in result.stdout
    for row in table:
        assert row["method"] in result.stdout
        summary = RunFolder(tmp_path / "runs" / row["run"]).summary()
        assert summary["peak_memory_kind"] == "process RSS" and summary["peak_memory_mib"] == row["peak_memory_mib"]
    shown = run_cli("compare", "--show", "tiny", "--root", tmp_path / "runs")
    assert shown.returncode == 0 and "lamda++" in shown.stdout
    missing = run_cli("compare", "--show", "nope", "--root", tmp_path / "runs")
    assert missing.returncode == 2 and "no comparison named 'nope'" in missing.stderr
    assert comparison_table(tmp_path / "runs", "tiny", "perplexity")[0]["run"] == "tiny-lora"
