"""What fine-tuning changed: the learned update of a finished run, for every method."""
import json

import pytest

import lamda_core as lc
from lamda_core.figures import update_heatmap, update_overlay_figure
from lamda_core.runs.config import TrainConfig
from lamda_core.runs.folder import create_run
from lamda_core.training.trainer import run
from lamda_core.use.analysis import METRICS, analyze_run

pytestmark = pytest.mark.xdist_group("analysis")  # one worker builds the module's fixtures once


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A short finished run of LaMDA, LoRA and full fine-tuning on the demo set (rank 4)."""
    root = tmp_path_factory.mktemp("analysis")
    folders = {}
    for method in ("lamda", "lora", "full"):
        config = TrainConfig(method=method, max_steps=12, batch_size=8, eval_interval=12, checkpoint_interval=100,
                             adapter=lc.LamdaConfig(rank=4))
        folders[method] = create_run(config, root / method)
        assert run(folders[method]) == "finished"
    return folders


@pytest.fixture(scope="module")
def reports(finished_runs):
    return {method: analyze_run(folder, top_k=8) for method, folder in finished_runs.items()}


@pytest.mark.parametrize("method", ["lamda", "lora", "full"])
def test_update_of_every_method_is_measured_against_the_base(reports, method):
    report = reports[method]
    assert report.method == method and len(report.matrices) == 36  # MiniLM's default targets
    for m in report.matrices:
        assert m.relative_norm > 0 and 0 <= m.principal_share <= 1 + 1e-6
        assert m.spectrum_before[0] == pytest.approx(1.0) and len(m.update_sigma) == 8
    ranks = [sum(s > 1e-4 * m.update_sigma[0] for s in m.update_sigma) for m in report.matrices]
    if method == "full":
        assert max(ranks) > 4  # full fine-tuning's update is not low-rank
    else:
        assert max(ranks) <= 4  # an adapter's update has rank <= r


def test_lamda_update_stays_in_the_row_space_of_w(reports):
    """A is frozen to V_r^T of W, so dW = s B S A has its rows inside W's top-r right singular
    space; B moved off U_r only while it trained, so most of dW is inside both subspaces."""
    report, lora = reports["lamda"], reports["lora"]
    median = sorted(m.principal_share for m in report.matrices)[18]
    assert median > 0.5
    assert median > sorted(m.principal_share for m in lora.matrices)[18]  # LoRA learns its own A


def test_reports_export_and_draw(reports, tmp_path):
    report = reports["lamda"]
    data = json.loads(report.to_json(tmp_path / "report.json"))
    assert len(data["matrices"]) == 36 and (tmp_path / "report.json").is_file()
    rows = report.to_csv().splitlines()
    assert rows[0].startswith("name,layer,kind") and len(rows) == 37
    for metric in METRICS:
        figure = update_heatmap(report, metric)
        assert figure.data[0].z.shape == (6, 6)
    overlay = update_overlay_figure({"lamda": report, "lora": reports["lora"]},
                                    report.matrices[0].name)
    assert len(overlay.data) == 5  # W before, and per run W after and sigma(dW)


def test_unfinished_run_is_refused_with_its_state(tmp_path):
    folder = create_run(TrainConfig(max_steps=5), tmp_path / "queued")
    with pytest.raises(lc.RunError, match="has not finished \\(queued\\)"):
        analyze_run(folder)


def test_cli_analyze_prints_every_matrix_and_writes_files(finished_runs, tmp_path):
    import contextlib
    import io

    from lamda_core.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", str(finished_runs["lora"]), "--json", str(tmp_path / "a.json"),
                     "--csv", str(tmp_path / "a.csv")]) in (0, None)
    text = out.getvalue()
    assert text.count("bert.encoder.layer.") == 36 and "median" in text and "intruder dimensions (top 10" in text
    assert (tmp_path / "a.json").is_file() and (tmp_path / "a.csv").read_text().count("\n") == 37


def _rotated_weight(intruders: int, d: int = 64, seed: int = 0):
    """(W, W') with a known count of intruder dimensions: W = U diag(sigma) V^T, and W' adds
    ``intruders`` rank-one terms 5 sigma_1 x_j y_j^T whose x_j each mix 16 of U's columns evenly
    (|cos| 1/4 with each, 0 with the rest), so W''s top singular vectors point where none of W's do."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    sigma = torch.linspace(1.0, 0.1, d, dtype=torch.float64)
    w = u @ torch.diag(sigma) @ v.T
    w_after = w.clone()
    for j in range(intruders):
        x = u[:, 16 * j:16 * (j + 1)].sum(dim=1) / 4  # unit: 16 orthonormal columns / sqrt(16)
        y = v[:, 16 * j:16 * (j + 1)].sum(dim=1) / 4
        w_after += (5.0 - j) * torch.outer(x, y)
    return w, w_after


@pytest.mark.parametrize("intruders", [0, 1, 3])
def test_intruder_count_on_a_built_case_with_a_known_answer(intruders):
    import torch

    from lamda_core.use.analysis import intruder_dimensions

    w, w_after = _rotated_weight(intruders)
    u = torch.linalg.svd(w)[0]
    u_after = torch.linalg.svd(w_after)[0]
    assert intruder_dimensions(u, u_after, k=10, threshold=0.5) == intruders
    assert intruder_dimensions(u, u_after, k=10, threshold=0.2) == 0  # 1/4 is above a lower threshold
    # an update inside W's own top singular directions (what LaMDA's path does) adds none
    inside = w + u[:, :8] @ torch.diag(torch.linspace(0.5, 0.1, 8, dtype=torch.float64)) @ u[:, :8].T @ w
    assert intruder_dimensions(u, torch.linalg.svd(inside)[0], k=10, threshold=0.5) == 0


def test_intruder_dimensions_are_reported_per_matrix_and_in_total(reports):
    for method, report in reports.items():
        assert report.intruder_k == 10 and report.intruder_threshold == 0.5
        assert all(0 <= m.intruders <= 10 for m in report.matrices)
        assert report.total_intruders == sum(m.intruders for m in report.matrices)
    assert update_heatmap(reports["lora"], "intruders").data[0].z.shape == (6, 6)
