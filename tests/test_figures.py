"""Figures carry the report's numbers (the figure data is checked, not just its existence)."""
import numpy as np
import pytest

import lamda_core as lc
from lamda_core import figures

pytestmark = pytest.mark.xdist_group("figures")  # one worker builds the module's fixtures once


@pytest.fixture(scope="module")
def report():
    return lc.scan_spectra("default")


def test_spectra_figure_traces_are_the_normalized_spectra(report):
    figure = figures.spectra_figure(report, kinds=["q", "ffn_in"], layers=[0, 5])
    assert [t.name for t in figure.data] == ["L0 q", "L0 ffn_in", "L5 q", "L5 ffn_in"]
    query = report["encoder.layer.5.attention.self.query"]
    np.testing.assert_allclose(figure.data[2].y, query.sigma / query.sigma[0])
    np.testing.assert_allclose(figure.data[2].x, np.arange(1, 385))
    assert "sigma_i / sigma_1" in figure.layout.yaxis.title.text


def test_energy_view_against_relative_index(report):
    figure = figures.spectra_figure(report, kinds=["ffn_out"], layers=[3], x_axis="relative", y_axis="energy",
                                    log_y=True)
    m = report["encoder.layer.3.output.dense"]
    np.testing.assert_allclose(figure.data[0].y, np.cumsum(m.sigma ** 2) / m.frobenius ** 2)
    assert figure.data[0].x[-1] == 1.0 and figure.layout.yaxis.type == "log"


@pytest.mark.parametrize("scalar", ["stable_rank", "effective_rank", "energy_at_base_rank"])
def test_heatmap_holds_each_matrix_scalar(report, scalar):
    figure = figures.heatmap_figure(report, scalar, base_rank=8)
    z = np.array(figure.data[0].z)
    assert z.shape == (6, 6) and list(figure.data[0].x) == ["q", "k", "v", "o", "ffn_in", "ffn_out"]
    m = report["encoder.layer.4.attention.self.value"]
    expected = m.energy_at(8) if scalar == "energy_at_base_rank" else getattr(m, scalar)
    assert z[4, 2] == pytest.approx(expected)
    assert figure.layout.xaxis.title.text and figure.layout.yaxis.title.text


def test_allocation_figure_bars_are_the_ranks(report):
    allocation = lc.allocate_ranks(report, base_rank=8)
    figure = figures.allocation_figure(allocation)
    assert list(figure.data[0].y) == list(allocation.ranks.values())
    assert set(figure.data[1].y) == {8}
    assert [c[0] for c in figure.data[0].customdata] == pytest.approx(list(allocation.energy_kept.values()))


def test_pareto_figure_draws_one_line_per_method_and_rings_the_front():
    points = [{"method": "lamda", "rank": r, "accuracy": a, "adapter_average": p, "peak_memory_mib": m}
              for r, a, p, m in ((8, 0.85, 51_000, 1500), (4, 0.83, 26_000, 1490))] + \
             [{"method": "lora", "rank": r, "accuracy": a, "adapter_average": p, "peak_memory_mib": m}
              for r, a, p, m in ((8, 0.89, 331_776, 1870), (2, 0.84, 82_944, 1860))]
    figure = figures.pareto_figure(points)
    assert [t.name for t in figure.data] == ["lamda", "lora", "Pareto front"]
    assert list(figure.data[0].x) == [26_000, 51_000] and list(figure.data[0].text) == ["r=4", "r=8"]
    assert list(figure.data[0].y) == pytest.approx([83.0, 85.0]) and figure.layout.xaxis.type == "log"
    # LoRA r=2 costs more than LaMDA r=8 and scores lower: it is off the front
    assert list(figure.data[2].x) == [26_000, 51_000, 331_776]
    by_memory = figures.pareto_figure(points, x="peak_memory_mib")
    assert "MiB" in by_memory.layout.xaxis.title.text and by_memory.layout.xaxis.type != "log"
    assert list(by_memory.data[2].x) == [1490, 1500, 1870]  # LoRA r=2: more memory than LaMDA r=8, lower
