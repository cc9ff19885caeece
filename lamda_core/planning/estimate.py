"""The cost estimate of a CostQuery: every component of training memory (costs/memory.py for
the base model's terms, the method's registry entry for its own) and the trainable parameters."""
from __future__ import annotations

from ..adapter.inject import head_module_names, resolve_ranks
from ..costs.memory import (
    ADAPTER_BYTES,
    DTYPE_BYTES,
    OPTIMIZER_STATES,
    AdapterPath,
    CostBreakdown,
    activations,
    causal_transients,
    math_attention,
    shape_of,
    step_peak,
    validate_shape,
)
from ..errors import ConfigError
from ..models.loading import load_config, meta_model, resolve_source
from ..models.pooling import resolve_pooling, unused_pooler_parameters
from ..models.targets import model_family, resolve_targets
from .query import CostQuery


def estimate_costs(query: CostQuery) -> CostBreakdown:
    """Estimate every component of training memory and the trainable parameters of one method,
    from the model's config alone (query.source: only config.json is read)."""
    q = query
    method, batch_size, seq_len, dtype, device, task = q.method_spec, q.batch_size, q.seq_len, q.dtype, q.device, q.task
    config = q.adapter_config()
    model_config = load_config(q.source)
    validate_shape(model_config, batch_size, seq_len)
    meta = meta_model(model_config, task)
    pooling = resolve_pooling(q.pooling, meta, resolve_source(q.source) if isinstance(q.source, str) else None)
    family = model_family(meta)
    sh = shape_of(meta.config, family, batch_size, seq_len)
    act = DTYPE_BYTES[dtype]
    on_gpu = device.startswith("cuda")
    mask = 1 if on_gpu else 4

    base_params = sum(p.numel() for p in meta.parameters())
    heads = head_module_names(meta, None)
    head_params = sum(p.numel() for h in heads for p in meta.get_submodule(h).parameters())
    matrices = resolve_targets(meta, config.targets) if method.adapts_matrices else []
    ranks = resolve_ranks(matrices, config) if matrices else {}
    method.check_matrices(matrices, ranks)
    counts = [method.matrix_parameters(ranks[m.name], m.d_in, m.d_out, q.total_steps, config) for m in matrices]
    adapter_frozen, adapter_start = sum(c.frozen for c in counts), sum(c.start for c in counts)
    adapter_end, adapter_average = sum(c.end for c in counts), float(sum(c.average for c in counts))
    full = method.trains_all_weights
    head_copy = head_params if method.copies_head else 0  # PEFT's modules_to_save: a trainable copy
    if full:
        trainable = base_params
        weights = base_params * act
    else:
        trainable = adapter_start + head_params
        weights = base_params * act + (adapter_frozen + adapter_start) * ADAPTER_BYTES + head_copy * act
    # trainable parameters in the model's dtype that get a gradient (full fine-tuning with mean
    # pooling leaves BERT's pooler unused)
    trainable_native = trainable - adapter_start - (unused_pooler_parameters(meta, pooling) if full else 0)
    gradients = trainable_native * act + adapter_start * ADAPTER_BYTES
    states = OPTIMIZER_STATES[q.optimizer]
    if q.mixed_precision and act < 4:  # fp32 master copy and fp32 moments for half-precision parameters
        optimizer_bytes = trainable_native * (4 + 4 * states) + adapter_start * ADAPTER_BYTES * states
    else:
        optimizer_bytes = (trainable_native * act + adapter_start * ADAPTER_BYTES) * states

    causal = task == "causal-lm"
    path = AdapterPath(matrices, ranks, sh.tokens, act, mask, config.dropout, not math_attention(sh, on_gpu))
    kept = method.kept_activations(path) if matrices else 0
    base, adapter_acts, logits = activations(sh, kept, act, mask, full, on_gpu, q.gradient_checkpointing, causal)
    transients = causal_transients(sh, act) if causal else method.transients(sh, act, config.dropout)
    if matrices:  # a temporary built from the weights in every forward (DoRA's row norms)
        transients = (transients[0] + method.weight_transient(matrices), transients[1])
    peak, phase = step_peak(int(weights), int(gradients), int(optimizer_bytes), int(base + adapter_acts + logits),
                            transients, q.optimizer)
    return CostBreakdown(
        method=q.method, weights=int(weights), gradients=int(gradients), optimizer=int(optimizer_bytes),
        activations_base=int(base), activations_adapter=int(adapter_acts), logits=int(logits),
        trainable_start=int(trainable), trainable_end=int(trainable - adapter_start + adapter_end),
        trainable_average=float(trainable - adapter_start + adapter_average),
        adapter_start=int(adapter_start), adapter_end=int(adapter_end), peak=peak, peak_phase=phase)


def estimate_each(queries: dict[str, CostQuery], required: str | None = None,
                  ) -> tuple[dict[str, CostBreakdown], dict[str, ConfigError]]:
    """Estimates for several methods at once, {method: query} -> ({method: estimate}, {method:
    why it is left out}): a method this model cannot take (PSOFT on GPT-2's Conv1D) is left out
    with its ConfigError, unless it is ``required``; a ConfigError when none can be estimated."""
    estimates, left_out = {}, {}
    for method, query in queries.items():
        try:
            estimates[method] = estimate_costs(query)
        except ConfigError as error:
            if method == required:
                raise
            left_out[method] = error
    if not estimates:
        raise ConfigError("; ".join(str(error) for error in left_out.values()))
    return estimates, left_out
