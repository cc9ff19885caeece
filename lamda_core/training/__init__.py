"""Fine-tuning runs: data files, the run-folder contract, and the trainer process."""
