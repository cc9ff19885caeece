"""The Q4_1 noise floor (spectra/quantization.py) against real rounding noise."""
import pytest
import torch

import lamda_core as lc
from lamda_core.spectra.quantization import block_rounding_sigma, noise_floor, quantize_q4_1


@pytest.fixture(scope="module")
def query_weight():
    model, _ = lc.load_model("default", task="encoder")
    return model.encoder.layer[0].attention.self.query.weight.detach()


def test_q4_1_keeps_16_levels_per_block_between_its_min_and_max(query_weight):
    quantized = quantize_q4_1(query_weight).reshape(384, 12, 32)
    original = query_weight.reshape(384, 12, 32)
    assert max(len(torch.unique(block)) for block in quantized.reshape(-1, 32)) <= 16
    assert torch.allclose(quantized.amin(-1), original.amin(-1)) and torch.allclose(quantized.amax(-1),
                                                                                    original.amax(-1), atol=1e-6)


def test_the_floor_matches_the_real_rounding_noise(query_weight):
    quantized = quantize_q4_1(query_weight)
    real = float(torch.linalg.matrix_norm(quantized - query_weight, 2))
    floor = noise_floor(quantized)
    assert floor.floor == pytest.approx(real, rel=0.1)
    assert block_rounding_sigma(quantized) == pytest.approx(float((quantized - query_weight).std()), rel=0.1)
    assert 0 < floor.relative < 0.2 and 0 < floor.below < 0.5  # the tail, not the top, is at the noise level

