"""The memory model of one training step, from a model's config alone (no weights loaded): the
base model's terms here, each method's own terms (what its path keeps, its transients) in its
registry entry (methods/, given an AdapterPath); planning/estimate.py puts them together.

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

from ..errors import ConfigError
from ..models.targets import MatrixInfo

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


def shape_of(config, family: str, batch: int, seq: int) -> Shape:
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




def _attention(sh: Shape, act: int, mask: int, on_gpu: bool) -> float:
    """Bytes the attention core keeps for one layer (q, k, v already projected). The fused
    kernels' output is laid out as (b, s, heads, d), so it is also the o-projection's input."""
    n, b, a, s = sh.tokens, sh.batch, sh.heads, sh.seq
    kv = 2 * n * sh.kv_heads * sh.head_dim * act
    if math_attention(sh, on_gpu):  # q, k, v, softmax output, dropout mask, dropped
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
    linear_inputs = ((3 if math_attention(sh, on_gpu) else 2) * n * h + n * i) * act if full else 0
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


def step_peak(weights: int, gradients: int, optimizer: int, activations: int, transients: tuple[float, float],
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


def adapter_transients(sh: Shape, act: int) -> tuple[float, float]:
    """(forward, backward) bytes of an adapter method's largest short-lived tensors in a BERT-like
    classifier step, measured from the allocator's events (peak.py) on the CPU: the last block's
    MLP-wide update beside the base output, about 2i + h/2 per token forward, and the adapter
    path's input gradient beside the base's, 2i + 3h backward; with a half-precision base the
    forward temporaries are float32. LaMDA, DoRA, VeRA and PSOFT share these (methods/)."""
    n, h, i = sh.tokens, sh.hidden, sh.intermediate
    forward_bytes = ADAPTER_BYTES if act < 4 else act
    return (2 * i + h / 2) * n * forward_bytes, (2 * i + 3 * h) * n * act


def causal_transients(sh: Shape, act: int) -> tuple[float, float]:
    """(forward, backward) bytes of a causal LM step's largest short-lived tensors, for every
    method: the logits beside their float32 log-softmax in the forward (N x V), and in the
    backward the gradients of both (2 N x V float32, for half-precision models too). Measured
    from the allocator's events (peak.py); by far the largest transient of every causal LM here."""
    n, v = sh.tokens, sh.vocab
    return n * v * (act + (4 if act < 4 else 0)), 2 * n * v * 4


@dataclass(frozen=True)
class AdapterPath:
    """What an adapter path's kept activations are computed from (a method's kept_activations,
    methods/): the adapted matrices (MatrixInfo) and their ranks, N = tokens per step, act bytes
    per element of the base's activations, mask bytes per dropout-mask element, the adapter
    dropout, and whether attention is fused (its output is then the o-projection's input)."""

    matrices: list[MatrixInfo]
    ranks: dict[str, int]
    tokens: int
    act: int
    mask: int
    dropout: float
    fused_attention: bool

    def per_module(self, width) -> float:
        """Sum over the adapted matrices m of N x width(m, rank) float32 elements, in bytes."""
        return sum(self.tokens * width(m, self.ranks[m.name]) * ADAPTER_BYTES for m in self.matrices)

    def dropout_masks(self) -> float:
        """Bytes of the adapter dropout's masks on x (N x d_in per module; none when dropout is 0,
        none where x needs no gradient: the first block's attention input is the frozen embeddings')."""
        if self.dropout <= 0:
            return 0
        first_layer = min((m.layer for m in self.matrices if m.layer is not None), default=None)
        return sum(self.tokens * m.d_in * self.mask for m in self.matrices
                   if not (m.layer == first_layer and m.kind in ATTENTION_INPUT_KINDS))

    def distinct_inputs(self) -> float:
        """Bytes of the modules' inputs x kept once per distinct input (q/k/v share one, gate/up
        share one; o's is the attention output, kept by the fused attention already)."""
        inputs = {}
        for m in self.matrices:
            if m.kind == "o" and self.fused_attention:
                continue
            group = "attention" if m.kind in ATTENTION_INPUT_KINDS else "mlp" if m.kind in MLP_INPUT_KINDS else m.name
            inputs[(m.layer, group)] = self.tokens * m.d_in * self.act
        return sum(inputs.values())


def activations(sh: Shape, adapter_acts: float, act: int, mask: int, full: bool, on_gpu: bool, checkpointing: bool,
                causal: bool) -> tuple[float, float, int]:
    """(base activations, adapter activations, logits and loss) kept for backward, in bytes, from
    ``adapter_acts`` (what the method's path keeps, Method.kept_activations). Gradient
    checkpointing keeps each block's input, and one block's activations live again in backward.
    Logits: rows x (classes or vocab) fp32 log-softmax + int64 targets."""
    per_layer = [
        _layer_base(sh, act, mask, full, grad_in=full or layer > 0, on_gpu=on_gpu) for layer in range(sh.layers)
    ]
    if checkpointing:
        base = sh.layers * sh.tokens * sh.hidden * act + max(per_layer)
        adapter_acts = adapter_acts / max(1, sh.layers)
    else:
        base = sum(per_layer)
    base += _outside_layers(sh, act, mask, full, causal)
    rows = sh.tokens if causal else sh.batch  # log-softmax rows
    logits = rows * ((sh.vocab if causal else sh.num_labels) * 4 + 8) + 4
    return base, adapter_acts, logits


def math_attention(sh: Shape, on_gpu: bool) -> bool:
    """Whether SDPA takes the math path (s^2 tensors): with attention dropout on the CPU."""
    return sh.p_attention > 0 and not on_gpu
