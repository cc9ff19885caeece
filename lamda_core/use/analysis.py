"""What fine-tuning changed: the learned update of every adapted matrix of a finished run.

For each targeted matrix W (d_out, d_in) of the run's base and its fine-tuned value W' (LaMDA and
LoRA merged, full fine-tuning as saved), dW = W' - W, and with W = U diag(sigma) V^T:

    update_sigma       the top-k singular values of dW (a LaMDA or LoRA update has rank <= r)
    update_effective_rank   exp of the entropy of all of dW's sigma_i / sum sigma
    relative_norm      ||dW||_F / ||W||_F
    principal_share    ||U_r^T dW V_r||_F / ||dW||_F: the part of dW inside W's top-r singular
                       subspaces (r: the matrix's adapter rank; the run's base rank for full)
    spectrum_before / spectrum_after   sigma_i / sigma_1 of W and of W' (top k)
    intruders          intruder dimensions (Shuttleworth et al., arXiv 2410.21228): among the top
                       k left singular vectors y_j of W', those with max_i |cos(y_j, u_i)| < eps
                       over every left singular vector u_i of W (k = 10 as in the paper; eps =
                       0.5, the middle of the thresholds it sweeps; both settable)
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

METRICS = {"relative_norm": "||dW||_F / ||W||_F", "principal_share": "share of dW in W's top-r subspaces",
           "update_top_sigma": "largest singular value of dW", "update_effective_rank":
           "effective rank of dW (exp of the entropy of sigma_i / sum sigma)",
           "intruders": "intruder dimensions (top-k singular vectors of W' far from all of W's)"}
INTRUDER_K = 10  # the paper's top-k singular vectors of the fine-tuned weight
INTRUDER_THRESHOLD = 0.5  # cosine below which a singular vector counts as an intruder


@dataclass
class MatrixUpdate:
    name: str
    layer: int | None
    kind: str
    d_out: int
    d_in: int
    rank: int
    relative_norm: float
    principal_share: float
    update_effective_rank: float
    update_sigma: list[float]
    spectrum_before: list[float]
    spectrum_after: list[float]
    intruders: int = 0

    @property
    def update_top_sigma(self) -> float:
        return self.update_sigma[0] if self.update_sigma else 0.0

    def metric(self, name: str) -> float:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; choose one of {tuple(METRICS)}")
        return float(getattr(self, name))


@dataclass
class UpdateReport:
    """Every adapted matrix's MatrixUpdate for one run (method, source, run folder)."""

    run: str
    method: str
    source: str
    matrices: list[MatrixUpdate]
    intruder_k: int = INTRUDER_K
    intruder_threshold: float = INTRUDER_THRESHOLD

    @property
    def total_intruders(self) -> int:
        return sum(m.intruders for m in self.matrices)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps({"run": self.run, "method": self.method, "source": self.source,
                           "intruder_k": self.intruder_k, "intruder_threshold": self.intruder_threshold,
                           "matrices": [asdict(m) for m in self.matrices]}, indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_csv(self) -> str:
        """One row per matrix: the scalar metrics and the top singular values of dW."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["name", "layer", "kind", "d_out", "d_in", "rank", *METRICS, "update_sigma"])
        for m in self.matrices:
            writer.writerow([m.name, m.layer, m.kind, m.d_out, m.d_in, m.rank,
                             *(f"{m.metric(k):.6g}" for k in METRICS), " ".join(f"{s:.6g}" for s in m.update_sigma)])
        return out.getvalue()


def intruder_dimensions(u_before: torch.Tensor, u_after: torch.Tensor, k: int = INTRUDER_K,
                        threshold: float = INTRUDER_THRESHOLD) -> int:
    """How many of the top-``k`` left singular vectors of W' (columns of ``u_after``, (d_out, n'))
    have |cosine| below ``threshold`` with every left singular vector of W (columns of
    ``u_before``, (d_out, n)); the vectors are unit, so the cosines are u_before^T u_after."""
    cosines = (u_before.T @ u_after[:, :k]).abs()  # (n, k)
    return int((cosines.max(dim=0).values < threshold).sum())


def _normalized(sigma: torch.Tensor, top_k: int) -> list[float]:
    return (sigma[:top_k] / sigma[0]).tolist() if float(sigma[0]) > 0 else [0.0] * min(top_k, len(sigma))


@torch.no_grad()
def analyze_run(folder: str | Path, top_k: int = 16, intruder_k: int = INTRUDER_K,
                intruder_threshold: float = INTRUDER_THRESHOLD) -> UpdateReport:
    """The UpdateReport of a finished run (any method); top_k singular values per matrix, and
    intruder dimensions among the top ``intruder_k`` singular vectors of each fine-tuned matrix."""
    from ..adapter.inject import resolve_ranks
    from ..models.loading import load_model
    from ..models.targets import resolve_targets, weight_as_linear
    from ..spectra.spectrum import entropy_effective_rank
    from .export import fine_tuned_model, finished_run

    run, kwargs = finished_run(folder)
    config = run.config
    base, _ = load_model(config.source, task=config.task, **kwargs)
    tuned, _ = fine_tuned_model(folder)
    matrices = resolve_targets(base, config.adapter.targets)
    ranks = resolve_ranks(matrices, config.adapter)
    results = []
    for m in matrices:
        w = weight_as_linear(base.get_submodule(m.name)).float()
        w_after = weight_as_linear(tuned.get_submodule(m.name)).float()
        delta = w_after - w
        u, sigma, vh = torch.linalg.svd(w, full_matrices=False)
        u_after, sigma_after, _ = torch.linalg.svd(w_after, full_matrices=False)
        delta_sigma = torch.linalg.svdvals(delta)
        r = ranks[m.name]
        norm = float(torch.linalg.matrix_norm(delta))
        inside = float(torch.linalg.matrix_norm(u[:, :r].T @ delta @ vh[:r].T))
        share = min(1.0, inside / norm) if norm else 0.0  # a projection's norm: above 1 is float32 rounding
        results.append(MatrixUpdate(
            name=m.name, layer=m.layer, kind=m.kind, d_out=m.d_out, d_in=m.d_in, rank=r,
            relative_norm=norm / float(torch.linalg.matrix_norm(w)), principal_share=share,
            update_effective_rank=entropy_effective_rank(delta_sigma.double().numpy()),
            update_sigma=delta_sigma[:top_k].tolist(), spectrum_before=_normalized(sigma, top_k),
            spectrum_after=_normalized(sigma_after, top_k),
            intruders=intruder_dimensions(u, u_after, intruder_k, intruder_threshold)))
    return UpdateReport(str(run.path), config.method, str(config.source), results, intruder_k, intruder_threshold)
