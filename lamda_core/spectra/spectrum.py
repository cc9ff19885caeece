"""Singular-value spectra of a model's adaptable matrices, scanned at scale.

A safetensors checkpoint is read tensor by tensor, memory-mapped, without building the model
(the module structure comes from a model built on the meta device, which allocates nothing);
other formats fall back to a built model. Results are cached on disk keyed by the weight file's
identity (path, size, mtime), the tensor and the method, so a re-scan is a cache read.

Per matrix W (d_out, d_in) with singular values sigma_1 >= sigma_2 >= ...:
  normalized spectrum  sigma_i / sigma_1 against i or i / min(d_out, d_in)
  energy               p_i = sigma_i^2 / ||W||_F^2,  E(k) = sum_{i<=k} p_i
  stable rank          ||W||_F^2 / sigma_1^2
  effective rank       exp(H(sigma / sum sigma))  (Roy & Vetterli 2007; full spectra only)
  condition number     sigma_1 / sigma_min        (full spectra of full-rank matrices only)
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..errors import ModelSourceError, ScanCancelled, SpectrumError
from ..models.targets import MatrixInfo, resolve_targets, weight_as_linear
from .heavy_tail import heavy_tail_metrics
from .svd import singular_values

CACHE_VERSION = 2
RANK_DEFICIENT = 1e-7  # sigma_min / sigma_1 below this: condition number not meaningful

Progress = Callable[[int, int, str], None]


def entropy_effective_rank(sigma: np.ndarray) -> float:
    """exp(H(p)), p_i = sigma_i / sum sigma (Roy and Vetterli's effective rank); 0 for sigma = 0."""
    total = float(np.sum(sigma))
    if total <= 0:
        return 0.0
    p = np.asarray(sigma, dtype=np.float64) / total
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


@dataclass
class MatrixSpectrum:
    """The singular values of one matrix (all, or the top k) and its Frobenius norm."""

    name: str
    layer: int | None
    kind: str
    d_out: int
    d_in: int
    sigma: np.ndarray  # float64, descending
    frobenius: float
    complete: bool  # all min(d_out, d_in) values present

    @property
    def max_rank(self) -> int:
        return min(self.d_out, self.d_in)

    @property
    def sigma_1(self) -> float:
        return float(self.sigma[0])

    @property
    def stable_rank(self) -> float:
        return self.frobenius ** 2 / self.sigma_1 ** 2 if self.sigma_1 > 0 else 0.0

    @property
    def effective_rank(self) -> float | None:
        return entropy_effective_rank(self.sigma) if self.complete and self.sigma.sum() > 0 else None

    @property
    def condition_number(self) -> float | None:
        if not self.complete or self.sigma[-1] <= RANK_DEFICIENT * self.sigma_1:
            return None
        return float(self.sigma_1 / self.sigma[-1])

    @property
    def heavy_tail(self) -> dict:
        """alpha, alpha_weighted, log_spectral_norm (heavy_tail.py); alpha needs the full
        spectrum (None after a top-k scan)."""
        if "_heavy_tail" not in self.__dict__:
            metrics = heavy_tail_metrics(self.sigma)
            if not self.complete:
                metrics.update(alpha=None, alpha_weighted=None)
            self.__dict__["_heavy_tail"] = metrics
        return self.__dict__["_heavy_tail"]

    @property
    def alpha(self) -> float | None:
        return self.heavy_tail["alpha"]

    @property
    def alpha_weighted(self) -> float | None:
        return self.heavy_tail["alpha_weighted"]

    @property
    def log_spectral_norm(self) -> float | None:
        return self.heavy_tail["log_spectral_norm"]

    def normalized(self) -> np.ndarray:
        """sigma_i / sigma_1, i = 1..len(sigma)."""
        return self.sigma / self.sigma_1 if self.sigma_1 > 0 else np.zeros_like(self.sigma)

    def relative_index(self) -> np.ndarray:
        """i / min(d_out, d_in), i = 1..len(sigma)."""
        return np.arange(1, len(self.sigma) + 1) / self.max_rank

    def energy(self) -> np.ndarray:
        """E(k) for k = 1..len(sigma): share of ||W||_F^2 in the top k directions."""
        total = self.frobenius ** 2
        return np.cumsum(self.sigma ** 2) / total if total > 0 else np.ones_like(self.sigma)

    def energy_at(self, k: int) -> float:
        if k < 1:
            return 0.0
        if k > len(self.sigma):
            if self.complete:
                return 1.0
            raise SpectrumError(f"E({k}) of {self.name} needs {k} singular values; the scan kept {len(self.sigma)}")
        return float(self.energy()[k - 1])

    def scalars(self) -> dict:
        return {"name": self.name, "layer": self.layer, "kind": self.kind, "d_out": self.d_out, "d_in": self.d_in,
                "sigma_1": self.sigma_1, "frobenius": self.frobenius, "stable_rank": self.stable_rank,
                "effective_rank": self.effective_rank, "condition_number": self.condition_number,
                **self.heavy_tail, "values": len(self.sigma)}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["sigma"] = self.sigma.tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "MatrixSpectrum":
        return cls(**{**data, "sigma": np.asarray(data["sigma"], dtype=np.float64)})


@dataclass
class SpectrumReport:
    """Spectra of every scanned matrix, in model order."""

    source: str
    top_k: int | None
    matrices: list[MatrixSpectrum] = field(default_factory=list)
    cache_hits: int = 0

    def __getitem__(self, name: str) -> MatrixSpectrum:
        for m in self.matrices:
            if m.name == name:
                return m
        raise KeyError(name)

    def rows(self, base_rank: int | None = None) -> list[dict]:
        """One dict of scalars per matrix (plus E(base_rank) when given)."""
        rows = []
        for m in self.matrices:
            row = m.scalars()
            if base_rank is not None:
                row[f"energy_at_{base_rank}"] = m.energy_at(min(base_rank, len(m.sigma)))
            rows.append(row)
        return rows

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps({"source": self.source, "top_k": self.top_k,
                           "matrices": [m.to_dict() for m in self.matrices]})
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "SpectrumReport":
        text = Path(text_or_path).read_text() if Path(str(text_or_path)).is_file() else str(text_or_path)
        data = json.loads(text)
        return cls(data["source"], data["top_k"], [MatrixSpectrum.from_dict(m) for m in data["matrices"]])


# ---- where weights come from ------------------------------------------------------------

@dataclass
class _WeightRef:
    """One matrix to scan: its description, a loader of its (d_out, d_in) weight and a cache key
    (None when the weight lives only in memory)."""

    info: MatrixInfo
    load: Callable[[], torch.Tensor]
    identity: str | None
    tensor_name: str


def _meta_model(folder: Path) -> nn.Module:
    """The module structure of a checkpoint without allocating weights."""
    from ..models.loading import load_config, meta_model

    try:
        return meta_model(load_config(folder), "encoder")
    except (OSError, ValueError, KeyError) as error:
        raise ModelSourceError(f"cannot read the model structure of {folder}: {error}") from None


def _safetensors_keys(files: list[Path]) -> dict[str, Path]:
    from safetensors import safe_open

    keys = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                keys.update({key: file for key in handle.keys()})
        except Exception as error:  # safetensors raises its own error types
            raise ModelSourceError(f"{file} is not a readable safetensors file ({error})") from None
    return keys


def _load_tensor(file: Path, key: str, transpose: bool) -> torch.Tensor:
    """One tensor, opening the memory map only for this read so resident pages are released."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            tensor = handle.get_tensor(key)
    except Exception as error:
        raise ModelSourceError(f"cannot read tensor {key} from {file} ({error})") from None
    return tensor.T if transpose else tensor


def _file_identity(file: Path) -> str:
    stat = file.stat()
    return f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _checkpoint_refs(folder: Path, targets) -> list[_WeightRef]:
    files = sorted(folder.glob("*.safetensors"))
    keys = _safetensors_keys(files)
    matrices = resolve_targets(_meta_model(folder), targets)
    refs = []
    for m in matrices:
        suffix = m.name + ".weight"
        found = [k for k in keys if k == suffix or k.endswith("." + suffix)]
        if len(found) != 1:
            raise ModelSourceError(f"the checkpoint in {folder} has {len(found)} tensors for {m.name} "
                                   f"(expected 1: *{suffix})")
        file = keys[found[0]]
        refs.append(_WeightRef(m, lambda f=file, k=found[0], t=m.module_type == "Conv1D": _load_tensor(f, k, t),
                               _file_identity(file), found[0]))
    return refs


def _model_refs(model: nn.Module, targets) -> list[_WeightRef]:
    modules = dict(model.named_modules())
    return [_WeightRef(m, lambda mod=modules[m.name]: weight_as_linear(mod).detach(), None, m.name + ".weight")
            for m in resolve_targets(model, targets)]


def weight_refs(source, targets=None) -> tuple[str, list[_WeightRef]]:
    """(description of the source, matrices to scan) for a model object, alias, folder or hub id."""
    if isinstance(source, nn.Module):
        return type(source).__name__, _model_refs(source, targets)
    from ..models.loading import load_model, resolve_source

    resolved = resolve_source(source)
    folder = Path(resolved)
    if not folder.is_dir():  # a hub id: let transformers fetch it, then scan the cached folder
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(resolved, allow_patterns=["*.json", "*.safetensors"]))
    if any(folder.glob("*.safetensors")):
        return str(source), _checkpoint_refs(folder, targets)
    model, _ = load_model(str(folder), task="encoder")
    return str(source), _model_refs(model, targets)


# ---- the scan --------------------------------------------------------------------------

def cache_dir() -> Path:
    from ..models.paths import cache_root

    return cache_root() / "spectra"


def _cache_path(ref: _WeightRef, method: str) -> Path | None:
    if ref.identity is None:
        return None
    key = json.dumps([CACHE_VERSION, ref.identity, ref.tensor_name, method])
    return cache_dir() / f"{hashlib.sha1(key.encode()).hexdigest()}.npz"


def _read_cache(path: Path | None) -> tuple[np.ndarray, float] | None:
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return data["sigma"], float(data["frobenius"])
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is recomputed


def _write_cache(path: Path | None, sigma: np.ndarray, frobenius: float) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(staging, sigma=sigma, frobenius=frobenius)
    os.replace(staging, path)


def frobenius_norm(weight: torch.Tensor, rows_per_chunk: int = 1024) -> float:
    """||W||_F accumulated in float64 over row chunks (no full float64 copy of a big matrix)."""
    return math.sqrt(sum(float(chunk.double().square().sum()) for chunk in weight.split(rows_per_chunk)))


def _compute(ref: _WeightRef, top_k: int | None, device: str, exact_route: str) -> tuple[np.ndarray, float]:
    weight = ref.load().to(device=device, dtype=torch.float32).contiguous()  # Conv1D gives a transposed view
    if not math.isfinite(float(torch.linalg.vector_norm(weight))):  # one pass; NaN or inf poison the norm
        bad = int((~torch.isfinite(weight)).sum())
        raise SpectrumError(f"tensor {ref.tensor_name} has {bad} NaN or inf values of {weight.numel()}; "
                            "its spectrum is undefined")
    sigma = singular_values(weight, top_k, exact_route).cpu().numpy()
    full = len(sigma) == ref.info.max_rank
    frobenius = math.sqrt(float(np.square(sigma).sum())) if full else frobenius_norm(weight)
    return sigma, frobenius


def scan_spectra(source="default", targets=None, top_k: int | None = None, device: str = "cpu",
                 cache: bool = True, progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None, exact_route: str = "gram") -> SpectrumReport:
    """Spectra of every targeted matrix (default: all attention and MLP projections).

    source: a model object, "default", "smollm2", "tiny-llama", "tiny-gpt2", a folder or a hub id.
    top_k: None for full spectra, else the k largest values (enough for E(k) and allocation).
    progress(done, total, name) after each matrix; should_stop() before each, raising
    ScanCancelled when it returns True (finished matrices stay cached).
    """
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpectrumError("device 'cuda' was asked for but no GPU is available; use device='cpu'")
    description, refs = weight_refs(source, targets)
    if top_k is not None:
        if top_k < 1:
            raise SpectrumError(f"top_k must be at least 1, got {top_k}")
        too_small = [f"{r.info.name} ({r.info.d_out}x{r.info.d_in})" for r in refs if top_k > r.info.max_rank]
        if too_small:
            raise SpectrumError(f"top_k={top_k} exceeds min(d_out, d_in) of {', '.join(too_small[:3])}"
                                f"{' and more' if len(too_small) > 3 else ''}; lower top_k or use top_k=None")
    report = SpectrumReport(description, top_k)
    method = f"{exact_route}-full" if top_k is None else f"top{top_k}"
    for done, ref in enumerate(refs):
        if should_stop is not None and should_stop():
            raise ScanCancelled(f"scan stopped after {done} of {len(refs)} matrices")
        exact_path = _cache_path(ref, f"{exact_route}-full") if cache else None
        path = _cache_path(ref, method) if cache else None
        hit = _read_cache(exact_path) or _read_cache(path)
        if hit is None:
            sigma, frobenius = _compute(ref, top_k, device, exact_route)
            _write_cache(path, sigma, frobenius)
        else:
            sigma, frobenius = hit
            report.cache_hits += 1
        sigma = sigma[: top_k or None]
        info = ref.info
        report.matrices.append(MatrixSpectrum(info.name, info.layer, info.kind, info.d_out, info.d_in, sigma,
                                              frobenius, complete=len(sigma) == info.max_rank))
        if progress is not None:
            progress(done + 1, len(refs), info.name)
    return report


def iter_kinds(report: SpectrumReport) -> Iterator[str]:
    seen = []
    for m in report.matrices:
        if m.kind not in seen:
            seen.append(m.kind)
            yield m.kind
