"""lamda_core: LaMDA / LaMDA++ adapters for Hugging Face transformers (no UI code here)."""
from .config import LamdaConfig
from .costs import CostBreakdown, estimate_costs
from .allocation import Allocation, allocate_ranks
from .errors import (AdapterMismatchError, AllocationError, ConfigError, DataError, LamdaError, ModelSourceError,
                     RankError, RunError, ScanCancelled, SpectrumError, TargetError)
from .freezing import LamdaFreezeCallback, PMBFreezer, frozen_column_count
from .inject import ParameterCount, adapt, apply_lamda, lamda_layers, trainable_parameters
from .layer import LamdaLayer
from .loading import load_model
from .measure import measure_costs
from .spectrum import MatrixSpectrum, SpectrumReport, scan_spectra
from .persistence import export_peft, load_adapter, merge_adapter, save_adapter
from .targets import MatrixInfo, adaptable_matrices, default_targets, resolve_targets

__all__ = [
    "Allocation", "AllocationError", "MatrixSpectrum", "ScanCancelled", "SpectrumError", "SpectrumReport",
    "DataError", "RunError", "allocate_ranks", "scan_spectra", "CostBreakdown", "estimate_costs", "measure_costs",
    "AdapterMismatchError", "ConfigError", "LamdaConfig", "LamdaError", "LamdaFreezeCallback", "LamdaLayer",
    "MatrixInfo", "ModelSourceError", "PMBFreezer", "ParameterCount", "RankError", "TargetError",
    "adaptable_matrices", "adapt", "apply_lamda", "default_targets", "export_peft", "frozen_column_count",
    "lamda_layers", "load_adapter", "load_model", "merge_adapter", "resolve_targets", "save_adapter",
    "trainable_parameters",
]
