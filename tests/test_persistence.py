"""Round trips: save/load, merge, export to PEFT; and loading onto the wrong base."""
import json

import pytest
import torch
from conftest import batch, load, outputs, train_steps
from peft import PeftModel

import lamda_core as lc

CASES = [("minilm", "svd", {}), ("minilm", "svd-residual", {}), ("llama", "random", {}),
         ("gpt2", "svd", {"c_attn": 6})]


def trained(family, init, rank_pattern, steps=4):
    """A model with a LaMDA adapter trained ``steps`` of 2 * ``steps`` steps (half of B frozen)."""
    model, tokenizer = load(family)
    lc.apply_lamda(model, lc.LamdaConfig(rank=4, init=init, rank_pattern=rank_pattern, freeze_fraction=1.0))
    inputs = batch(tokenizer, n=8)
    if family != "minilm":
        inputs["labels"] = inputs["input_ids"]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    freezer = lc.PMBFreezer(model, total_steps=2 * steps)
    train_steps(model, inputs, optimizer, freezer, steps)
    model.eval()
    return model, inputs


@pytest.mark.parametrize("family,init,rank_pattern", CASES)
def test_save_load_round_trip(tmp_path, family, init, rank_pattern):
    model, inputs = trained(family, init, rank_pattern)
    expected = outputs(model, inputs)
    lc.save_adapter(model, tmp_path / "adapter")
    fresh, _ = load(family)
    assert not torch.allclose(outputs(fresh, inputs), expected, atol=1e-4)  # training changed something
    lc.load_adapter(fresh, tmp_path / "adapter")
    assert torch.allclose(outputs(fresh, inputs), expected, atol=1e-5)
    for name, layer in lc.lamda_layers(fresh).items():
        original = lc.lamda_layers(model)[name]
        assert int(layer.frozen_columns) == int(original.frozen_columns) == layer.rank // 2
        assert layer.rank == original.rank and layer.lamda_B.requires_grad
    saved = json.loads((tmp_path / "adapter" / "lamda_config.json").read_text())
    assert saved["config"]["init"] == init and saved["base_model"]["architecture"] == type(model).__name__


@pytest.mark.parametrize("family,init,rank_pattern", CASES)
def test_merge_gives_the_same_outputs(family, init, rank_pattern):
    model, inputs = trained(family, init, rank_pattern)
    expected = outputs(model, inputs)
    merged = lc.merge_adapter(model)
    assert not lc.lamda_layers(merged)
    assert torch.allclose(outputs(merged, inputs), expected, atol=1e-4)


@pytest.mark.parametrize("family,init,rank_pattern", CASES)
def test_export_to_peft_reloads_with_the_same_outputs(tmp_path, family, init, rank_pattern):
    model, inputs = trained(family, init, rank_pattern)
    expected = outputs(model, inputs)
    lc.export_peft(model, tmp_path / "peft")
    base, _ = load(family)
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / "peft"))
    peft_model.eval()
    assert torch.allclose(outputs(peft_model, inputs), expected, atol=1e-4)
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4
    if rank_pattern:
        assert set(config["rank_pattern"].values()) == {6}


def test_loading_onto_a_different_architecture_is_an_error(tmp_path):
    model, _ = trained("minilm", "svd", {}, steps=1)
    lc.save_adapter(model, tmp_path / "adapter")
    other, _ = load("llama")
    with pytest.raises(lc.AdapterMismatchError, match="does not fit LlamaForCausalLM"):
        lc.load_adapter(other, tmp_path / "adapter")


def test_loading_onto_other_weights_of_the_same_shape_is_an_error(tmp_path):
    model, _ = trained("minilm", "svd", {}, steps=1)
    lc.save_adapter(model, tmp_path / "adapter")
    other, _ = load("minilm")
    with torch.no_grad():
        other.bert.encoder.layer[3].attention.self.key.weight.mul_(1.5)
    with pytest.raises(lc.AdapterMismatchError, match="weights of bert.encoder.layer.3.attention.self.key differ"):
        lc.load_adapter(other, tmp_path / "adapter")
    assert not lc.lamda_layers(other)  # nothing half-applied


def test_same_base_in_bfloat16_is_accepted(tmp_path):
    model, _ = trained("minilm", "svd", {}, steps=1)
    lc.save_adapter(model, tmp_path / "adapter")
    half, _ = load("minilm", dtype="bfloat16")
    lc.load_adapter(half, tmp_path / "adapter")
    assert len(lc.lamda_layers(half)) == 36


def test_loading_from_a_folder_that_is_not_an_adapter(tmp_path):
    model, _ = load("minilm")
    with pytest.raises(lc.AdapterMismatchError, match="does not exist"):
        lc.load_adapter(model, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(lc.AdapterMismatchError, match="not a LaMDA adapter folder"):
        lc.load_adapter(model, tmp_path / "empty")


def test_loading_an_adapter_with_altered_shapes_is_an_error(tmp_path):
    from safetensors.torch import load_file, save_file

    model, _ = trained("minilm", "svd", {}, steps=1)
    folder = lc.save_adapter(model, tmp_path / "adapter")
    tensors = load_file(str(folder / "lamda_adapter.safetensors"))
    name = next(iter(lc.lamda_layers(model)))
    tensors[f"{name}.lamda_S"] = torch.zeros(3, 3)  # saved with rank 4
    save_file(tensors, str(folder / "lamda_adapter.safetensors"))
    fresh, _ = load("minilm")
    with pytest.raises(lc.AdapterMismatchError, match=r"lamda_S is saved as \(3, 3\), the model needs \(4, 4\)"):
        lc.load_adapter(fresh, folder)


def test_merging_an_update_that_rounds_away_is_an_error():
    model, _ = load("minilm", dtype="bfloat16")
    lc.apply_lamda(model, lc.LamdaConfig(rank=4))
    layer = next(iter(lc.lamda_layers(model).values()))
    with torch.no_grad():
        layer.lamda_S.fill_(1e-9)  # far below bfloat16's resolution of weights near 0.05
    with pytest.raises(lc.AdapterMismatchError, match="left its torch.bfloat16 weight unchanged"):
        lc.merge_adapter(model)


def test_a_peft_export_that_would_not_reproduce_the_adapter_is_an_error(tmp_path, monkeypatch):
    from lamda_core.adapter import persistence

    model, _ = trained("minilm", "svd", {}, steps=1)
    original = persistence.lora_config

    def wrong_alpha(config, *args, **kwargs):  # as if the export wrote a wrong alpha: PEFT would scale twice as much
        lora = original(config, *args, **kwargs)
        lora.lora_alpha = 2 * lora.lora_alpha
        return lora
    monkeypatch.setattr(persistence, "lora_config", wrong_alpha)
    with pytest.raises(lc.AdapterMismatchError, match="does not reproduce bert.encoder.layer.0"):
        lc.export_peft(model, tmp_path / "peft")
