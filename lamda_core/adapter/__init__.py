"""The adapter: its config and choices, the LaMDA layer, injection into a model (LaMDA, PEFT LoRA,
full), B's gradual freezing, and saving, loading, export and merge."""
