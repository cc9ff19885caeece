"""The method registry: a method added through it alone trains, saves, loads, is estimated and
compared; an unknown method is a ConfigError wherever a name comes in; no code outside the
registry branches on a method name."""
import json
import re
from pathlib import Path

import pytest
from conftest import run_cli

import lamda_core as lc
from lamda_core.costs.memory import ADAPTER_BYTES
from lamda_core.costs.parameters import MatrixParameters
from lamda_core.methods import PeftMethod, get_method, method_names, register_method, unregister_method
from lamda_core.runs.compare import comparison_table, create_comparison
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import RunFolder, create_run
from lamda_core.training.trainer import run
from lamda_core.use.export import fine_tuned_model

ROOT = Path(__file__).resolve().parents[1]


class ToyLora(PeftMethod):
    """The docs' recipe (docs/architecture.md, "Adding a method") followed in this file alone: PEFT's
    LoRA with B started at zero (PEFT's default), its own parameter count and its own memory
    terms, written out here rather than inherited from lora.py."""

    def peft_config(self, config, ranks, heads, conv1d):
        from lamda_core.adapter.inject import lora_config

        return lora_config(config, ranks, heads, conv1d)

    def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
        count = rank * (d_in + d_out)  # A (r x d_in) and B (d_out x r)
        return MatrixParameters(frozen=0, start=count, end=count, average=float(count))

    def kept_activations(self, path):
        """A(x) per module (N x r), and x once per distinct input (dropout 0, float32)."""
        assert path.dropout == 0 and path.act == ADAPTER_BYTES, "the toy keeps no dropped copies"
        return path.per_module(lambda m, r: r) + path.distinct_inputs()

    def transients(self, shape, act, dropout):
        """The base output and the update side by side (2h), then i + 3h in backward (per token)."""
        n, h, i = shape.tokens, shape.hidden, shape.intermediate
        return 2 * h * n * act, (i + 3 * h) * n * act


@pytest.fixture
def toy_method():
    """A non-trivial method with its own class, name and defaults, registered for the test only."""
    toy = register_method(ToyLora(name="toy-lora", summary="a LoRA variant for tests", default_rank=2,
                                  default_dropout=0.0, default_learning_rate=5e-4, default_head_learning_rate=None))
    yield toy
    unregister_method(toy.name)


def test_a_method_added_through_the_registry_alone_trains_saves_loads_estimates_and_compares(tmp_path, toy_method):
    assert "toy-lora" in method_names()
    config = TrainConfig(method="toy-lora", max_steps=2, eval_interval=2, checkpoint_interval=2)
    assert (config.adapter.rank, config.adapter.dropout, config.rates()[0]) == (2, 0.0, 5e-4)

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
    query = lc.CostQuery("default", "toy-lora", batch_size=16, seq_len=64)
    assert lc.estimate_costs(query).peak == pytest.approx(lc.measure_costs(query).peak, rel=0.10)

    base = TrainConfig(max_steps=2, eval_interval=2, checkpoint_interval=2)
    folders = create_comparison(base, ["toy-lora", "lamda"], tmp_path / "runs", match="defaults", name="toy")
    assert [RunFolder(f).config.adapter.rank for f in folders] == [2, get_method("lamda").default_rank]
    for f in folders:
        assert run(f) == "finished"
    rows = comparison_table(tmp_path / "runs", "toy")
    assert [r["method"] for r in rows] == ["toy-lora", "lamda"] and all(r["accuracy"] is not None for r in rows)


def test_a_method_without_its_own_memory_terms_cannot_be_estimated():
    """The memory hooks are required: no entry inherits another method's terms silently."""

    class Termless(PeftMethod):
        def peft_config(self, config, ranks, heads, conv1d):
            from lamda_core.adapter.inject import lora_config

            return lora_config(config, ranks, heads, conv1d)

        def matrix_parameters(self, rank, d_in, d_out, total_steps, config):
            return MatrixParameters(0, rank, rank, float(rank))

    register_method(Termless(name="termless", summary="no memory terms", default_rank=2, default_dropout=0.0,
                             default_learning_rate=1e-3, default_head_learning_rate=None))
    try:
        with pytest.raises(NotImplementedError, match="'termless' must say what its path keeps for backward"):
            lc.estimate_costs(lc.CostQuery("default", "termless"))
    finally:
        unregister_method("termless")


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


def test_no_code_outside_the_registry_branches_on_a_method_name_type_or_kind():
    """No comparison of a method name with a string literal (every registered name), no
    isinstance on a method class and no enum of method kinds outside lamda_core/methods/ (there
    were 35 name comparisons before the registry and 15 enum branches in costs/ before methods/):
    what differs between methods is a property or a method of the entry."""
    names = "|".join(re.escape(n) for n in method_names())
    literal = re.compile(rf"""(==|!=)\s*["']({names})["']|["']({names})["']\s*(==|!=)"""
                         rf"""|\bin\s*[(\[{{]\s*["']({names})["']""")
    type_or_kind = re.compile(r"isinstance\([^)]*Method\b|MemoryModel|\.memory\s+(is|==)|freezes_b")
    files = [p for folder in ("lamda_core", "app_pages", "studio_ui") for p in (ROOT / folder).rglob("*.py")
             if "methods" not in p.relative_to(ROOT).parts] + [ROOT / "app.py"]
    hits = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if literal.search(line) or type_or_kind.search(line)]
    assert hits == []
    assert literal.search('if spec.name == "lamda++":') and type_or_kind.search("isinstance(spec, PeftMethod)")
