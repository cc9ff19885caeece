"""Trainable parameters and training memory: estimated from a config, measured by a real step."""
