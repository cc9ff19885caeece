"""The training entry point: ``python -m lamda_core.trainer RUN_FOLDER``, also under
``accelerate launch --num_processes N -m lamda_core.trainer RUN_FOLDER``.

Resumable by construction: the sample order is a pure function of (seed, epoch), so optimizer
step t always sees the same micro-batches; a checkpoint holds the trainable tensors, LaMDA's
buffers (frozen column counts), the optimizer, the scheduler, the freezer's step and the RNG
state; on resume, metrics lines after the checkpoint are dropped so no step is counted twice.
"""
from __future__ import annotations

import json
import math
from contextlib import nullcontext
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from .errors import LamdaError
from .runs import TrainConfig, TrainingSlot, read_config, stop_requested, write_status

DEFAULT_LEARNING_RATES = {"lamda": 1e-2, "lamda++": 1e-2, "lora": 2e-3, "full": 1e-4}
DEFAULT_EPOCHS = 3
KEEP_CHECKPOINTS = 2


class NonFiniteLoss(LamdaError):
    """The loss became NaN or infinite."""


def learning_rate(config: TrainConfig) -> float:
    return config.learning_rate if config.learning_rate is not None else DEFAULT_LEARNING_RATES[config.method]


def lr_lambda(schedule: str, total_steps: int, warmup_fraction: float):
    warmup = int(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        if schedule == "linear":
            return max(0.0, 1 - progress)
        return 1.0
    return factor


class Batches:
    """Deterministic micro-batches: sample k of the stream is permutation_(k // n)[k % n], with a
    permutation per epoch seeded by (seed, epoch). Micro-batch m of process p holds stream
    positions m * batch * world + p * batch + (0..batch-1)."""

    def __init__(self, size: int, batch: int, world: int, rank: int, seed: int):
        self.size, self.batch, self.world, self.rank, self.seed = size, batch, world, rank, seed
        self._permutations: dict[int, torch.Tensor] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._permutations:
            self._permutations[epoch] = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        return self._permutations[epoch]

    def indices(self, micro_batch: int) -> list[int]:
        start = micro_batch * self.batch * self.world + self.rank * self.batch
        return [int(self._permutation(k // self.size)[k % self.size]) for k in range(start, start + self.batch)]

    def epoch(self, micro_batch: int) -> float:
        return micro_batch * self.batch * self.world / self.size


def trainable_state(model) -> dict[str, torch.Tensor]:
    """What a checkpoint must hold: trainable parameters and every LaMDA tensor and buffer."""
    state = {}
    for name, tensor in model.state_dict().items():
        if "lamda_" in name or "frozen_columns" in name:
            state[name] = tensor
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            state[name] = parameter.detach()
    return {k: v.contiguous().cpu() for k, v in state.items()}


class Trainer:
    def __init__(self, folder: Path):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.folder = folder
        self.config = read_config(folder)
        # B leaves the graph when it freezes: DDP must tolerate parameters without gradients
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        self.main = self.accelerator.is_main_process
        self.started = time.time()

    # ---- set-up ---------------------------------------------------------------------------
    def build(self) -> None:
        from .config import LamdaConfig
        from .costs import adapter_config
        from .data import load_classification, load_language_model
        from .freezing import PMBFreezer
        from .inject import adapt
        from .loading import load_model

        c = self.config
        torch.manual_seed(c.seed)
        if c.task == "classification":
            self.data = load_classification(c.train_data, c.validation_data, c.text_column, c.label_column, c.seed)
            model, self.tokenizer = load_model(c.source, task="classification", num_labels=len(self.data.label_names),
                                               dtype=c.dtype)
            model.config.id2label = dict(enumerate(self.data.label_names))
            model.config.label2id = {n: i for i, n in enumerate(self.data.label_names)}
            size = len(self.data.train_texts)
        else:
            model, self.tokenizer = load_model(c.source, task="causal-lm", dtype=c.dtype)
            if self.tokenizer is None:
                raise LamdaError(f"{c.source} has no tokenizer; training needs one")
            self.data = load_language_model(c.train_data, self.tokenizer, c.seq_len, c.validation_data, c.seed)
            size = len(self.data.train_blocks)
        rank_pattern = None
        if c.ranks_file:
            from .allocation import Allocation

            rank_pattern = Allocation.from_json(c.ranks_file).rank_pattern
        lamda = adapter_config(c.method, c.rank, rank_pattern, c.dropout if c.dropout is not None
                               else (0.05 if c.method == "lora" else 0.0))
        lamda = LamdaConfig(**{**lamda.to_dict(), "alpha": c.alpha, "init": c.init,
                               "freeze_fraction": c.freeze_fraction, "freeze_rule": c.freeze_rule})
        torch.manual_seed(c.seed)
        self.model = adapt(model, c.method, lamda)
        world = self.accelerator.num_processes
        per_step = c.batch_size * c.grad_accumulation * world
        self.total_steps = c.max_steps or max(1, math.ceil((c.epochs or DEFAULT_EPOCHS) * size / per_step))
        self.batches = Batches(size, c.batch_size, world, self.accelerator.process_index, c.seed)
        self.step = 0
        self.freezer_steps = 0
        self._restore_checkpoint()
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(parameters, lr=learning_rate(c), weight_decay=c.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(c.lr_schedule, self.total_steps, c.warmup_fraction))
        if self.step:
            self.optimizer.load_state_dict(torch.load(self._latest / "optimizer.pt", weights_only=True))
            self.scheduler.load_state_dict(torch.load(self._latest / "scheduler.pt", weights_only=True))
        self.freezer = None
        if c.method in ("lamda", "lamda++"):
            self.freezer = PMBFreezer(self.model, self.total_steps, completed_steps=self.freezer_steps)
        self.wrapped, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)

    # ---- checkpoints ----------------------------------------------------------------------
    def _checkpoints(self) -> list[Path]:
        folder = self.folder / "checkpoints"
        return sorted(folder.glob("step-*")) if folder.is_dir() else []

    def _restore_checkpoint(self) -> None:
        from safetensors.torch import load_file

        checkpoints = self._checkpoints()
        if not checkpoints:
            return
        self._latest = checkpoints[-1]
        state = json.loads((self._latest / "trainer_state.json").read_text())
        tensors = load_file(str(self._latest / "trainable.safetensors"))
        parameters = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in tensors.items():
                if name in parameters:
                    parameters[name].copy_(value)
                    continue
                owner, _, attribute = name.rpartition(".")
                module = self.model.get_submodule(owner)
                if attribute == "lamda_B0S0":  # empty unless svd-residual: take its saved shape
                    setattr(module, attribute, value.to(module.lamda_A.device))
                else:
                    getattr(module, attribute).copy_(value)
        from .inject import lamda_layers

        for layer in lamda_layers(self.model).values():
            if int(layer.frozen_columns) == layer.rank and state.get("freeze_rule", "linear") == "linear":
                layer.lamda_B.requires_grad_(False)
        self.step = state["step"]
        self.freezer_steps = state["freezer_steps"]
        torch.set_rng_state(torch.load(self._latest / "rng.pt", weights_only=True))
        if self.main:  # drop metrics written after this checkpoint: those steps run again
            from .runs import read_metrics

            kept = [row for row in read_metrics(self.folder) if row["step"] <= self.step]
            (self.folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))

    def save_checkpoint(self) -> None:
        from safetensors.torch import save_file

        self.accelerator.wait_for_everyone()
        if self.main:
            root = self.folder / "checkpoints"
            root.mkdir(exist_ok=True)
            final = root / f"step-{self.step:06d}"
            staging = root / f".step-{self.step:06d}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            save_file(trainable_state(self.model), str(staging / "trainable.safetensors"))
            torch.save(self.optimizer.optimizer.state_dict() if hasattr(self.optimizer, "optimizer")
                       else self.optimizer.state_dict(), staging / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), staging / "scheduler.pt")
            torch.save(torch.get_rng_state(), staging / "rng.pt")
            (staging / "trainer_state.json").write_text(json.dumps(
                {"step": self.step, "freezer_steps": self.freezer.completed_steps if self.freezer else 0,
                 "freeze_rule": self.config.freeze_rule}))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
            for old in self._checkpoints()[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    # ---- data -----------------------------------------------------------------------------
    def micro_batch(self, index: int) -> dict:
        rows = self.batches.indices(index)
        device = self.accelerator.device
        if self.config.task == "classification":
            encoded = self.tokenizer([self.data.train_texts[i] for i in rows], padding=True, truncation=True,
                                     max_length=self.config.seq_len, return_tensors="pt")
            encoded["labels"] = torch.tensor([self.data.train_labels[i] for i in rows])
            return {k: v.to(device) for k, v in encoded.items()}
        ids = self.data.train_blocks[rows]
        return {"input_ids": ids.to(device), "labels": ids.to(device)}

    # ---- evaluation -----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        model, c = self.model, self.config
        model.eval()
        losses, predictions = [], []
        if c.task == "classification":
            texts, labels = self.data.validation_texts, self.data.validation_labels
            for start in range(0, len(texts), 64):
                encoded = self.tokenizer(texts[start:start + 64], padding=True, truncation=True,
                                         max_length=c.seq_len, return_tensors="pt").to(self.accelerator.device)
                target = torch.tensor(labels[start:start + 64], device=self.accelerator.device)
                out = model(**encoded, labels=target)
                losses.append(float(out.loss) * len(target))
                predictions += out.logits.argmax(-1).tolist()
            model.train()
            return {"eval_loss": sum(losses) / len(labels), "eval_accuracy": accuracy(predictions, labels),
                    "eval_f1": macro_f1(predictions, labels, len(self.data.label_names))}
        blocks = self.data.validation_blocks.to(self.accelerator.device)
        for start in range(0, len(blocks), 16):
            chunk = blocks[start:start + 16]
            losses.append(float(model(input_ids=chunk, labels=chunk).loss) * len(chunk))
        model.train()
        loss = sum(losses) / len(blocks)
        return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50))}

    # ---- the loop -------------------------------------------------------------------------
    def _log(self, row: dict) -> None:
        if self.main:
            with open(self.folder / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(row) + "\n")

    def _agree(self, flag: bool) -> bool:
        """The main process's decision, shared with every process."""
        if self.accelerator.num_processes == 1:
            return flag
        from accelerate.utils import broadcast_object_list

        return bool(broadcast_object_list([flag])[0])

    def train(self) -> str:
        from tqdm import tqdm

        from .inject import trainable_parameters

        c, model = self.config, self.wrapped
        model.train()
        first_step, session_start = self.step, time.time()
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training", unit="step",
                   disable=not self.main, file=sys.stderr, mininterval=0.5)
        if self.main:
            write_status(self.folder, "running", step=self.step, total_steps=self.total_steps, pid=os.getpid(),
                         started=time.time())
        while self.step < self.total_steps:
            if self._agree(self.main and stop_requested(self.folder)):
                self.save_checkpoint()
                bar.close()
                return "stopped"
            total_loss = 0.0
            for micro in range(c.grad_accumulation):
                index = self.step * c.grad_accumulation + micro
                with self.accelerator.no_sync(model) if micro < c.grad_accumulation - 1 else nullcontext():
                    loss = model(**self.micro_batch(index)).loss / c.grad_accumulation
                    self.accelerator.backward(loss)
                total_loss += float(loss.detach())
            loss_value = float(self.accelerator.reduce(torch.tensor(total_loss, device=self.accelerator.device),
                                                       reduction="mean"))
            if not math.isfinite(loss_value):
                raise NonFiniteLoss(f"the loss became {loss_value} at step {self.step + 1}")
            if c.max_grad_norm:
                self.accelerator.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                                 c.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.freezer is not None:
                self.freezer.step(self.optimizer)
            self.step += 1
            count = trainable_parameters(self.model)
            elapsed = time.time() - self.started
            per_step = (time.time() - session_start) / (self.step - first_step)
            row = {"step": self.step, "epoch": round(self.batches.epoch((self.step) * c.grad_accumulation), 4),
                   "loss": loss_value, "learning_rate": self.scheduler.get_last_lr()[0],
                   "trainable_parameters": count.trainable, "adapter_parameters": count.adapter,
                   "elapsed": round(elapsed, 3), "remaining": round(per_step * (self.total_steps - self.step), 3)}
            if self.step % c.eval_interval == 0 or self.step == self.total_steps:
                row.update(self.evaluate() if self.main else {})
            self._log(row)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if self.main:
                write_status(self.folder, "running", step=self.step)
            if self.step % c.checkpoint_interval == 0 and self.step < self.total_steps:
                self.save_checkpoint()
        bar.close()
        self.finish()
        return "finished"

    def finish(self) -> None:
        """Final adapter, its PEFT export (or the full model) and summary.json."""
        from .inject import trainable_parameters
        from .persistence import export_peft, save_adapter

        self.accelerator.wait_for_everyone()
        if not self.main:
            return
        c = self.config
        if c.method in ("lamda", "lamda++"):
            save_adapter(self.model, self.folder / "adapter")
            export_peft(self.model, self.folder / "peft", base_model_name_or_path=c.source)
        elif c.method == "lora":
            self.model.save_pretrained(str(self.folder / "peft"))
        else:
            self.model.save_pretrained(str(self.folder / "model"))
        final = read_last_eval(self.folder)
        count = trainable_parameters(self.model)
        summary = {"method": c.method, "steps": self.step, "elapsed": round(time.time() - self.started, 3),
                   "trainable_parameters_end": count.trainable, "adapter_parameters_end": count.adapter, **final}
        if c.task == "classification":
            summary["labels"] = self.data.label_names
        (self.folder / "summary.json").write_text(json.dumps(summary, indent=1))


def accuracy(predictions: list[int], labels: list[int]) -> float:
    return sum(p == t for p, t in zip(predictions, labels)) / len(labels)


def macro_f1(predictions: list[int], labels: list[int], classes: int) -> float:
    scores = []
    for k in range(classes):
        tp = sum(p == k and t == k for p, t in zip(predictions, labels))
        fp = sum(p == k and t != k for p, t in zip(predictions, labels))
        fn = sum(p != k and t == k for p, t in zip(predictions, labels))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / classes


def read_last_eval(folder: Path) -> dict:
    from .runs import read_metrics

    evals = [row for row in read_metrics(folder) if "eval_loss" in row]
    return {k: v for k, v in evals[-1].items() if k.startswith("eval_")} if evals else {}


def run(folder: str | Path) -> str:
    """Train a run folder to the end (or a stop request); returns the final state."""
    folder = Path(folder).resolve()
    trainer = None
    try:
        if os.environ.get("LOCAL_RANK", "0") == "0":
            write_status(folder, "queued", pid=os.getpid())
        with TrainingSlot(folder) if int(os.environ.get("WORLD_SIZE", "1")) == 1 else nullcontext():
            trainer = Trainer(folder)
            trainer.build()
            state = trainer.train()
        if trainer.main:
            write_status(folder, state, step=trainer.step, reason=None)
        return state
    except NonFiniteLoss as error:
        last = trainer._checkpoints()[-1].name if trainer and trainer._checkpoints() else "none"
        write_status(folder, "failed", reason=f"{error}; the last good checkpoint ({last}) is kept")
        return "failed"
    except (LamdaError, OSError, ValueError, RuntimeError) as error:
        write_status(folder, "failed", reason=f"{type(error).__name__}: {error}")
        return "failed"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m lamda_core.trainer RUN_FOLDER", file=sys.stderr)
        return 2
    state = run(argv[0])
    return 0 if state in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
