"""PMB freezing inside ``transformers.Trainer``. Its own module because importing
transformers' Trainer machinery also imports PEFT and several model families (about 4 s), which
no other part of lamda_core needs: ``lamda_core.LamdaFreezeCallback`` loads it on first use."""
from transformers import TrainerCallback

from .freezing import PMBFreezer


class LamdaFreezeCallback(TrainerCallback):
    """Runs a PMBFreezer inside ``transformers.Trainer`` (T = state.max_steps)."""

    def __init__(self, fraction: float | None = None, rule: str | None = None):
        self.fraction, self.rule, self.freezer = fraction, rule, None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.freezer = PMBFreezer(model, state.max_steps, self.fraction, self.rule,
                                  completed_steps=state.global_step)

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.freezer.step(optimizer)
