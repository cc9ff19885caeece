"""The method-agnostic cost model: parameter formulas, the memory terms of a training step from a
model's config (each method adds its own, methods/), and the allocator's measured peak."""
