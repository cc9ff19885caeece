"""One training process: the trainer (python -m lamda_core.training.trainer RUN_FOLDER), its batches,
optimizer groups and metrics."""
