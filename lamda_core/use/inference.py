"""Using a run's model: the one loader of a finished or stopped run for inference (any method,
its pooling and label names), generation and chat (streamed); the forward passes it shares with
training's evaluation are in training/passes.py."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import RunError
from ..runs.folder import RunFolder
from ..training.passes import classification_logits


@dataclass
class RunModel:
    """A run's model ready for inference. label_names: the classes in logit order (None for a
    causal LM); state / step: what it was loaded from (a finished run's saved files, or a stopped
    run's last checkpoint)."""

    name: str
    task: str
    model: nn.Module
    tokenizer: object
    label_names: list[str] | None
    seq_len: int
    state: str
    step: int

    def probabilities(self, texts: list[str], progress=None) -> torch.Tensor:
        """(len(texts), K) softmax of the classifier's logits."""
        if self.task != "classification":
            raise RunError(f"{self.name} is a {self.task} run; it predicts no labels (use generate)")
        return classification_logits(self.model, self.tokenizer, texts, self.seq_len, progress=progress).softmax(-1)

    @property
    def chat(self) -> bool:
        """Whether prompts go through the tokenizer's chat template (an instruct model)."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def _generation(self, prompt: str, max_new_tokens: int, temperature: float, top_p: float, seed: int,
                    raw: bool) -> dict:
        """generate()'s arguments: the prompt as a user turn of the chat template (unless ``raw``
        or the tokenizer has none), greedy at temperature 0, else sampled with top-p."""
        if self.task != "causal-lm":
            raise RunError(f"{self.name} is a {self.task} run; only a causal-lm run generates text")
        torch.manual_seed(seed)
        if self.chat and not raw:
            from ..data.chat import render_prompt

            prompt = render_prompt(self.tokenizer, [{"role": "user", "content": prompt}])
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=not (self.chat and not raw))
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
        )
        return {**encoded, "max_new_tokens": max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id, **sampling}

    def generate(self, prompt: str, max_new_tokens: int = 40, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, raw: bool = False) -> str:
        """The model's answer to ``prompt`` (chat template for an instruct model unless ``raw``:
        then the plain continuation)."""
        return "".join(self.stream(prompt, max_new_tokens, temperature, top_p, seed, raw))

    def stream(self, prompt: str, max_new_tokens: int = 40, temperature: float = 0.0, top_p: float = 1.0,
               seed: int = 0, raw: bool = False):
        """generate() piece by piece as tokens come (a TextIteratorStreamer fed by a thread)."""
        import threading

        from transformers import TextIteratorStreamer

        arguments = self._generation(prompt, max_new_tokens, temperature, top_p, seed, raw)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.model.eval()

        def work():
            with torch.no_grad():
                self.model.generate(**arguments, streamer=streamer)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        yield from streamer
        thread.join()


def load_run(folder: str | Path) -> RunModel:
    """A finished run through its method's registry entry (methods/: the saved adapter merged
    into the base, or the whole saved model), or a stopped / failed run from its last checkpoint
    (the base with the method applied and the checkpoint's tensors restored). RunError for a run
    with nothing trained yet."""
    from .export import fine_tuned_model

    run = RunFolder(folder)
    config, status = run.config, run.status()
    if status["state"] == "finished":
        model, tokenizer = fine_tuned_model(run.path)
        labels = (run.summary() or {}).get("labels")
        return RunModel(run.name, config.task, model.eval(), tokenizer, labels, config.seq_len, "finished",
                        status.get("step") or 0)
    checkpoints = run.checkpoints()
    if status["state"] in ("queued", "running", "stopping") and run.is_live() or not checkpoints:
        raise RunError(f"{run.name} is {status['state']} with "
                       + (f"checkpoint {checkpoints[-1].name}" if checkpoints else "no checkpoint yet")
                       + "; a run can be used once it has finished or stopped with a checkpoint")
    return _from_checkpoint(run, checkpoints[-1])


def _from_checkpoint(run: RunFolder, checkpoint: Path) -> RunModel:
    from ..data.reading import load_classification
    from ..models.loading import load_model
    from ..runs.checkpoint import restore_model

    config = run.config
    labels, options = None, {}
    if config.task == "classification":
        labels = load_classification(config.train_data, config.validation_data, config.text_column,
                                     config.label_column, config.seed).label_names
        options = {"num_labels": len(labels), "pooling": config.pooling}
    model, tokenizer = load_model(config.source, task=config.task, dtype=config.dtype, **options)
    rng = torch.get_rng_state()
    model = config.method_spec.apply_for_checkpoint(model, config.adapter)
    state = restore_model(checkpoint, model)
    torch.set_rng_state(rng)  # restore_model also sets the trainer's RNG; inference keeps the caller's
    return RunModel(run.name, config.task, model.eval(), tokenizer, labels, config.seq_len, "stopped", state["step"])


def load_base(folder: str | Path) -> RunModel:
    """The run's base model before fine-tuning (a causal LM's reference for perplexity and
    generation; a classifier's base has an untrained head, so it is not offered)."""
    from ..models.loading import load_model

    run = RunFolder(folder)
    config = run.config
    if config.task != "causal-lm":
        raise RunError("only a causal-lm run's base model is meaningful on its own (a classifier's head is untrained)")
    model, tokenizer = load_model(config.source, task="causal-lm", dtype=config.dtype)
    return RunModel(f"{config.source} (base)", "causal-lm", model.eval(), tokenizer, None, config.seq_len, "base", 0)
