"""Spectrum scans: exactness against numpy, Conv1D orientation, top-k error, cache, bad input."""
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import lamda_core as lc
from lamda_core.models.loading import default_model_path
from lamda_core.spectra.spectrum import scan_spectra

EXACT_RTOL = 1e-5  # per singular value, Gram route (float64) against numpy's float64 SVD
TOP_K_RTOL = 1e-3  # per singular value, randomized top-k against exact


pytestmark = pytest.mark.xdist_group("spectrum")  # one worker builds the module's fixtures once


@pytest.fixture(scope="module")
def minilm_weights():
    return load_file(str(default_model_path() / "model.safetensors"))


def test_full_spectra_equal_numpy_on_real_minilm(minilm_weights):
    report = scan_spectra("default", cache=False)
    assert len(report.matrices) == 36 and report.cache_hits == 0
    for m in report.matrices:
        expected = np.linalg.svd(minilm_weights[m.name + ".weight"].double().numpy(), compute_uv=False)
        assert m.complete and len(m.sigma) == 384
        np.testing.assert_allclose(m.sigma, expected, rtol=EXACT_RTOL)
        assert m.frobenius == pytest.approx(np.sqrt((expected ** 2).sum()), rel=1e-6)


def test_svd_route_agrees(minilm_weights):
    report = scan_spectra("default", cache=False, exact_route="svd", targets=["layer.0.intermediate.dense"])
    expected = np.linalg.svd(minilm_weights["encoder.layer.0.intermediate.dense.weight"].double().numpy(),
                             compute_uv=False)
    np.testing.assert_allclose(report.matrices[0].sigma, expected, rtol=0, atol=1e-5 * expected[0])


def test_scalars_follow_their_definitions():
    m = scan_spectra("default").matrices[4]
    sigma = m.sigma
    assert m.stable_rank == pytest.approx((sigma ** 2).sum() / sigma[0] ** 2)
    p = sigma / sigma.sum()
    assert m.effective_rank == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert m.condition_number == pytest.approx(sigma[0] / sigma[-1])
    assert m.energy_at(8) == pytest.approx((sigma[:8] ** 2).sum() / m.frobenius ** 2)
    np.testing.assert_allclose(m.normalized(), sigma / sigma[0])
    assert m.relative_index()[-1] == 1.0


def test_conv1d_orientation_from_file_and_model():
    from_file = scan_spectra("tiny-gpt2", cache=False)
    model, _ = lc.load_model("tiny-gpt2", task="causal-lm")
    from_model = scan_spectra(model)
    c_attn = from_file.matrices[0]
    assert (c_attn.name, c_attn.kind, c_attn.d_out, c_attn.d_in, len(c_attn.sigma)) == (
        "h.0.attn.c_attn",
        "qkv",
        192,
        64,
        64,
    )
    fc = from_file["h.0.mlp.c_fc"]
    assert (fc.d_out, fc.d_in) == (256, 64)
    assert c_attn.relative_index()[-1] == 1.0
    for a, b in zip(from_file.matrices, from_model.matrices):
        assert b.name.endswith(a.name) and (a.d_out, a.d_in) == (b.d_out, b.d_in)
        np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-9)


@pytest.mark.parametrize("k", [8, 12])
def test_top_k_relative_error_on_real_weights(k):
    from lamda_core.spectra.svd import krylov_dimension

    assert krylov_dimension(k) < 384 // 2  # the randomized route, not the exact fallback
    exact = scan_spectra("default")
    top = scan_spectra("default", top_k=k, cache=False)
    worst = max(
        float(np.max(np.abs(t.sigma - e.sigma[:k]) / e.sigma[:k])) for t, e in zip(top.matrices, exact.matrices)
    )
    assert 0 < worst < TOP_K_RTOL
    assert all(len(m.sigma) == k and not m.complete and m.effective_rank is None for m in top.matrices)


@pytest.fixture()
def minilm_copy(tmp_path):
    folder = tmp_path / "minilm"
    shutil.copytree(default_model_path(), folder)
    return folder


def test_cache_hits_are_identical_and_a_changed_file_invalidates(minilm_copy):
    first = scan_spectra(str(minilm_copy))
    again = scan_spectra(str(minilm_copy))
    assert first.cache_hits == 0 and again.cache_hits == 36
    for a, b in zip(first.matrices, again.matrices):
        assert np.array_equal(a.sigma, b.sigma) and a.frobenius == b.frobenius

    weights = load_file(str(minilm_copy / "model.safetensors"))
    weights["encoder.layer.0.attention.self.query.weight"] *= 2
    save_file(weights, str(minilm_copy / "model.safetensors"), metadata={"format": "pt"})
    changed = scan_spectra(str(minilm_copy))
    assert changed.cache_hits == 0
    np.testing.assert_allclose(changed.matrices[0].sigma, 2 * first.matrices[0].sigma, rtol=1e-6)


def test_progress_and_cancel_keep_finished_work(minilm_copy):
    calls = []
    with pytest.raises(lc.ScanCancelled, match="after 3 of 36"):
        scan_spectra(str(minilm_copy), progress=lambda d, t, n: calls.append((d, t, n)),
                     should_stop=lambda: len(calls) >= 3)
    assert [c[:2] for c in calls] == [(1, 36), (2, 36), (3, 36)]
    assert scan_spectra(str(minilm_copy)).cache_hits == 3


def test_pickled_checkpoint_falls_back_to_a_built_model(tmp_path):
    model, tokenizer = lc.load_model("tiny-gpt2", task="causal-lm")
    (tmp_path / "bin").mkdir()
    model.config.save_pretrained(tmp_path / "bin")
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    report = scan_spectra(str(tmp_path / "bin"))
    np.testing.assert_allclose(report.matrices[0].sigma, scan_spectra("tiny-gpt2").matrices[0].sigma, rtol=1e-9)


def test_truncated_safetensors_is_a_specific_error(minilm_copy):
    path = minilm_copy / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(lc.ModelSourceError, match="not a readable safetensors file"):
        scan_spectra(str(minilm_copy))


def test_corrupt_header_is_a_specific_error(minilm_copy):
    path = minilm_copy / "model.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + os.urandom(64))
    with pytest.raises(lc.ModelSourceError, match="not a readable safetensors file"):
        scan_spectra(str(minilm_copy))


def test_nan_weights_name_the_tensor(minilm_copy):
    weights = load_file(str(minilm_copy / "model.safetensors"))
    weights["encoder.layer.2.attention.self.value.weight"][3, 7] = float("nan")
    weights["encoder.layer.2.attention.self.value.weight"][0, 0] = float("inf")
    save_file(weights, str(minilm_copy / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(lc.SpectrumError, match=r"encoder\.layer\.2\.attention\.self\.value\.weight has 2 NaN or inf"):
        scan_spectra(str(minilm_copy), cache=False)


def test_model_without_adaptable_matrices():
    with pytest.raises(lc.TargetError, match="no adaptable matrices"):
        scan_spectra(torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.GELU()))


def test_top_k_larger_than_rank_is_a_specific_error():
    with pytest.raises(
        lc.SpectrumError, match=r"top_k=40 exceeds min\(d_out, d_in\) of layers\.0\.self_attn\.k_proj \(32x64\)"
    ):
        scan_spectra("tiny-llama", top_k=40)
    with pytest.raises(lc.SpectrumError, match="at least 1"):
        scan_spectra("default", top_k=0)


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.5])
def test_power_law_fit_recovers_a_known_exponent(alpha):
    from lamda_core.spectra.heavy_tail import fit_power_law

    rng = np.random.default_rng(0)
    samples = (1 - rng.random(2000)) ** (-1 / (alpha - 1))  # density ~ x^-alpha above 1
    fit = fit_power_law(samples)
    assert fit.alpha == pytest.approx(alpha, abs=0.15) and fit.tail_size > 500
    assert fit_power_law(np.array([1e-9, 2.0, 3.0])) is None  # too few eigenvalues above the floor


def test_heavy_tail_metrics_need_the_full_spectrum():
    full = scan_spectra("default").matrices[0]
    top = scan_spectra("default", top_k=16).matrices[0]
    assert full.alpha > 1 and full.alpha_weighted == pytest.approx(full.alpha * full.log_spectral_norm)
    assert full.log_spectral_norm == pytest.approx(2 * np.log10(full.sigma_1))
    assert top.alpha is None and top.log_spectral_norm == pytest.approx(full.log_spectral_norm)
    assert {"alpha", "alpha_weighted", "log_spectral_norm"} <= set(full.scalars())


def test_alpha_matches_weightwatcher_on_minilm():
    """Where WeightWatcher is installed (the bench extra): the same alpha per matrix."""
    weightwatcher = pytest.importorskip("weightwatcher")
    model, _ = lc.load_model("default", task="encoder")
    details = weightwatcher.WeightWatcher(model=model).analyze(plot=False)
    differences = []
    for m in scan_spectra("default").matrices:
        row = details[details.longname.apply(lambda name: m.name.endswith(name))]
        differences.append(abs(m.alpha - float(row.alpha.iloc[0])))
    assert len(differences) == 36 and float(np.median(differences)) < 0.05
