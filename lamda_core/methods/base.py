"""Method: what every fine-tuning method's registry entry answers (one module per method family
beside this one: lamda.py, lora.py, peft_family.py, full.py).

An entry knows
- its defaults (rank, dropout, learning rates; the benchmark that chose each is cited next to
  it) and builds a run's adapter config from them (``adapter_config``);
- how it goes onto a model (``apply``, ``apply_for_checkpoint``), what a finished run saves and
  where (``save``, ``saved_folder``), how a saved run comes back (``load``), what the trainer
  does for it besides the optimizer step (``uses_task_gradients``, ``freezer``);
- its cost: trainable parameters per adapted matrix (``matrix_parameters``) and its terms in the
  memory model (costs/memory.py): what its path keeps for backward (``kept_activations``) and the
  short-lived tensors of a step (``transients``, ``weight_transient``);
- its role in matched comparisons (``rank_matched``) and whether it copies the task head
  (``copies_head``).
The base class has no memory terms: a method must say what it keeps (NotImplementedError)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..adapter.config import LamdaConfig
from ..errors import ConfigError


@dataclass(frozen=True)
class Method:
    """A fine-tuning method. Subclasses implement apply / merge_saved / matrix_parameters and the
    memory terms kept_activations / transients."""

    name: str
    summary: str
    default_rank: int
    default_dropout: float
    default_learning_rate: float
    default_head_learning_rate: float | None  # None: the method's rate
    saved_folder: str  # inside a run folder: "adapter", "peft" or "model" (RunFolder.saved)
    adapts_matrices: bool = True
    needs_rank_pattern: bool = False
    trains_all_weights: bool = False  # every weight trains: gradients and optimizer state for all
    copies_head: bool = False  # the task head trains as a copy beside the frozen one (PEFT's modules_to_save)
    rank_matched: bool = False  # compare: its rank is matched to LaMDA's budget (its own default, or parameters)
    display_rank: int = 1  # cost tables and figures: lower first (full 0, PEFT methods 1, LaMDA's 2)

    # ---- defaults -------------------------------------------------------------------------
    def adapter_config(self, rank: int | None = None, rank_pattern: dict | None = None, dropout: float | None = None,
                       alpha: float | None = None, **options) -> LamdaConfig:
        """The adapter config of a run of this method: the method's default rank and dropout where
        None, alpha = DEFAULT_SCALE x rank where None (LamdaConfig). LaMDA++ without a
        rank_pattern gets its ranks from the model's spectra where the model is known
        (with_ranks: TrainConfig, CostQuery, apply)."""
        return LamdaConfig(rank=rank or self.default_rank, rank_pattern=dict(rank_pattern or {}), alpha=alpha,
                           dropout=self.default_dropout if dropout is None else dropout, **options)

    def with_ranks(self, config: LamdaConfig, source) -> tuple[LamdaConfig, str | None]:
        """(config, note): a method that needs per-matrix ranks and was given none gets them from
        the spectra of ``source`` (a model or a source name) at its rank, said in the note;
        any other config comes back as it is, without a note."""
        if not self.needs_rank_pattern or config.rank_pattern:
            return config, None
        from dataclasses import replace

        from ..spectra.allocation import spectral_rank_pattern

        pattern = spectral_rank_pattern(source, config.rank, config.targets)
        note = (f"{self.name}: no per-matrix ranks given, so they were allocated from the spectra at LaMDA's total "
                f"rank {config.rank} x {len(pattern)} = {sum(pattern.values())} (ranks {min(pattern.values())} to "
                f"{max(pattern.values())}; `lamda allocate` or the Rank budget page choose others)")
        return replace(config, rank_pattern=pattern), note

    def check(self, config: LamdaConfig) -> None:
        """A ConfigError if ``config`` cannot describe a run of this method."""
        if self.needs_rank_pattern and not config.rank_pattern:
            raise ConfigError(f"{self.name} needs per-matrix ranks: adapter.rank_pattern (from allocate_ranks)")

    def check_matrices(self, matrices: list, ranks: dict[str, int]) -> None:
        """A ConfigError if this method cannot adapt ``matrices`` (MatrixInfo) at ``ranks``; the
        run's preflight, the cost estimate and apply call it."""

    def rates(self, learning_rate: float | None, core_rate: float | None, head_rate: float | None):
        """(adapter or body rate, rate of LaMDA's core S, task head rate) with defaults filled in."""
        rate = learning_rate or self.default_learning_rate
        return rate, core_rate or rate, head_rate or self.default_head_learning_rate or rate

    # ---- on a model -----------------------------------------------------------------------
    def apply(self, model, config: LamdaConfig, initialize: bool = True, gradients: dict | None = None):
        raise NotImplementedError

    def apply_for_checkpoint(self, model, config: LamdaConfig):
        """``model`` with this method applied, ready for a checkpoint's tensors to be restored
        (a method whose initialization the checkpoint overwrites may skip it)."""
        return self.apply(model, config)

    def uses_task_gradients(self, config: LamdaConfig) -> bool:
        """Whether apply's initialization needs the task's gradients (forward / backward passes first)."""
        return False

    def freezer(self, model, total_steps: int, completed_steps: int):
        """An object whose step(step) the trainer calls after each optimizer step, or None."""
        return None

    def save(self, model, folder: Path, source: str) -> None:
        """Write what a finished run keeps to ``folder / self.saved_folder`` (and any export); by
        default the model's own save_pretrained (a PEFT adapter, or the whole model)."""
        model.save_pretrained(str(folder / self.saved_folder))

    def load(self, folder: Path, source: str, task: str, **load_options):
        """(fine-tuned model, tokenizer) from a run folder's saved files: the base ``source``
        loaded (load_model with ``load_options``) with the saved adapter merged in."""
        from ..models.loading import load_model

        base, tokenizer = load_model(source, task=task, **load_options)
        return self.merge_saved(base, folder), tokenizer

    def merge_saved(self, base, folder: Path):
        """``base`` with the adapter saved in ``folder`` merged into its weights."""
        raise NotImplementedError

    # ---- costs ----------------------------------------------------------------------------
    def matrix_parameters(self, rank: int, d_in: int, d_out: int, total_steps: int, config: LamdaConfig):
        """costs.parameters.MatrixParameters of one adapted d_out x d_in matrix at ``rank``."""
        raise NotImplementedError

    def kept_activations(self, path) -> float:
        """Bytes the adapter path keeps for backward in one step (path: costs.memory.AdapterPath)."""
        raise NotImplementedError(f"method {self.name!r} must say what its path keeps for backward "
                                  "(kept_activations, costs/memory.py)")

    def transients(self, shape, act: int, dropout: float) -> tuple[float, float]:
        """(forward, backward) bytes of a classifier step's largest short-lived tensors beyond
        the kept activations (shape: costs.memory.Shape, act: bytes per activation element);
        a causal LM's logits dominate every method's and are counted apart."""
        raise NotImplementedError(f"method {self.name!r} must say what its step allocates for a moment "
                                  "(transients, costs/memory.py)")

    def weight_transient(self, matrices: list) -> float:
        """Bytes of a forward temporary built from the weights (not the tokens), if any."""
        return 0
