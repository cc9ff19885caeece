"""Every allowed value and default, defined once; configs, argparse and the app's widgets read them
from here. Defaults that a benchmark chose say so next to them (docs/quality.md)."""
from __future__ import annotations

# Fine-tuning methods are registry entries (methods/): their defaults and reasons live there.
# What a model is loaded as; training takes the first two.
TASKS = ("classification", "causal-lm", "encoder")
TRAIN_TASKS = ("classification", "causal-lm")
MODEL_DTYPES = ("float32", "bfloat16", "float16")
ADAPTER_DTYPES = MODEL_DTYPES
# LaMDA initializations (SPEC section 1).
INIT_VARIANTS = ("svd", "gradient", "svd-residual", "random")
# "linear": SPEC's schedule, k(t) = min(r, floor(r t / t_i)) columns truly frozen, B dropped at r.
# "grad-mask-stepwise": the authors' released rule, zero the gradients of floor(t / t_i) columns.
FREEZE_RULES = ("linear", "grad-mask-stepwise", "never")
LR_SCHEDULES = ("linear", "cosine", "constant")
OPTIMIZERS = ("adamw", "sgd", "sgd-momentum")
# LaMDA++'s allocation rules (spectra/allocation.py); "gradient" is data-driven and needs a
# training file (spectra/importance.py).
ALLOCATION_STRATEGIES = ("equal-energy", "energy-deficit", "gradient")
# What the allocation benchmark found (benchmarks/quality.py allocation: each rule against uniform
# LaMDA at the same total rank, ranks 40 and 16, 3 seeds, SST-2 and AG News validation files), and
# so what the Rank budget page recommends: "uniform" unless a rule is at least as good on both
# tasks at every budget measured.
RECOMMENDED_ALLOCATION = "uniform"
ALLOCATION_FINDING = (
    "Measured here, no allocation rule beats uniform LaMDA on both tasks at every budget: at rank 40 "
    "the spectral rule (equal-energy) scores 88.5 / 88.4 against uniform's 89.0 / 88.6 (SST-2 / AG News, "
    "3 seeds) and the gradient rule 88.4 / 88.7 with 50% more parameters; at rank 16 the rules are "
    "within 0.3 points of uniform either way (86.1 / 88.0). Uniform LaMDA is the recommended choice; "
    "this page is for exploring where the spectra would put the rank.")
# Comparisons (runs/compare.py): each method at its default rank (what the quality benchmark
# compares), matched by total rank, or by averaged trainable parameters.
COMPARE_MATCHES = ("defaults", "rank", "parameters")
DEFAULT_COMPARE_METHODS = ("lora", "lamda", "lamda++")
# Sweeps (runs/sweep.py): the two methods whose rate matters most to the headline comparison.
DEFAULT_SWEEP_METHODS = ("lora", "lamda")

DEFAULT_METHOD = "lamda"
# A run's shape: micro-batch size x tokens per example (TrainConfig, CostQuery, the CLI and the
# pages read these; a short run evaluates about 6 times and checkpoints 3 times, run_intervals).
DEFAULT_BATCH_SIZE = 16
DEFAULT_SEQ_LEN = 64
DEFAULT_STEPS = 60
# Tokens per example for instruction data on the embedded SmolLM2 (the app's sequence length follows it when
# that model is chosen): its chat template adds a 20-token default system prompt, so demo-chat's one-line
# reviews render to at most 76 tokens; at 64, 93 of its 400 examples lost their whole answer.
DEFAULT_CHAT_SEQ_LEN = 128
# LaMDA's rank, from benchmarks/quality.py (validation files, 3 seeds, mean pooling;
# docs/quality.md): r = 40 is the round rank just inside 5x fewer averaged adapter parameters than
# LoRA r=8 (57,600 for S on MiniLM, 63,130 averaged with B's first steps: 5.3x; the budget ends at
# r = 41); accuracy rose with the rank up to there (train split, rate 3e-3, 3 seeds: r=32 86.1,
# r=40 86.8). SST-2 validation: r=40 89.0, r=32 at 1e-2 (the default before) 87.8, r=8 with B over
# 30% of the steps (the one before) 86.8; LoRA r=8 89.5.
DEFAULT_LAMDA_RANK = 40
# alpha = DEFAULT_SCALE x rank unless set, so the update scale s = alpha / r stays 2 at any rank
# (LoRA r=8: alpha 16, as before; a larger s scored lower, docs/quality.md, factor table: alpha 64 at r=8).
DEFAULT_SCALE = 2.0
DEFAULT_INIT = "svd"
# Classification pooling (models/pooling.py). "auto" classifies from the sentence embedding the model
# was trained to produce: for all-MiniLM-L6-v2 (sentence-transformers, mean tokens) the masked mean.
# A linear probe on frozen MiniLM features scores SST-2 validation 84.4% from the mean, 79.3% from
# [CLS] and 77.6% from BERT's pooler. Fine-tuned (benchmarks/quality.py, 3 seeds), the mean lifts LaMDA
# by +1.1 points on SST-2 and +1.0 on AG News, LoRA by +0.3 and +0.6, and costs no method anything.
POOLINGS = ("auto", "cls", "mean")
DEFAULT_POOLING = "auto"
# B freezes within the first 1% of the steps, so S carries the update: at r = 40, B is 829,440
# parameters on MiniLM, and training it for longer would take LaMDA past a fifth of LoRA's averaged
# parameters (the budget); at r = 8, B over 30% of the steps (86.8 on SST-2) scored lower.
# The warm-up benchmark (r = 40, 3 seeds, SST-2 / AG News): B frozen from step 0 88.9 / 88.7, 1%
# 89.0 / 88.6, 10% 88.4 / 88.5, 30% 88.4 / 87.9, never frozen 88.6 / 88.3: the warm-up neither
# helps nor hurts within the seeds' spread; 1% stays so that B's freezing remains visible.
DEFAULT_FREEZE_FRACTION = 0.01
DEFAULT_FREEZE_RULE = "linear"
DEFAULT_LR_SCHEDULE = "linear"


def check_choice(value, allowed, what: str) -> None:
    """A ConfigError naming the allowed values when ``value`` is not one of them."""
    from .errors import ConfigError

    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}: {what} must be one of {tuple(allowed)}")
