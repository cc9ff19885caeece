"""The LaMDA layer: output preservation, parameter counts, saved activations, dtypes, errors."""
import pytest
import torch
from conftest import batch, load, outputs

import lamda_core as lc


@pytest.mark.parametrize("family", ["minilm", "llama", "gpt2"])
@pytest.mark.parametrize("init", ["svd", "svd-residual", "random"])
def test_output_unchanged_at_step_zero(family, init):
    model, tokenizer = load(family)
    inputs = batch(tokenizer)
    before = outputs(model, inputs)
    lc.apply_lamda(model, lc.LamdaConfig(rank=8, init=init))
    after = outputs(model, inputs)
    tolerance = 1e-4 if init == "svd-residual" else 0.0  # the residual base is W - U_r S_r V_r^T in fp32
    assert torch.allclose(before, after, atol=tolerance * before.abs().max(), rtol=0)
    assert len(lc.lamda_layers(model)) == len(lc.default_targets(load(family)[0]))


def test_svd_init_uses_principal_singular_vectors():
    model, _ = load("minilm")
    weight = model.bert.encoder.layer[2].intermediate.dense.weight.detach().clone()
    lc.apply_lamda(model, lc.LamdaConfig(rank=4))
    layer = lc.lamda_layers(model)["bert.encoder.layer.2.intermediate.dense"]
    u, sigma, vh = torch.linalg.svd(weight, full_matrices=False)
    # B^T W A^T = diag(sigma_r) for the principal triplets (signs cancel).
    projected = layer.lamda_B.T @ weight @ layer.lamda_A.T
    assert torch.allclose(projected, torch.diag(sigma[:4]), atol=1e-3 * sigma[0])
    assert torch.equal(layer.lamda_S, torch.zeros(4, 4))


@pytest.mark.parametrize("family", ["minilm", "llama", "gpt2"])
def test_trainable_counts_match_formulas(family):
    model, _ = load(family)
    targets = lc.default_targets(model)
    r = 4
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("classifier", "score")))
    lc.adapt(model, "lamda", lc.LamdaConfig(rank=r))
    count = lc.trainable_parameters(model)
    assert count.adapter == sum(r * r + r * m.d_out for m in targets)
    assert count.other_trainable == head
    for layer in lc.lamda_layers(model).values():
        layer.lamda_B.requires_grad_(False)
    assert lc.trainable_parameters(model).adapter == len(targets) * r * r

    lora_model, _ = load(family)
    lora_model = lc.adapt(lora_model, "lora", lc.LamdaConfig(rank=r))
    assert lc.trainable_parameters(lora_model).adapter == sum(r * (m.d_in + m.d_out) for m in targets)


def test_full_fine_tuning_trains_everything():
    model, _ = load("minilm")
    model = lc.adapt(model, "full")
    count = lc.trainable_parameters(model)
    assert count.trainable == count.total and count.adapter == 0


def test_rank_pattern_sets_per_matrix_ranks():
    model, _ = load("minilm")
    lc.apply_lamda(model, lc.LamdaConfig(rank=4, rank_pattern={"layer.0.attention.self.query": 12, "value": 2}))
    layers = lc.lamda_layers(model)
    assert layers["bert.encoder.layer.0.attention.self.query"].rank == 12
    assert layers["bert.encoder.layer.1.attention.self.query"].rank == 4
    assert {layers[n].rank for n in layers if n.endswith("value")} == {2}


def _saved_activations(module: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Tensors autograd keeps for backward that are not parameters or buffers."""
    owned = {t.data_ptr() for t in list(module.parameters()) + list(module.buffers())}
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        module(x).sum()
    return [t for t in saved if t.data_ptr() not in owned]


def test_adapter_path_keeps_no_input_wide_activation_lora_does():
    model, _ = load("minilm")
    lc.apply_lamda(model, lc.LamdaConfig(rank=8, targets=["layer.0.output.dense"]))
    layer = lc.lamda_layers(model)["bert.encoder.layer.0.output.dense"]  # d_in 1536, d_out 384
    x = torch.randn(2, 5, 1536, requires_grad=True)  # as inside a network whose earlier layers train
    saved = _saved_activations(layer, x)
    assert sorted(t.shape for t in saved) == [(10, 8), (10, 8)]  # A(x) and S(A(x)), N x r each
    layer.lamda_B.requires_grad_(False)
    assert [t.shape for t in _saved_activations(layer, x)] == [(10, 8)]  # only A(x) once B is frozen

    lora, _ = load("minilm")
    lora = lc.adapt(lora, "lora", lc.LamdaConfig(rank=8, targets=["layer.0.output.dense"]))
    lora_layer = lora.get_submodule("base_model.model.bert.encoder.layer.0.output.dense")
    saved = _saved_activations(lora_layer, x)
    assert any(t.shape[-1] == 1536 and t.numel() == 10 * 1536 for t in saved)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_base_keeps_fp32_adapter(dtype):
    model, tokenizer = load("minilm", dtype=dtype)
    inputs = batch(tokenizer)
    before = outputs(model, inputs).float()
    lc.apply_lamda(model, lc.LamdaConfig(rank=8, init="svd-residual"))
    layer = next(iter(lc.lamda_layers(model).values()))
    assert layer.lamda_S.dtype == torch.float32 and layer.base.weight.dtype == getattr(torch, dtype)
    after = outputs(model, inputs)
    assert after.dtype == getattr(torch, dtype)
    assert torch.allclose(before, after.float(), atol=0.05 * before.abs().max())
    model.train()
    model(**inputs).loss.backward()
    assert layer.lamda_S.grad is not None and torch.isfinite(layer.lamda_S.grad).all()


def test_rank_larger_than_matrix_is_a_specific_error():
    model, _ = load("llama")
    with pytest.raises(lc.RankError, match=r"k_proj \(32x64, rank 40 > 32\)"):
        lc.apply_lamda(model, lc.LamdaConfig(rank=40))


def test_bad_options_are_specific_errors():
    with pytest.raises(lc.ConfigError, match="init must be one of"):
        lc.LamdaConfig(init="orthogonal")
    with pytest.raises(lc.ConfigError, match="rank must be a positive integer"):
        lc.LamdaConfig(rank=0)
    model, _ = load("minilm")
    with pytest.raises(lc.ConfigError, match="unknown method"):
        lc.adapt(model, "qlorax")
    with pytest.raises(lc.TargetError, match="rank_pattern entries \\['q_proj'\\]"):
        lc.apply_lamda(model, lc.LamdaConfig(rank_pattern={"q_proj": 4}))
    lc.apply_lamda(model, lc.LamdaConfig())
    with pytest.raises(lc.ConfigError, match="already has LaMDA layers"):
        lc.apply_lamda(model, lc.LamdaConfig())


@pytest.mark.parametrize("family", ["minilm", "llama", "gpt2"])
def test_gradient_init_keeps_the_output_and_aligns_s_with_the_task_gradient(family):
    """A, B = the top-r singular vectors of G = dL/dW, S = 0: outputs unchanged, and the first
    gradient of S is s diag(sigma_r(G)), the best rank-r part of full fine-tuning's first step."""
    from lamda_core.adapter.gradient_init import estimate_gradients

    model, tokenizer = load(family)
    inputs = [batch(tokenizer, seed=0), batch(tokenizer, seed=1)]
    if family != "minilm":  # causal LM: the loss predicts the next token
        inputs = [{**item, "labels": item["input_ids"]} for item in inputs]
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before = outputs(model, inputs[0])
    gradients = estimate_gradients(model, None, inputs)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags  # left as it was
    assert all(p.grad is None for p in model.parameters())

    lc.apply_lamda(model, lc.LamdaConfig(rank=4, init="gradient"), gradients=gradients)
    assert torch.equal(outputs(model, inputs[0]), before)
    for item in inputs:
        model(**item).loss.backward()
    for name, layer in lc.lamda_layers(model).items():
        sigma = torch.linalg.svdvals(gradients[name])[:4]
        assert torch.allclose(
            layer.lamda_S.grad, layer.scale * torch.diag(sigma), atol=1e-3 * float(sigma[0]) + 1e-9
        ), name


def test_gradient_init_without_gradients_is_a_specific_error():
    model, _ = load("minilm")
    with pytest.raises(lc.ConfigError, match="init 'gradient' needs the task gradient"):
        lc.apply_lamda(model, lc.LamdaConfig(init="gradient"))
    assert not lc.lamda_layers(model)  # nothing changed
