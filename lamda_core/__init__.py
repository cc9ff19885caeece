"""lamda_core: LaMDA / LaMDA++ adapters for Hugging Face transformers (no UI code here)."""
from .adapter.config import LamdaConfig
from .adapter.freezing import PMBFreezer, frozen_column_count
from .adapter.inject import (
    LamdaState,
    ParameterCount,
    adapter_parameters,
    apply_lamda,
    lamda_layers,
    trainable_parameters,
)
from .adapter.layer import LamdaLayer
from .adapter.persistence import export_peft, load_adapter, merge_adapter, save_adapter
from .costs.memory import CostBreakdown
from .errors import (
    AdapterMismatchError,
    AllocationError,
    ConfigError,
    DataError,
    LamdaError,
    ModelSourceError,
    RankError,
    RunError,
    ScanCancelled,
    SpectrumError,
    TargetError,
)
from .methods import adapt
from .models.loading import load_model
from .models.targets import MatrixInfo, adaptable_matrices, default_targets, resolve_targets
from .planning.estimate import estimate_costs, estimate_each
from .planning.measure import measure_costs
from .planning.query import CostQuery
from .spectra.allocation import Allocation, allocate_ranks
from .spectra.importance import gradient_importance
from .spectra.spectrum import MatrixSpectrum, SpectrumReport, scan_spectra

__all__ = [
    "Allocation",
    "AllocationError",
    "MatrixSpectrum",
    "ScanCancelled",
    "SpectrumError",
    "SpectrumReport",
    "DataError",
    "RunError",
    "allocate_ranks",
    "gradient_importance",
    "scan_spectra",
    "CostBreakdown",
    "CostQuery",
    "estimate_costs",
    "estimate_each",
    "measure_costs",
    "AdapterMismatchError",
    "ConfigError",
    "LamdaState",
    "adapter_parameters",
    "LamdaConfig",
    "LamdaError",
    "LamdaFreezeCallback",
    "LamdaLayer",
    "MatrixInfo",
    "ModelSourceError",
    "PMBFreezer",
    "ParameterCount",
    "RankError",
    "TargetError",
    "adaptable_matrices",
    "adapt",
    "apply_lamda",
    "default_targets",
    "export_peft",
    "frozen_column_count",
    "lamda_layers",
    "load_adapter",
    "load_model",
    "merge_adapter",
    "resolve_targets",
    "save_adapter",
    "trainable_parameters",
]


def __getattr__(name: str):
    """``LamdaFreezeCallback`` on first use: transformers' Trainer machinery costs seconds to import."""
    if name == "LamdaFreezeCallback":
        from .adapter.trainer_callback import LamdaFreezeCallback

        return LamdaFreezeCallback
    raise AttributeError(f"module 'lamda_core' has no attribute {name!r}")
