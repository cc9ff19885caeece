"""Parameter and memory cost estimates from a model's config alone (no weights loaded).

Components (bytes), for full fine-tuning, LoRA, LaMDA and LaMDA++:
  weights      every parameter x bytes(dtype); adapters are float32 (LaMDA and PEFT keep them so)
  gradients    trainable x bytes of their dtype
  optimizer    AdamW: two moments in the parameter's dtype (torch's default), plus an fp32 master
               copy and fp32 moments for half-precision parameters when mixed_precision is set;
               SGD: none; SGD with momentum: one buffer
  activations  what autograd keeps for backward, per layer, itemized after Korthikanti et al.
               2022 ("Reducing Activation Recomputation in Large Transformer Models") and adapted
               to each family as PyTorch eager actually runs it: attention on the CPU with dropout
               > 0 takes the math path (s^2 scores, their dropout mask and the dropped copy);
               without dropout, or on a GPU, SDPA keeps no s^2 tensor (q, k, v, output and the
               log-sum-exp instead); dropout masks are float32 on the CPU and bool on a GPU;
               SwiGLU widths, GQA K/V widths and RMSNorm's float32 upcast are counted.
  adapter path LoRA keeps its input x (once per distinct input when dropout is 0; a dropped copy
               and a mask per module otherwise) and A(x) (N x r); LaMDA keeps A(x) and S(A(x))
               (N x r each), only A(x) once B is frozen, and never x.
  logits       what the loss keeps: the log-softmax (N x V float32 for causal LMs, b x labels
               otherwise) and the int64 targets.
  peak         what the allocator holds at the step's highest point (see _peak, _transients): the
               components above never all live at once, and short-lived tensors come on top.
N = batch x sequence tokens. Trainable parameters are given at the start, after B is frozen and
averaged over the freezing schedule (the paper's "parameter updates").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..adapter.inject import head_module_names, resolve_ranks
from ..errors import ConfigError
from ..methods import MemoryModel
from ..models.loading import load_config, meta_model, resolve_source
from ..models.pooling import resolve_pooling, unused_pooler_parameters
from ..models.targets import MatrixInfo, model_family, resolve_targets
from .query import CostQuery

OPTIMIZER_STATES = {"adamw": 2, "sgd": 0, "sgd-momentum": 1}  # fp32 moments per trainable parameter
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
ADAPTER_BYTES = 4
ATTENTION_INPUT_KINDS = {"q", "k", "v", "qkv"}
MLP_INPUT_KINDS = {"gate", "up", "ffn_in", "gate_up"}


@dataclass
class CostBreakdown:
    """Bytes per component and trainable parameter counts of one method (estimated or measured)."""

    method: str
    weights: int
    gradients: int
    optimizer: int
    activations_base: int
    activations_adapter: int
    logits: int
    trainable_start: int
    trainable_end: int
    trainable_average: float
    adapter_start: int
    adapter_end: int
    peak: int | None = None  # the allocator's highest point in a steady-state step (peak.py)
    peak_phase: str | None = None  # forward, backward or optimizer step: where the peak happens
    rss_growth: int | None = None  # measured only: the process's resident high-water growth in the step

    COMPONENTS = ("weights", "gradients", "optimizer", "activations_base", "activations_adapter", "logits")

    @property
    def activations(self) -> int:
        return self.activations_base + self.activations_adapter + self.logits

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def as_dict(self) -> dict:
        data = {k: v for k, v in asdict(self).items()}
        data.update(activations=self.activations, total=self.total)
        return data


def optimizer_for(name: str, parameters, lr: float = 1e-4) -> torch.optim.Optimizer:
    if name not in OPTIMIZER_STATES:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {tuple(OPTIMIZER_STATES)}")
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr)
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9 if name == "sgd-momentum" else 0.0)


def max_positions(config) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    return None


def validate_shape(config, batch_size: int, seq_len: int) -> None:
    if int(batch_size) != batch_size or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    if int(seq_len) != seq_len or seq_len < 1:
        raise ConfigError(f"sequence length must be a positive integer, got {seq_len!r}")
    limit = max_positions(config)
    if limit is not None and seq_len > limit:
        raise ConfigError(f"sequence length {seq_len} exceeds the model's maximum of {limit} positions")


@dataclass(frozen=True)
class Shape:
    """What the activation formulas need from a config, plus the token batch."""

    family: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    num_labels: int
    p_hidden: float
    p_attention: float
    batch: int
    seq: int

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def _shape(config, family: str, batch: int, seq: int) -> Shape:
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd")
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head")
    intermediate = (getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden)
    return Shape(
        family=family, layers=getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer"),
        hidden=hidden, heads=heads, kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        intermediate=intermediate, vocab=config.vocab_size, num_labels=getattr(config, "num_labels", 2),
        p_hidden=float(getattr(config, "hidden_dropout_prob", None) or getattr(config, "resid_pdrop", None) or 0.0),
        p_attention=float(getattr(config, "attention_probs_dropout_prob", None) or getattr(config, "attn_pdrop", None)
                          or getattr(config, "attention_dropout", None) or 0.0),
        batch=batch, seq=seq)


def _math_attention(sh: Shape, on_gpu: bool) -> bool:
    """Whether SDPA takes the math path (s^2 tensors): with attention dropout on the CPU."""
    return sh.p_attention > 0 and not on_gpu


def _attention(sh: Shape, act: int, mask: int, on_gpu: bool) -> float:
    """Bytes the attention core keeps for one layer (q, k, v already projected). The fused
    kernels' output is laid out as (b, s, heads, d), so it is also the o-projection's input."""
    n, b, a, s = sh.tokens, sh.batch, sh.heads, sh.seq
    kv = 2 * n * sh.kv_heads * sh.head_dim * act
    if _math_attention(sh, on_gpu):  # q, k, v, softmax output, dropout mask, dropped
        upcast = (b * a * s * s * 4 + n * sh.hidden * act) if act < 4 else 0  # half: float32 scores, one more N x h
        return n * sh.hidden * act + kv + b * a * s * s * (2 * act + mask) + upcast
    return 2 * n * sh.hidden * act + kv + b * a * s * 4  # fused: q, k, v, output, log-sum-exp


def _layer_base(sh: Shape, act: int, mask: int, full: bool, grad_in: bool, on_gpu: bool) -> float:
    """Bytes one transformer block keeps for backward outside the adapter path."""
    n, h, i = sh.tokens, sh.hidden, sh.intermediate
    drop = n * h * mask if sh.p_hidden > 0 else 0
    attention = _attention(sh, act, mask, on_gpu)
    # inputs of the Linear layers, kept for their weight gradients (o's is the attention output
    # when the attention is fused)
    linear_inputs = ((3 if _math_attention(sh, on_gpu) else 2) * n * h + n * i) * act if full else 0
    if sh.family == "llama":  # RMSNorm upcasts to fp32: input and 1/rms (+ normalized for the weight)
        norms = (2 if grad_in else 1) * n * (h * 4 + 4) + (2 * n * h * 4 if full else 0)
        return norms + attention + 3 * n * i * act + linear_inputs
    if sh.family == "gpt2":  # pre-LN; gelu_new keeps 4 N x i tensors
        norms = (2 if grad_in else 1) * n * (h * act + 8)
        return norms + attention + 2 * drop + 4 * n * i * act + linear_inputs
    # BERT-like (post-LN; also the fallback for other families)
    norms = 2 * n * (h * act + 8)
    return norms + attention + 2 * drop + n * i * act + linear_inputs


def _outside_layers(sh: Shape, act: int, mask: int, full: bool, causal: bool) -> float:
    """Embeddings, final norm and task head (the logits' log-softmax is counted apart)."""
    n, h, b = sh.tokens, sh.hidden, sh.batch
    if sh.family == "llama":
        return n * (h * 4 + 4) + ((n * h * 4 + n * h * act + n * 8) if full else 0) + 2 * sh.seq * sh.head_dim * act
    if sh.family == "gpt2":
        final = n * (h * act + 8) + (n * h * act if full else 0)
        embeddings = (n * h * mask if sh.p_hidden > 0 else 0) + 2 * n * 8 if full else 0
        return final + embeddings
    embeddings = (n * (h * act + 8) + (n * h * mask if sh.p_hidden > 0 else 0) + 2 * n * 8) if full else 0
    pooler = 0 if causal else b * h * (2 * act + (mask if sh.p_hidden > 0 else 0)) + (b * h * act if full else 0)
    return embeddings + pooler


def _adapter_activations(memory: MemoryModel, matrices: list[MatrixInfo], ranks: dict[str, int], sh: Shape,
                         act: int, mask: int, dropout: float, fused_attention: bool) -> float:
    n = sh.tokens
    first_layer = min((m.layer for m in matrices if m.layer is not None), default=None)

    def input_needs_grad(m: MatrixInfo) -> bool:  # the first block's attention input is the frozen embeddings'
        return not (m.layer == first_layer and m.kind in ATTENTION_INPUT_KINDS)

    masks = sum(n * m.d_in * mask for m in matrices if input_needs_grad(m)) if dropout > 0 else 0
    if memory is MemoryModel.LAMDA:
        return sum(2 * n * ranks[m.name] * ADAPTER_BYTES for m in matrices) + masks
    if memory is MemoryModel.VERA:
        return sum(n * (ranks[m.name] + m.d_out) * ADAPTER_BYTES for m in matrices) + masks
    if memory is MemoryModel.PSOFT:
        return sum(n * ranks[m.name] * ADAPTER_BYTES for m in matrices) + masks
    if memory is MemoryModel.DORA:  # LoRA's, plus the base output and B A x per module
        lora = _adapter_activations(MemoryModel.LORA, matrices, ranks, sh, act, mask, dropout, fused_attention)
        return lora + sum(2 * n * m.d_out * ADAPTER_BYTES for m in matrices)
    total = sum(n * ranks[m.name] * ADAPTER_BYTES for m in matrices) + masks  # A(x), kept for lora_B
    if dropout > 0:  # each module keeps its own dropped copy of x
        return total + sum(n * m.d_in * ADAPTER_BYTES for m in matrices)
    if act != ADAPTER_BYTES:  # x is cast to the adapter dtype: a copy per module
        return total + sum(n * m.d_in * ADAPTER_BYTES for m in matrices)
    inputs = {}
    for m in matrices:  # one x per distinct input: q/k/v share one, gate/up share one
        if m.kind == "o" and fused_attention:
            continue  # the attention output, already kept by the attention
        group = "attention" if m.kind in ATTENTION_INPUT_KINDS else "mlp" if m.kind in MLP_INPUT_KINDS else m.name
        inputs[(m.layer, group)] = n * m.d_in * act
    return total + sum(inputs.values())


def _transients(sh: Shape, memory: MemoryModel, dropout: float, act: int, causal: bool) -> tuple[float, float]:
    """Bytes that live only for a moment on top of the kept activations: (forward, backward),
    at their largest. Measured from the allocator's events (peak.py) on the CPU, fp32:
    causal LMs: the logits beside their float32 log-softmax in the forward (N x V), and in the
        backward the gradients of both (2 N x V float32, for half-precision models too).
        This is the largest transient of every causal LM measured here, by far.
    BERT-like classifiers: the last block's widest temporaries, per token (h hidden, i MLP):
        forward: full h; LoRA without dropout 2h; LaMDA and LoRA with dropout about 2i + h/2
        (the MLP-wide update beside the base output);
        backward: full and LoRA with dropout i; LoRA without dropout i + 3h; LaMDA 2i + 3h (the
        input gradient of the adapter path beside the base's); with a half-precision base the
        adapters' forward temporaries are float32: about 2i + h/2 (LoRA with dropout 2i + 2h)."""
    n, h, i, v = sh.tokens, sh.hidden, sh.intermediate, sh.vocab
    if causal:
        half = act < 4
        return n * v * (act + (4 if half else 0)), 2 * n * v * 4
    lora = memory is MemoryModel.LORA
    if memory is MemoryModel.FULL:
        return n * h * act, n * i * act
    if act < 4:  # half-precision base: the adapter's float32 update and its cast dominate the forward
        forward = (2 * i + h / 2 + (1.5 * h if lora and dropout > 0 else 0)) * n * ADAPTER_BYTES
        return forward, (2 * i + 3 * h) * n * act
    if lora:
        return ((2 * i + h / 2) if dropout > 0 else 2 * h) * n * act, (i if dropout > 0 else i + 3 * h) * n * act
    return (2 * i + h / 2) * n * act, (2 * i + 3 * h) * n * act


def _dora_weight_transient(matrices: list[MatrixInfo]) -> int:
    """DoRA's largest forward temporary beyond LoRA's (PEFT's DoraLinearLayer): B A is built by
    pushing a d_in x d_in identity through A and B, then W + s B A and its copy of s B A (d_out x
    d_in each) give the row norms; bytes of the widest module."""
    return max((m.d_in * m.d_in + 3 * m.d_in * m.d_out) * ADAPTER_BYTES for m in matrices)


def _peak(weights: int, gradients: int, optimizer: int, activations: int, transients: tuple[float, float],
          optimizer_name: str) -> tuple[int, str]:
    """(peak bytes, phase) of a steady-state step: weights and optimizer state always live, then
    the highest of: forward (kept activations + forward transient), backward (kept activations +
    backward transient; a parameter gradient appears only after the activations of its block are
    freed, so full fine-tuning's gradients mostly replace activations) and the optimizer step
    (gradients + AdamW's foreach scratch, about one more gradient-sized buffer)."""
    scratch = gradients if optimizer_name != "sgd" else 0
    phases = {"forward": activations + transients[0], "backward": max(activations + transients[1], gradients),
              "optimizer step": gradients + scratch}
    phase = max(phases, key=phases.get)
    return int(weights + optimizer + phases[phase]), phase


def _activations(sh: Shape, memory: MemoryModel, matrices: list[MatrixInfo], ranks: dict[str, int], dropout: float,
                 act: int, mask: int, full: bool, on_gpu: bool, checkpointing: bool,
                 causal: bool) -> tuple[float, float, int]:
    """(base activations, adapter activations, logits and loss) kept for backward, in bytes.
    Gradient checkpointing keeps each block's input, and one block's activations live again in
    backward. Logits: rows x (classes or vocab) fp32 log-softmax + int64 targets."""
    per_layer = [
        _layer_base(sh, act, mask, full, grad_in=full or layer > 0, on_gpu=on_gpu) for layer in range(sh.layers)
    ]
    adapter_acts = (_adapter_activations(memory, matrices, ranks, sh, act, mask, dropout,
                                         not _math_attention(sh, on_gpu)) if matrices else 0)
    if checkpointing:
        base = sh.layers * sh.tokens * sh.hidden * act + max(per_layer)
        adapter_acts = adapter_acts / max(1, sh.layers)
    else:
        base = sum(per_layer)
    base += _outside_layers(sh, act, mask, full, causal)
    rows = sh.tokens if causal else sh.batch  # log-softmax rows
    logits = rows * ((sh.vocab if causal else sh.num_labels) * 4 + 8) + 4
    return base, adapter_acts, logits


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
    sh = _shape(meta.config, family, batch_size, seq_len)
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
    full = method.memory is MemoryModel.FULL
    peft = method.memory not in (MemoryModel.FULL, MemoryModel.LAMDA)
    head_copy = head_params if peft else 0  # PEFT's modules_to_save: a trainable copy
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
    base, adapter_acts, logits = _activations(sh, method.memory, matrices, ranks, config.dropout, act, mask, full,
                                              on_gpu, q.gradient_checkpointing, causal)
    transients = _transients(sh, method.memory, config.dropout, act, causal)
    if method.memory is MemoryModel.DORA and matrices:  # the norm of W + s B A, rebuilt in every forward
        transients = (transients[0] + _dora_weight_transient(matrices), transients[1])
    peak, phase = _peak(int(weights), int(gradients), int(optimizer_bytes), int(base + adapter_acts + logits),
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
