"""Runs as folders: the run config, the run-folder contract (status, metrics, checkpoints, stop
requests, the training queue), the checks before a run is created, and groups of runs (comparisons,
sweeps)."""
