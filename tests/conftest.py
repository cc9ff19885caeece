"""Shared fixtures: real MiniLM, tiny Llama / GPT-2 built from configs, small batches."""
import os
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one torch thread each, and in their runs
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

import lamda_core as lc

FAMILIES = {"minilm": ("default", "classification"), "llama": ("tiny-llama", "causal-lm"),
            "gpt2": ("tiny-gpt2", "causal-lm")}


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tiny models and the converted SmolLM2 are built into a fresh cache, as on a machine that
    never saw them; the two xdist workers share it (builds are atomic, SmolLM2's behind a lock),
    so SmolLM2 is converted once per test session."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # pytest-of-USER/pytest-N: the same for both workers
    cache = shared / "lamda-cache"
    cache.mkdir(exist_ok=True)
    os.environ["LAMDA_CACHE"] = str(cache)
    os.environ.setdefault("LAMDA_LAUNCHER_IDLE_S", "120")  # the warm launchers tests start leave soon after


def pytest_collection_modifyitems(items):
    """Tests marked heavy first (a stable sort keeps every file's order): the longest jobs start
    first, so the two workers end together."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


def run_cli(*args) -> subprocess.CompletedProcess:
    """``lamda ARGS`` as the entry point's main() runs it, in this process (tests/test_cli.py runs
    the entry point itself): the exit status and what it printed to stdout and stderr."""
    from lamda_core.cli import main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse's own refusals and --help
            code = exit_.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def load(family: str, task: str | None = None, **kwargs):
    source, default_task = FAMILIES[family]
    model, tokenizer = lc.load_model(source, task=task or default_task, **kwargs)
    model.eval()
    return model, tokenizer


def batch(tokenizer, n: int = 4, seed: int = 0) -> dict:
    """A padded batch of n short real sentences, with labels 0/1."""
    texts = ["a gentle film that stays with you", "the plot falls apart in the second act",
             "wonderful cast and a sharp script", "i want those two hours back",
             "quietly brilliant", "loud, long and empty"]
    generator = torch.Generator().manual_seed(seed)
    chosen = [texts[i] for i in torch.randint(len(texts), (n,), generator=generator)]
    encoded = tokenizer(chosen, return_tensors="pt", padding=True)
    encoded["labels"] = torch.arange(n) % 2
    return dict(encoded)


def outputs(model, inputs: dict) -> torch.Tensor:
    """The model's main output for inputs (labels dropped)."""
    with torch.no_grad():
        out = model(**{k: v for k, v in inputs.items() if k != "labels"})
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def train_steps(model, inputs: dict, optimizer, freezer, steps: int) -> list[dict]:
    """Run ``steps`` optimizer steps with the freezer; return, per step, {layer name:
    (frozen column count, copy of B)}."""
    history = []
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        optimizer.step()
        freezer.step(optimizer)
        history.append({name: (int(layer.frozen_columns), layer.lamda_B.detach().clone())
                        for name, layer in lc.lamda_layers(model).items()})
    return history


SAFETY_WAIT_S = 600  # a hang guard for a run to reach a state, not a speed check


def wait_until(predicate, what: str) -> None:
    """Poll ``predicate`` until it holds; AssertionError naming ``what`` if it never does (a hang)."""
    import time

    deadline = time.monotonic() + SAFETY_WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)
