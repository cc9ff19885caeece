"""Errors raised by lamda_core. Each names what was wrong and how to fix it."""


class LamdaError(Exception):
    """Base class of every error lamda_core raises on bad input."""


class ModelSourceError(LamdaError):
    """A model source (folder, hub id, alias) cannot be loaded."""


class TargetError(LamdaError):
    """A target pattern matches no adaptable matrix, or a model has none."""


class RankError(LamdaError):
    """A rank is impossible for the matrix it is asked for."""


class ConfigError(LamdaError):
    """An option has a value outside its allowed set."""


class AdapterMismatchError(LamdaError):
    """A saved adapter does not belong to the model it is loaded onto."""


class SpectrumError(LamdaError):
    """A weight cannot be analysed (NaN/inf values, top_k above its rank, unreadable file)."""


class ScanCancelled(LamdaError):
    """A spectrum scan stopped on request; finished matrices stay in the cache."""


class AllocationError(LamdaError):
    """A rank budget that cannot be met under the given bounds."""


class DataError(LamdaError):
    """A dataset file that cannot be used as asked (empty, missing column, bad labels, encoding)."""


class RunError(LamdaError):
    """A run folder that cannot be started, stopped or resumed as asked."""
