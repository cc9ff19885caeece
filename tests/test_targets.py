import pytest
from conftest import load

import lamda_core as lc


def test_minilm_kinds_and_shapes():
    model, _ = load("minilm")
    targets = lc.default_targets(model)
    assert len(targets) == 36
    layer0 = {m.kind: m.shape for m in targets if m.layer == 0}
    assert layer0 == {"q": (384, 384), "k": (384, 384), "v": (384, 384), "o": (384, 384),
                      "ffn_in": (1536, 384), "ffn_out": (384, 1536)}
    every = lc.adaptable_matrices(model)
    assert {m.name for m in every} - {m.name for m in targets} == {"bert.pooler.dense", "classifier"}


def test_llama_kinds_with_gqa_widths():
    model, _ = load("llama")
    layer1 = {m.kind: m.shape for m in lc.default_targets(model) if m.layer == 1}
    assert layer1 == {"q": (64, 64), "k": (32, 64), "v": (32, 64), "o": (64, 64),
                      "gate": (176, 64), "up": (176, 64), "down": (64, 176)}


def test_gpt2_conv1d_found_with_linear_orientation():
    model, _ = load("gpt2")
    targets = lc.default_targets(model)
    assert all(m.module_type == "Conv1D" for m in targets)
    qkv = next(m for m in targets if m.kind == "qkv")
    # Conv1D stores (d_in, d_out) = (64, 192); reported as a Linear, (d_out, d_in).
    assert model.get_submodule(qkv.name).weight.shape == (64, 192)
    assert qkv.shape == (192, 64)
    assert {m.kind for m in targets} == {"qkv", "o", "ffn_in", "ffn_out"}


def test_explicit_patterns_suffix_and_regex():
    model, _ = load("minilm")
    assert len(lc.resolve_targets(model, ["query", "value"])) == 12
    assert [m.layer for m in lc.resolve_targets(model, [r"bert\.encoder\.layer\.[01]\.attention\.self\.query"])] == [
        0,
        1,
    ]


def test_pattern_matching_nothing_is_named():
    model, _ = load("minilm")
    with pytest.raises(lc.TargetError, match=r"\['q_proj'\]"):
        lc.resolve_targets(model, ["query", "q_proj"])
    with pytest.raises(lc.TargetError, match="q_proj"):
        lc.apply_lamda(model, lc.LamdaConfig(targets=["q_proj"]))
