"""LaMDA++ allocation: exact budgets, bounds, multiples, flatter spectra get more, determinism."""
import numpy as np
import pytest
from conftest import load
from hypothesis import given, settings
from hypothesis import strategies as st

import lamda_core as lc
from lamda_core.spectra.allocation import STRATEGIES
from lamda_core.spectra.spectrum import MatrixSpectrum, SpectrumReport


def synthetic_report(spectra: list[np.ndarray], d_out: list[int] | None = None) -> SpectrumReport:
    matrices = []
    for i, sigma in enumerate(spectra):
        sigma = np.sort(np.asarray(sigma, dtype=np.float64))[::-1]
        out = d_out[i] if d_out else len(sigma)
        matrices.append(MatrixSpectrum(f"layers.{i}.proj", i, "q", out, len(sigma), sigma,
                                       float(np.sqrt((sigma ** 2).sum())), complete=True))
    return SpectrumReport("synthetic", None, matrices)


spectrum = st.lists(st.floats(1e-3, 10.0), min_size=24, max_size=48).map(np.array)


@settings(max_examples=60, deadline=None)
@given(spectra=st.lists(spectrum, min_size=1, max_size=10), base_rank=st.integers(1, 6),
       multiple=st.sampled_from([1, 2, 4]), strategy=st.sampled_from(STRATEGIES),
       extra=st.integers(-3, 3))
def test_rank_budget_is_met_exactly_within_bounds(spectra, base_rank, multiple, strategy, extra):
    report = synthetic_report(spectra)
    importance = {m.name: float(m.sigma.sum()) for m in report.matrices} if strategy == "gradient" else None
    r_min, r_max = multiple, 4 * base_rank + 2 * multiple
    budget = multiple * (len(spectra) * -(-base_rank // multiple) + extra)
    lowest, highest = len(spectra) * multiple, len(spectra) * (min(r_max, 24) // multiple * multiple)
    if not lowest <= budget <= highest:
        with pytest.raises(lc.AllocationError, match="outside what"):
            lc.allocate_ranks(report, base_rank, budget=budget, strategy=strategy, r_min=r_min, r_max=r_max,
                              multiple=multiple, importance=importance)
        return
    allocation = lc.allocate_ranks(report, base_rank, budget=budget, strategy=strategy, r_min=r_min,
                                   r_max=r_max, multiple=multiple, importance=importance)
    ranks = list(allocation.ranks.values())
    assert sum(ranks) == budget
    assert all(r_min <= r <= r_max and r % multiple == 0 for r in ranks)
    again = lc.allocate_ranks(report, base_rank, budget=budget, strategy=strategy, r_min=r_min, r_max=r_max,
                              multiple=multiple, importance=importance)
    assert again.ranks == allocation.ranks


@settings(max_examples=60, deadline=None)
@given(spectra=st.lists(spectrum, min_size=2, max_size=8), base_rank=st.integers(1, 6),
       fraction=st.floats(0.5, 1.5))
def test_parameter_budget_is_never_exceeded(spectra, base_rank, fraction):
    report = synthetic_report(spectra, d_out=[2 * len(s) for s in spectra])
    uniform = sum(base_rank ** 2 + base_rank * m.d_out for m in report.matrices)
    budget = max(int(fraction * uniform), sum(1 + m.d_out for m in report.matrices))
    allocation = lc.allocate_ranks(report, base_rank, budget=budget, budget_kind="params", r_min=1)
    assert allocation.parameters <= budget
    ranks = np.array(list(allocation.ranks.values()))
    d_out = np.array([m.d_out for m in report.matrices])
    largest_step = int(((ranks + 1) ** 2 + d_out - ranks ** 2).max())
    at_ceiling = all(r == min(allocation.r_max, len(m.sigma)) for m, r in zip(report.matrices, ranks))
    assert at_ceiling or allocation.parameters > budget - largest_step  # stops only when a step won't fit


@settings(max_examples=60, deadline=None)
@given(flat=st.floats(0.80, 0.99), steep_gap=st.floats(0.05, 0.5), base_rank=st.integers(2, 6),
       size=st.integers(24, 64))
def test_flatter_spectrum_gets_more_rank(flat, steep_gap, base_rank, size):
    steep = flat - steep_gap
    i = np.arange(size)
    report = synthetic_report([flat ** i, steep ** i])  # flat decays slower: less energy in the top k
    allocation = lc.allocate_ranks(report, base_rank)
    assert allocation.ranks["layers.0.proj"] >= allocation.ranks["layers.1.proj"]
    for name, rank in allocation.ranks.items():  # every matrix below r_max reaches the threshold
        assert rank == allocation.r_max or allocation.energy_kept[name] >= allocation.threshold


def test_minilm_allocation_evens_out_kept_energy_and_feeds_the_config():
    report = lc.scan_spectra("default", top_k=32)
    allocation = lc.allocate_ranks(report, base_rank=8)
    assert allocation.total_rank == 36 * 8
    kept = np.array(list(allocation.energy_kept.values()))
    uniform = np.array(list(allocation.uniform_energy.values()))
    assert kept.std() < uniform.std() / 3  # equal energy: the spread shrinks
    assert len(set(allocation.ranks.values())) > 3

    model, _ = load("minilm")
    lc.adapt(model, "lamda++", lc.LamdaConfig(rank=8, rank_pattern=allocation.rank_pattern))
    layers = lc.lamda_layers(model)
    assert {name.removeprefix("bert."): layer.rank for name, layer in layers.items()} == allocation.ranks
    assert lc.trainable_parameters(model).adapter == allocation.parameters


def test_energy_deficit_strategy_and_json_round_trip(tmp_path):
    report = lc.scan_spectra("default")
    allocation = lc.allocate_ranks(report, base_rank=8, strategy="energy-deficit", multiple=2)
    assert allocation.total_rank == 288 and all(r % 2 == 0 for r in allocation.ranks.values())
    deficit = {m.name: 1 - m.energy_at(8) for m in report.matrices}
    most, least = max(deficit, key=deficit.get), min(deficit, key=deficit.get)
    assert allocation.ranks[most] >= allocation.ranks[least]
    allocation.to_json(tmp_path / "ranks.json")
    assert lc.Allocation.from_json(tmp_path / "ranks.json") == allocation


def test_gradient_strategy_follows_the_task_gradient_of_real_data(tmp_path):
    """The data-driven rule: importance is ||dL/dW||_F on the first batches of the file, named as
    the scan names matrices; rank follows importance; bad input is a specific error."""
    report = lc.scan_spectra("default")
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"{'a fine film' if i % 2 else 'a dull film'} number {i},{i % 2}\n"
                                              for i in range(40)))
    importance = lc.gradient_importance("default", data, batches=2, batch_size=8)
    assert set(importance) == {m.name for m in report.matrices} and all(v > 0 for v in importance.values())
    assert lc.gradient_importance("default", data, batches=2, batch_size=8) == importance  # file order, fixed seed
    allocation = lc.allocate_ranks(report, base_rank=8, strategy="gradient", importance=importance)
    assert allocation.total_rank == 8 * len(report.matrices)
    most, least = max(importance, key=importance.get), min(importance, key=importance.get)
    assert allocation.ranks[most] > allocation.ranks[least]
    doubled = {**importance, least: 1e3 * importance[most]}  # one matrix the task pulls on hardest
    assert lc.allocate_ranks(report, base_rank=8, strategy="gradient", importance=doubled).ranks[least] == 32
    with pytest.raises(lc.AllocationError, match="needs an importance score for every matrix"):
        lc.allocate_ranks(report, base_rank=8, strategy="gradient")
    with pytest.raises(lc.DataError):
        lc.gradient_importance("default", tmp_path / "missing.csv")


def test_top_k_scan_caps_the_rank():
    report = lc.scan_spectra("default", top_k=16)
    allocation = lc.allocate_ranks(report, base_rank=8)
    assert max(allocation.ranks.values()) <= 16 and allocation.r_max == 32


def test_impossible_budgets_are_specific_errors():
    report = synthetic_report([np.linspace(1, 0.1, 16)] * 3)
    with pytest.raises(lc.AllocationError, match="outside what"):
        lc.allocate_ranks(report, base_rank=4, budget=1000)
    with pytest.raises(lc.AllocationError, match="cannot be met in multiples of 4"):
        lc.allocate_ranks(report, base_rank=4, budget=14, multiple=4, r_min=4)
    with pytest.raises(lc.AllocationError, match="unknown strategy"):
        lc.allocate_ranks(report, base_rank=4, strategy="magic")
    with pytest.raises(lc.AllocationError, match="no rank fits"):
        lc.allocate_ranks(report, base_rank=4, r_min=20, r_max=30)
