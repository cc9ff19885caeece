"""Measured training costs, to validate the estimate of costs.py component by component.

One real training step on the actual model:
  activations: every tensor autograd saves for backward during the forward pass, seen through
      ``torch.autograd.graph.saved_tensors_hooks``, each storage counted once, parameters and
      buffers excluded; attributed to the adapter path when saved inside a LaMDA path or a PEFT
      lora_A / lora_B / lora_dropout module, to "logits" when saved by the top-level model itself
      (the loss on the logits), to the base otherwise;
  weights, gradients, optimizer state: summed from the tensors themselves after the step;
  peak: what the allocator held at its highest point during the step (peak.py): on a GPU
      ``torch.cuda.max_memory_allocated``, on the CPU the allocation at the start plus the
      highest running sum of the profiler's allocation events; with the phase it happened in;
  rss_growth: the process's resident high-water mark during the step minus its resident size
      before (what the OS saw, allocator caches and fragmentation included).
The measured step is the second one: the first allocates the optimizer state, as in training.
With gradient checkpointing the census holds only what the forward keeps (block inputs); the
block recomputed during backward shows in the peak.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from ..adapter.inject import lamda_layers, trainable_parameters
from ..adapter.layer import LamdaLayer
from ..costs.memory import CostBreakdown, optimizer_for
from ..costs.parameters import average_lamda_parameters
from ..costs.peak import allocator_peak, resident_growth
from ..errors import ConfigError
from ..methods import adapt
from .query import CostQuery

ADAPTER_MODULE_MARKERS = (".lora_A.", ".lora_B.", ".lora_dropout.")


def _adapter_module_ids(model: nn.Module) -> set[int]:
    ids = set()
    for name, module in model.named_modules():
        if isinstance(module, LamdaLayer):
            ids.update({id(module), id(module.dropout)})
        elif any(marker in name + "." for marker in ADAPTER_MODULE_MARKERS):
            ids.add(id(module))
    return ids


class SavedTensorCensus:
    """Counts the bytes autograd saves for backward, by storage, per category."""

    def __init__(self, model: nn.Module):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # the task model (which computes the loss on the logits) and the PEFT wrappers around it
        self.top_ids = {id(model), id(base), id(getattr(model, "base_model", model))}
        self.adapter_ids = _adapter_module_ids(model)
        self.owned = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
        self.stack: list[nn.Module] = []
        self.bytes = {"base": 0, "adapter": 0, "logits": 0}
        self._seen: set[int] = set()

    def _category(self) -> str:
        if not self.stack or id(self.stack[-1]) in self.top_ids or isinstance(self.stack[-1], nn.modules.loss._Loss):
            return "logits"
        return "adapter" if id(self.stack[-1]) in self.adapter_ids else "base"

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in self.owned and pointer not in self._seen:
            self._seen.add(pointer)
            self.bytes[self._category()] += storage.nbytes()
        return tensor

    def __enter__(self):
        def push(module, args):
            self.stack.append(module)

        def pop(module, args, output):  # returns None: a forward hook's return value replaces the output
            self.stack.pop()

        self._handles = [nn.modules.module.register_module_forward_pre_hook(push),
                         nn.modules.module.register_module_forward_hook(pop)]
        self._saving = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._saving.__enter__()
        return self

    def __exit__(self, *exc):
        self._saving.__exit__(*exc)
        for handle in self._handles:
            handle.remove()


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            total += t.untyped_storage().nbytes()
    return total


def measure_costs(query: CostQuery) -> CostBreakdown:
    """Run one real training step (forward, backward, optimizer step) on random tokens and
    measure every component of CostBreakdown. query.source is anything load_model takes."""
    from ..costs.memory import validate_shape
    from ..models.loading import load_model

    method, batch_size, seq_len, device, task = query.method, query.batch_size, query.seq_len, query.device, query.task
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no GPU is available")
    model, _ = load_model(query.source, task=task, dtype=query.dtype, device=device,
                          **({"pooling": query.pooling} if task == "classification" else {}))
    validate_shape(model.config, batch_size, seq_len)
    if query.gradient_checkpointing:  # non-reentrant: works with a frozen embedding and adapters
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = adapt(model, method, query.adapter_config())
    model.train()
    generator = torch.Generator().manual_seed(query.seed)
    vocab = model.config.vocab_size
    input_ids = torch.randint(min(1000, vocab // 2), vocab, (batch_size, seq_len), generator=generator).to(device)
    labels = input_ids if task == "causal-lm" else (torch.arange(batch_size) % model.config.num_labels).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer_for(query.optimizer, trainable)
    model(input_ids=input_ids, labels=labels).loss.backward()  # a warm-up step: the optimizer state exists,
    opt.step()                                                  # as in every step after the first
    opt.zero_grad(set_to_none=True)
    state = _tensor_bytes(t for s in opt.state.values() for t in s.values())
    weights = _tensor_bytes(model.parameters())
    at_start = weights + state + _tensor_bytes([input_ids, labels])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with resident_growth() as rss, profile(activities=activities, profile_memory=True) as profiler:
        with record_function("forward"), SavedTensorCensus(model) as census:
            loss = model(input_ids=input_ids, labels=labels).loss
        with record_function("backward"):
            loss.backward()
        gradients = _tensor_bytes(p.grad for p in trainable if p.grad is not None)
        with record_function("optimizer step"):
            opt.step()
    step_peak = allocator_peak(profiler, "cuda" if device.startswith("cuda") else "cpu")
    count = trainable_parameters(model)
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else at_start + step_peak.extra
    # after B freezes and over the schedule: counted on the built layers (the step runs unfrozen)
    layers = lamda_layers(model).values()
    b_columns = sum(layer.lamda_B.numel() for layer in layers)
    adapter = query.adapter_config()
    average = sum(average_lamda_parameters(layer.rank, layer.d_out, query.total_steps, adapter.freeze_fraction,
                                           adapter.freeze_rule) for layer in layers)
    adapter_average = average if layers else count.adapter
    return CostBreakdown(
        method=method, weights=weights, gradients=gradients, optimizer=state,
        activations_base=census.bytes["base"], activations_adapter=census.bytes["adapter"],
        logits=census.bytes["logits"], trainable_start=count.trainable, trainable_end=count.trainable - b_columns,
        trainable_average=float(count.trainable - count.adapter + adapter_average), adapter_start=count.adapter,
        adapter_end=count.adapter - b_columns, peak=peak, peak_phase=step_peak.phase, rss_growth=rss["bytes"])
