"""What a run would cost: one CostQuery, estimated from the model's config (estimate.py) or measured on
a real step (measure.py)."""
