"""The training entry point: ``python -m lamda_core.training.trainer RUN_FOLDER``, also under
``accelerate launch --num_processes N -m lamda_core.training.trainer RUN_FOLDER``.

build: data, model, adapter (from the run's TrainConfig), batches, optimizer, schedule, freezer,
and the last checkpoint if there is one. train: the loop, one JSON line per optimizer step.
evaluate: validation loss and accuracy / macro F1 (classification) or perplexity (causal LM).

Resumable by construction: micro-batch m is a pure function of (seed, m) (batches.py), and a
checkpoint holds everything that moves (checkpoint.py); on resume the metrics lines after the
checkpoint are dropped so no step is counted twice.
"""
from __future__ import annotations

import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from ..data.chat import ChatData, pad_batch
from ..errors import LamdaError
from ..runs.folder import RunFolder, StoppedWhileQueued, TrainingSlot

DEFAULT_EPOCHS = 3


class NonFiniteLoss(LamdaError):
    """The loss became NaN or infinite."""


class Trainer:
    def __init__(self, folder: Path):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.run = RunFolder(folder)
        self.config = self.run.config
        # B leaves the graph when it freezes: DDP must tolerate parameters without gradients
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        self.main = self.accelerator.is_main_process
        self.started = time.time()
        self.startup_origin = self.started  # run(): when Start was pressed, less the time queued behind other runs
        self.first_step_at = None  # when this session's first optimizer step finished
        self.train_tokens, self.train_seconds = 0, 0.0  # tokens fed to the model, and the steps' own time

    # ---- set-up ---------------------------------------------------------------------------
    def build(self) -> None:
        from ..adapter.inject import head_module_names
        from ..methods import adapt
        from ..runs.checkpoint import restore_model, restore_optimizer
        from .batches import Batches
        from .optim import lr_lambda, parameter_groups

        c = self.config
        torch.manual_seed(c.seed)
        model, size, lengths = self.load_data_and_model()
        heads = head_module_names(model, c.adapter.trainable_modules)
        world = self.accelerator.num_processes
        per_step = c.batch_size * c.grad_accumulation * world
        self.total_steps = c.max_steps or max(1, math.ceil((c.epochs or DEFAULT_EPOCHS) * size / per_step))
        self.batches = Batches(size, c.batch_size, world, self.accelerator.process_index, c.seed, lengths)

        checkpoint = self.run.resume_checkpoint()
        # the gradient init costs forward / backward passes: a resumed run takes A, S, B from its checkpoint
        method = c.method_spec
        from_gradient = method.uses_task_gradients(c.adapter)
        gradients = None
        if from_gradient and not checkpoint:
            gradients = self.task_gradients(model, Batches(size, c.batch_size, 1, 0, c.seed, lengths))
        torch.manual_seed(c.seed)
        if from_gradient and checkpoint:
            self.model = method.apply_for_checkpoint(model, c.adapter)
        else:
            self.model = adapt(model, c.method, c.adapter, gradients=gradients)

        state = restore_model(checkpoint, self.model) if checkpoint else {"step": 0, "freezer_steps": 0}
        self.step = state["step"]
        if self.step and self.main:
            self.run.truncate_metrics(self.step)
        # fused: one kernel for every tensor (on the CPU about 10x faster than the per-tensor loop)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, heads, *c.rates()), weight_decay=c.weight_decay,
                                           fused=self.accelerator.device.type in ("cpu", "cuda"))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(c.lr_schedule, self.total_steps, c.warmup_fraction))
        if self.step:
            restore_optimizer(checkpoint, self.optimizer, self.scheduler)
        self.freezer = method.freezer(self.model, self.total_steps, state["freezer_steps"])
        self.wrapped, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.count_trainable()

    def count_trainable(self) -> None:
        """The trainable parameters (clipped each step) and their count (each metrics line), taken
        again only when the freezer drops one: walking the model every step cost ~3% of a MiniLM step."""
        from ..adapter.inject import trainable_parameters

        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.parameter_count = trainable_parameters(self.model)

    def load_data_and_model(self) -> tuple:
        """(base model, training examples, their lengths for length-grouped batches or None);
        sets self.data and self.tokenizer. Classification rows, conversations (chat_data: the
        loss on the answers, padded per batch) or blocks of plain text; notes are printed."""
        from ..data.chat import is_chat_file, load_chat
        from ..data.reading import load_classification, load_language_model, resolve_dataset
        from ..models.loading import load_model

        c = self.config
        if c.task == "classification":
            self.data = load_classification(c.train_data, c.validation_data, c.text_column, c.label_column, c.seed)
            model, self.tokenizer = load_model(c.source, task="classification", num_labels=len(self.data.label_names),
                                               dtype=c.dtype, pooling=c.pooling)
            model.config.id2label = dict(enumerate(self.data.label_names))
            model.config.label2id = {n: i for i, n in enumerate(self.data.label_names)}
            texts = self.data.train_texts
            size, lengths = len(texts), [len(text) for text in texts]
        else:
            model, self.tokenizer = load_model(c.source, task="causal-lm", dtype=c.dtype)
            if self.tokenizer is None:
                raise LamdaError(f"{c.source} has no tokenizer; training needs one")
            train_path, validation_path = resolve_dataset(c.train_data, c.validation_data)
            if not is_chat_file(train_path):  # blocks all have seq_len tokens: nothing to group
                self.data = load_language_model(c.train_data, self.tokenizer, c.seq_len, c.validation_data, c.seed)
                return model, len(self.data.train_blocks), None
            self.data = load_chat(train_path, self.tokenizer, c.seq_len, validation_path, c.seed)
            size, lengths = len(self.data.train), [len(e.input_ids) for e in self.data.train]
        for note in self.data.notes:
            print(f"note: {note}", flush=True)
        return model, size, lengths if c.group_by_length else None

    def task_gradients(self, model, batches) -> dict:
        """dL/dW of every target over the first GRADIENT_BATCHES micro-batches of one process's
        stream, the same on every process (the ``gradient`` init, adapter/gradient_init.py)."""
        from ..adapter.gradient_init import DEFAULT_GRADIENT_BATCHES, estimate_gradients

        model.to(self.accelerator.device)
        micro = (self.micro_batch(i, batches) for i in range(DEFAULT_GRADIENT_BATCHES))
        return estimate_gradients(model, self.config.adapter.targets, micro)

    def save_checkpoint(self) -> None:
        from ..runs.checkpoint import write_checkpoint

        self.accelerator.wait_for_everyone()
        if self.main:
            state = {"step": self.step, "freezer_steps": self.freezer.completed_steps if self.freezer else 0,
                     "freeze_rule": self.config.adapter.freeze_rule, "config_digest": self.run.config_digest()}
            self.run.save_checkpoint(self.step, lambda folder: write_checkpoint(
                folder, self.model, self.optimizer, self.scheduler, state))
        self.accelerator.wait_for_everyone()

    # ---- data -----------------------------------------------------------------------------
    def micro_batch(self, index: int, batches=None) -> dict:
        rows = (batches or self.batches).indices(index)
        device = self.accelerator.device
        if self.config.task == "classification":
            encoded = self.tokenizer([self.data.train_texts[i] for i in rows], padding=True, truncation=True,
                                     max_length=self.config.seq_len, return_tensors="pt")
            encoded["labels"] = torch.tensor([self.data.train_labels[i] for i in rows])
            return {k: v.to(device) for k, v in encoded.items()}
        if isinstance(self.data, ChatData):
            batch = pad_batch([self.data.train[i] for i in rows], self.tokenizer.pad_token_id)
            return {k: v.to(device) for k, v in batch.items()}
        ids = self.data.train_blocks[rows]
        return {"input_ids": ids.to(device), "labels": ids.to(device)}

    # ---- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Validation loss and accuracy / macro F1, or perplexity, through inference.py's passes
        (the ones ``lamda evaluate`` and the app use)."""
        from .metrics import accuracy, macro_f1
        from .passes import answer_loss, classification_logits, language_model_loss, perplexity

        c = self.config
        if c.task == "classification":
            labels = self.data.validation_labels
            logits = classification_logits(self.model, self.tokenizer, self.data.validation_texts, c.seq_len)
            predictions = logits.argmax(-1).tolist()
            loss = float(torch.nn.functional.cross_entropy(logits, torch.tensor(labels)))
            return {"eval_loss": loss, "eval_accuracy": accuracy(predictions, labels),
                    "eval_f1": macro_f1(predictions, labels, len(self.data.label_names)), "eval_examples": len(labels)}
        if isinstance(self.data, ChatData):
            loss = answer_loss(self.model, self.data.validation, self.tokenizer.pad_token_id)
        else:
            loss = language_model_loss(self.model, self.data.validation_blocks)
        return {"eval_loss": loss, "eval_perplexity": perplexity(loss)}

    # ---- the loop -------------------------------------------------------------------------
    def _agree(self, flag: bool) -> bool:
        """The main process's decision, shared with every process."""
        if self.accelerator.num_processes == 1:
            return flag
        from accelerate.utils import broadcast_object_list

        return bool(broadcast_object_list([flag])[0])

    def train(self) -> str:
        from tqdm import tqdm

        c, model = self.config, self.wrapped
        model.train()
        first_step, session_start = self.step, time.time()
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training", unit="step",
                   disable=not self.main, file=sys.stderr, mininterval=0.5)
        if self.main:
            self.run.write_status("running", step=self.step, total_steps=self.total_steps, pid=os.getpid(),
                                  started=time.time())
        while self.step < self.total_steps:
            if self._agree(self.main and self.run.stop_requested()):
                self.save_checkpoint()
                bar.close()
                return "stopped"
            total_loss, step_began = 0.0, time.time()
            for micro in range(c.grad_accumulation):
                index = self.step * c.grad_accumulation + micro
                batch = self.micro_batch(index)
                self.train_tokens += tokens_in(batch) * self.accelerator.num_processes
                with self.accelerator.no_sync(model) if micro < c.grad_accumulation - 1 else nullcontext():
                    loss = model(**batch).loss / c.grad_accumulation
                    self.accelerator.backward(loss)
                total_loss += float(loss.detach())
            loss_value = float(self.accelerator.reduce(torch.tensor(total_loss, device=self.accelerator.device),
                                                       reduction="mean"))
            if not math.isfinite(loss_value):
                raise NonFiniteLoss(f"the loss became {loss_value} at step {self.step + 1}")
            if c.max_grad_norm:
                self.accelerator.clip_grad_norm_(self.trainable, c.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.freezer is not None and self.freezer.step(self.optimizer):
                self.count_trainable()
            self.train_seconds += time.time() - step_began
            self.first_step_at = self.first_step_at or time.time()
            self.step += 1
            row = self.metrics_row(loss_value, (time.time() - session_start) / (self.step - first_step))
            if self.step % c.eval_interval == 0 or self.step == self.total_steps:
                row.update(self.evaluate() if self.main else {})
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if self.main:
                self.run.append_metrics(row)
                self.run.write_status("running", step=self.step)
            if self.step % c.checkpoint_interval == 0 and self.step < self.total_steps:
                self.save_checkpoint()
        bar.close()
        self.finish()
        return "finished"

    def speed(self) -> dict:
        """startup_seconds: from Start (or the process's start) to this session's first optimizer
        step, the time queued behind other runs left out; tokens_per_second: the tokens trained on
        over the steps' own time (training_seconds: evaluation and checkpoints left out)."""
        if self.first_step_at is None:
            return {}
        return {"startup_seconds": round(self.first_step_at - self.startup_origin, 3),
                "tokens_per_second": round(self.train_tokens / max(self.train_seconds, 1e-9), 1),
                "training_seconds": round(self.train_seconds, 3)}

    def metrics_row(self, loss: float, seconds_per_step: float) -> dict:
        """metrics.jsonl's line for the step just taken (evaluation results are added to it)."""
        count = self.parameter_count
        return {"step": self.step, "epoch": round(self.batches.epoch(self.step * self.config.grad_accumulation), 4),
                "loss": loss, "learning_rate": self.scheduler.get_last_lr()[0],
                "trainable_parameters": count.trainable, "adapter_parameters": count.adapter,
                "elapsed": round(time.time() - self.started, 3),
                "remaining": round(seconds_per_step * (self.total_steps - self.step), 3)}

    def finish(self) -> None:
        """What the method saves (its registry entry: adapter, PEFT export or the whole model) and
        summary.json."""
        from ..adapter.inject import trainable_parameters

        self.accelerator.wait_for_everyone()
        if not self.main:
            return
        c, folder = self.config, self.run.path
        c.method_spec.save(self.model, folder, c.source)
        count = trainable_parameters(self.model)
        summary = {"method": c.method, "steps": self.step, "elapsed": round(time.time() - self.started, 3),
                   "trainable_parameters_end": count.trainable, "adapter_parameters_end": count.adapter,
                   **peak_memory(self.accelerator.device), **self.speed(), **self.run.last_eval()}
        if c.task == "classification":
            summary["labels"] = self.data.label_names
        self.run.write_summary(summary)


def tokens_in(batch: dict) -> int:
    """The tokens of one micro-batch the model reads (padding left out where a mask says so)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


def process_start_time() -> float:
    """When this process started (a foreground run's launch), in time.time() seconds."""
    import psutil

    return psutil.Process().create_time()


def peak_memory(device: torch.device) -> dict:
    """The trainer's peak memory so far, in MiB: on a GPU the allocator's high-water mark
    (torch.cuda.max_memory_allocated), else this process's own peak resident set (VmHWM of
    /proc/self/status, which starts afresh at exec; ru_maxrss would carry the launching process's
    peak over, e.g. the app server's), which also counts loading, initialization and evaluation."""
    if device.type == "cuda":
        return {"peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1),
                "peak_memory_kind": "cuda allocator"}
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):  # "VmHWM:   123456 kB"
                return {"peak_memory_mib": round(int(line.split()[1]) / 1024, 1), "peak_memory_kind": "process RSS"}
    import resource

    return {"peak_memory_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_memory_kind": "process RSS"}


def run(folder: str | Path, launched: float | None = None) -> str:
    """Train a run folder to the end (or a stop request); returns the final state. ``launched``:
    when Start was pressed (RunFolder.start records it; None: this process's start)."""
    run_folder = RunFolder(Path(folder).resolve())
    launched = launched or process_start_time()
    if os.environ.get("LOCAL_RANK", "0") == "0":
        run_folder.resume_checkpoint()  # a finished run or an untrustworthy checkpoint: RunError, status kept
    trainer = None
    try:
        if os.environ.get("LOCAL_RANK", "0") == "0":
            run_folder.write_status("queued", pid=os.getpid())
        waiting = time.time()
        with TrainingSlot(run_folder.path) if int(os.environ.get("WORLD_SIZE", "1")) == 1 else nullcontext():
            trainer = Trainer(run_folder.path)
            trainer.startup_origin = launched + (time.time() - waiting)
            trainer.build()
            state = trainer.train()
        if trainer.main:
            reason = (f"stopped on request at step {trainer.step} of {trainer.total_steps}; its checkpoint is kept "
                      "and Resume (or `lamda resume`) continues from it") if state == "stopped" else None
            run_folder.write_status(state, step=trainer.step, reason=reason)
        return state
    except StoppedWhileQueued as error:
        run_folder.write_status("stopped", reason=str(error))
        return "stopped"
    except NonFiniteLoss as error:
        checkpoints = run_folder.checkpoints()
        last = checkpoints[-1].name if checkpoints else "none"
        run_folder.write_status("failed", reason=f"{error}; the last good checkpoint ({last}) is kept")
        return "failed"
    except (LamdaError, OSError, ValueError, RuntimeError) as error:
        run_folder.write_status("failed", reason=f"{type(error).__name__}: {error}")
        return "failed"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m lamda_core.training.trainer RUN_FOLDER", file=sys.stderr)
        return 2
    try:
        state = run(argv[0], RunFolder(argv[0]).status().get("launched"))  # started by RunFolder.start
    except LamdaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if state in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
