"""Sweeps: the grid, judged on a split of the train file and never on a validation file; the
best setting per method; the command line end to end with the best settings compared after."""
import json

import pytest
from conftest import run_cli

import lamda_core as lc
from lamda_core.data.reading import DEMO_DATASETS
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import RunFolder, read_config
from lamda_core.runs.sweep import sweep_configs

DEMO_TRAIN, DEMO_VALIDATION = DEMO_DATASETS["demo-sentiment"]


def test_the_grid_is_every_method_rate_and_rank_on_the_train_split():
    base = TrainConfig(validation_data=str(DEMO_VALIDATION), adapter=lc.LamdaConfig(rank=8, alpha=32.0))
    configs = sweep_configs(base, ["lora", "lamda", "full"], rates=[1e-3, 1e-2], ranks=[4, 8])
    assert list(configs) == ["lora-lr0.001-r4", "lora-lr0.001-r8", "lora-lr0.01-r4", "lora-lr0.01-r8",
                             "lamda-lr0.001-r4", "lamda-lr0.001-r8", "lamda-lr0.01-r4", "lamda-lr0.01-r8",
                             "full-lr0.001", "full-lr0.01"]  # full fine-tuning has no rank to sweep
    for label, config in configs.items():
        assert config.validation_data is None and config.train_data == str(DEMO_TRAIN), label  # judged on a split
        assert config.method == label.split("-")[0] and config.learning_rate == float(label.split("-")[1][2:])
    assert configs["lamda-lr0.01-r4"].adapter.alpha == 16.0  # the run's scale alpha / r = 4 kept at every rank
    assert configs["lora-lr0.01-r8"].adapter.dropout == 0.05  # each method's own dropout
    defaults = sweep_configs(TrainConfig(), ["lora", "lamda"])
    assert [(c.adapter.rank, c.learning_rate) for c in defaults.values()] == [(8, None), (40, None)]


@pytest.mark.parametrize("methods,rates,ranks,message", [
    ([], None, None, "at least one method"),
    (["lamda++"], None, None, "per-matrix ranks"),
    (["lora"], [0.0], None, "learning rates must be positive"),
    (["lora"], None, [0], "ranks at least 1"),
    (["nope"], None, None, "unknown method 'nope'"),
])
def test_impossible_grids_are_refused_by_name(methods, rates, ranks, message):
    with pytest.raises(lc.ConfigError, match=message):
        sweep_configs(TrainConfig(), methods, rates, ranks)


@pytest.mark.heavy
def test_lamda_sweep_runs_the_grid_and_compares_each_best_on_the_validation_file(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "sweep.json"
    command = ["sweep", "--methods", "lora", "lamda", "--lrs", "1e-3", "1e-2",
               "--steps", "3", "--batch", "8", "--seq", "32", "--eval-interval", "3", "--validation",
               str(DEMO_VALIDATION), "--root", str(root), "--name", "grid", "--json", str(out)]
    result = run_cli(*command)
    assert result.returncode == 0, result.stderr
    assert "sweep grid: 4 runs queued" in result.stdout and "sweep" in result.stderr  # the progress bar
    rows = json.loads(out.read_text())["runs"]
    assert sorted((r["method"], r["learning_rate"]) for r in rows) == [
        ("lamda", 1e-3), ("lamda", 1e-2), ("lora", 1e-3), ("lora", 1e-3 * 10)]
    assert all(r["state"] == "finished" and read_config(root / r["run"]).validation_data is None for r in rows)
    best = {m: max((r for r in rows if r["method"] == m), key=lambda r: r["accuracy"]) for m in ("lora", "lamda")}
    line = next(x for x in result.stdout.splitlines() if x.startswith("best setting per method"))
    for method, row in best.items():
        assert f"{method} lr {row['learning_rate']:g}" in line
    compared = [RunFolder(root / f"grid-best-{m}") for m in ("lora", "lamda")]
    for method, run in zip(("lora", "lamda"), compared):  # the best setting, on the whole file, judged on validation
        assert run.status()["state"] == "finished" and run.config.validation_data == str(DEMO_VALIDATION)
        assert run.config.learning_rate == best[method]["learning_rate"]
    assert "comparison grid-best" in result.stdout
    shown = run_cli("sweep", "--show", "grid", "--root", root)
    assert shown.returncode == 0 and line in shown.stdout
    again = run_cli(*command)
    assert again.returncode == 2 and "already holds a sweep or comparison named 'grid'" in again.stderr
