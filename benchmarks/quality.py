"""Quality on real data: PEFT LoRA, LaMDA, LaMDA++ and full fine-tuning on MiniLM.

    python benchmarks/quality.py SECTION [SECTION ...] [--seeds 3] [--steps 300] [--batch 32]

Sections (each reuses the runs already in the cache, so they can be run one at a time):
  sweep    the learning-rate sweeps (SWEEPS), trained on 90% of each task's train file and scored
           on the other 10% (never on the validation file); a method's default rate is the best
           mean over the sweep's seeds
  final    each method at its defaults (CLI / app / Python API), several seeds, on SST-2 and AG
           News, evaluated on the validation file; the demo set as a smoke row
  factors  LaMDA on SST-2 (train split): one factor changed at a time from its previous defaults
  warmup   how long B trains before it freezes (WARMUP: eta = 0, 1%, 10%, 30%, never), LaMDA r=40,
           both tasks' validation files, every seed
  allocation  LaMDA++'s allocation rules (ALLOCATION_RULES, one of them data-driven) against uniform
           LaMDA at the same total rank, at each ALLOCATION_BUDGETS rank, both tasks, every seed
  variants LaMDA settings (VARIANTS) on the validation file of each --variant-tasks (default SST-2),
           every seed, against LoRA's defaults
  swept-rates  LoRA and full fine-tuning on SST-2's validation file at their split sweep's best
           rate (SWEPT_RATES), where that is not their default
  pareto   accuracy against averaged adapter parameters and peak memory, LaMDA against LoRA over
           PARETO_RANKS, on SST-2's validation file
  report   print the markdown tables and write benchmarks/results/quality.json and the Pareto
           figures (HTML, and PNGs where Debian's chromium is installed)
  llm      instruction-tuning the embedded SmolLM2: LaMDA, LaMDA++ and LoRA, exact match on SST-2
           and AG News as questions (benchmarks/llm_quality.py; `python benchmarks/quality.py llm
           [its own sections and options]`)

The final table, variants and Pareto run with --pooling (default mean: what the product's pooling
"auto" picks for MiniLM); the factor and step-budget sections were measured with BERT's [CLS]
pooler ("cls") from LaMDA's previous defaults (PREVIOUS) and say so. A run's key holds its rank,
alpha, freeze fraction and rate written out (``settled``), so a changed default never relabels a
cached run.

Every run goes through the product's own trainer: a run folder and ``python -m
lamda_core.training.trainer`` as a child process, whose peak resident memory (ru_maxrss from os.wait4) is
the "peak RSS" column. Runs are cached in benchmarks/results/quality_runs.jsonl, keyed by their
settings. The real data is read from ../shared/data (or --data-dir); it is never copied here.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lamda_core.adapter.config import LamdaConfig  # noqa: E402
from lamda_core.choices import DEFAULT_FREEZE_FRACTION, DEFAULT_SCALE  # noqa: E402
from lamda_core.methods import LamdaMethod, get_method, method_names  # noqa: E402

# the registry's defaults as tables (methods/ holds them and the reasons)
DEFAULT_RANKS = {m: get_method(m).default_rank for m in method_names()}
DEFAULT_DROPOUT = {m: get_method(m).default_dropout for m in method_names()}
DEFAULT_LEARNING_RATES = {m: get_method(m).default_learning_rate for m in method_names()}
LAMDA_METHODS = tuple(m for m in method_names() if isinstance(get_method(m), LamdaMethod))  # B freezes
from lamda_core.runs.config import TrainConfig  # noqa: E402
from lamda_core.runs.folder import create_run, read_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CACHE = RESULTS / "quality_runs.jsonl"
METHODS = ("lora", "lamda", "lamda++", "full", "dora", "pissa", "vera", "psoft")
LABELS = {"lamda": f"LaMDA r={DEFAULT_RANKS['lamda']}", "lamda++": "LaMDA++ (same total rank)",
          "lora": f"PEFT LoRA r={DEFAULT_RANKS['lora']}", "full": "full fine-tuning",
          **{m: f"PEFT {name} r={DEFAULT_RANKS[m]}"
             for m, name in (("dora", "DoRA"), ("pissa", "PiSSA"), ("vera", "VeRA"), ("psoft", "PSOFT"))}}
# LaMDA's previous defaults (r = 8, alpha 16, B frozen column by column over the first 30% of the
# steps, rate 1e-2): the factor and step-budget sections and the cls-pooling Pareto were measured
# from them.
PREVIOUS = {"rank": 8, "alpha": 16.0, "freeze_fraction": 0.3, "learning_rate": 1e-2}
# The default between them: r = 32 (alpha 64) at rate 1e-2, B frozen within the first 1% of the steps.
RANK_32 = {"rank": 32, "learning_rate": 1e-2}
# task: (train file, validation file, sequence length). SST-2 phrases fit in 64 MiniLM tokens,
# 95% of AG News texts in 72.
TASKS = {"sst2": ("sst2_phrases_train.tsv", "sst2_phrases_validation.tsv", 64),
         "agnews": ("agnews_train.tsv", "agnews_validation.tsv", 72),
         "demo": ("demo-sentiment", None, 64)}
# Steps of batch 32 per task: AG News texts are about 3x longer than SST-2 phrases, so on two CPU
# cores it gets half the steps (4,800 examples, 0.6 epoch); the demo set is a 400-row smoke test.
STEPS = {"sst2": 300, "agnews": 150, "demo": 60}
# Learning-rate sweeps: (label, method, settings, rates, seeds). LaMDA++ is LaMDA with other ranks:
# it takes LaMDA's rate. The first two were run before the mean-pooling default, with BERT's pooler.
SWEEPS = [("LaMDA r=8, previous defaults (cls pooling)", "lamda",
           {**PREVIOUS, "pooling": "cls"}, [3e-3, 1e-2, 3e-2], 1),
          ("PEFT LoRA r=8 (cls pooling)", "lora", {"pooling": "cls"}, [3e-4, 1e-3, 3e-3], 1),
          ("LaMDA r=32 (mean pooling)", "lamda", {"rank": 32, "pooling": "mean"}, [1e-3, 3e-3, 1e-2], 3),
          (f"LaMDA r={DEFAULT_RANKS['lamda']}, defaults (mean pooling)", "lamda", {"pooling": "mean"},
           [1e-3, 3e-3, 1e-2], 3),
          ("PEFT LoRA r=8, defaults (mean pooling)", "lora", {"pooling": "mean"}, [3e-4, 1e-3, 3e-3], 1),
          ("full fine-tuning (mean pooling)", "full", {"pooling": "mean"}, [3e-5, 1e-4, 3e-4], 1),
          # the PEFT family, on both tasks' train splits (--sweep-tasks sst2 agnews)
          ("PEFT DoRA r=8 (mean pooling)", "dora", {"pooling": "mean"}, [3e-4, 1e-3, 3e-3], 1),
          ("PEFT PiSSA r=8 (mean pooling)", "pissa", {"pooling": "mean"}, [1e-4, 3e-4, 1e-3, 3e-3], 1),
          ("PEFT VeRA r=256 (mean pooling)", "vera", {"pooling": "mean"}, [3e-3, 1e-2, 3e-2, 1e-1], 1),
          ("PEFT PSOFT r=40 (mean pooling)", "psoft", {"pooling": "mean"}, [1e-3, 3e-3, 1e-2], 1)]
# one factor at a time, LaMDA on SST-2's train split; each entry is a TrainConfig change
FACTORS = {
    "previous defaults": {},
    "head: classifier + pooler": {"head_modules": ["classifier", "pooler"]},
    "init random": {"init": "random"},
    "init gradient": {"init": "gradient"},
    "freeze fraction 1.0": {"freeze_fraction": 1.0},
    "freeze fraction 0.6": {"freeze_fraction": 0.6},
    "rank 32": {"rank": 32},
    "2x steps": {"max_steps": 2},  # a multiplier, applied in factor_runs
    "alpha 64 (scale 8)": {"alpha": 64.0},
    "init svd-residual": {"init": "svd-residual"},
    "init svd-residual, learning rate 1e-3": {"init": "svd-residual", "learning_rate": 1e-3},
    "init svd-residual, learning rate 3e-4": {"init": "svd-residual", "learning_rate": 3e-4},
    "learning rate 3e-3": {"learning_rate": 3e-3},
    "learning rate 3e-2": {"learning_rate": 3e-2},
    "head learning rate 1e-3": {"head_learning_rate": 1e-3},
    "core (S) learning rate 3e-2": {"core_learning_rate": 3e-2},
    "core (S) learning rate 3e-3": {"core_learning_rate": 3e-3},
    "alpha 32 (scale 4)": {"alpha": 32.0},
    "schedule constant": {"lr_schedule": "constant"},
    "schedule cosine": {"lr_schedule": "cosine"},
    "freeze rule grad-mask-stepwise": {"freeze_rule": "grad-mask-stepwise"},
    "dropout 0.05": {"dropout": 0.05},
    "no gradient clipping": {"max_grad_norm": 0.0},
    "rank 16, alpha 32 (scale 2)": {"rank": 16, "alpha": 32.0},
    "rank 16, alpha 32 + pooler": {"rank": 16, "alpha": 32.0, "head_modules": ["classifier", "pooler"]},
    "grad-mask-stepwise + pooler": {"freeze_rule": "grad-mask-stepwise", "head_modules": ["classifier", "pooler"]},
    "B learning rate 1e-3 (S 1e-2)": {"learning_rate": 1e-3, "core_learning_rate": 1e-2},
    "B learning rate 3e-3 (S 1e-2)": {"learning_rate": 3e-3, "core_learning_rate": 1e-2},
    "B learning rate 1e-3 (S 3e-2)": {"learning_rate": 1e-3, "core_learning_rate": 3e-2},
    "LayerNorms train too": {"head_modules": ["classifier", "LayerNorm"]},
    "LayerNorms train too, head rate 1e-3": {"head_modules": ["classifier", "LayerNorm"], "head_learning_rate": 1e-3},
}  # rank 4 / 16 / 32 / 64 on the validation file: see the Pareto section
# LaMDA settings judged like the defaults (validation files, every seed), against LoRA's defaults:
# TrainConfig changes from LaMDA's defaults
VARIANTS = {"defaults": {},
            "rank 32, learning rate 1e-2 (the r=32 default before)": RANK_32,
            "rank 32, learning rate 3e-3": {**RANK_32, "learning_rate": 3e-3},
            "rank 32, alpha 16 (scale 0.5), learning rate 1e-2": {**RANK_32, "alpha": 16.0},
            "previous defaults (r=8, B over the first 30% of steps)": PREVIOUS,
            "previous, init gradient (A, B from dL/dW)": {**PREVIOUS, "init": "gradient"},
            # B trains longer at a smaller rank (the factor table: B's training is what helped at r=8)
            "previous, rank 3, freeze fraction 1.0": {**PREVIOUS, "rank": 3, "alpha": 16.0, "freeze_fraction": 1.0},
            "previous, rank 4, freeze fraction 0.75": {**PREVIOUS, "rank": 4, "alpha": 16.0, "freeze_fraction": 0.75},
            "previous, learning rate 2e-2": {**PREVIOUS, "learning_rate": 2e-2}}
# B's warm-up (docs/quality.md, "B's warm-up"): how long B trains before it is frozen, at LaMDA's
# defaults otherwise (r = 40), on the validation file of both tasks, every seed. eta = 0 is a
# trained core between frozen SVD factors (LoRA-XS, PSOFT); "never" trains B to the end.
WARMUP = {"B frozen from step 0 (eta = 0)": {"freeze_fraction": 0.0},
          "B over the first 1% of steps (the default)": {},
          "B over the first 10%": {"freeze_fraction": 0.1},
          "B over the first 30%": {"freeze_fraction": 0.3},
          "B never frozen": {"freeze_rule": "never"}}
# LaMDA++'s allocation rules against uniform LaMDA at the same total rank (rank x 36 matrices), at
# two budgets, on the validation file of both tasks, every seed. "gradient" is the data-driven rule
# (spectra/importance.py): ranks in proportion to the norm of each matrix's task gradient.
ALLOCATION_BUDGETS = (40, 16)
ALLOCATION_RULES = {"uniform (LaMDA)": None, "equal-energy (spectra)": "equal-energy",
                    "energy-deficit (spectra)": "energy-deficit", "gradient norm (data)": "gradient"}
# The baselines at the best rate of their split sweep, where that is not their default (LoRA keeps
# 1e-3, below the 2e-3 that collapsed; full fine-tuning keeps 1e-4), on SST-2's validation file.
SWEPT_RATES = {"lora": 3e-3, "full": 3e-4}
ADAPTER_SETTINGS = ("rank", "alpha", "dropout", "init", "freeze_fraction", "freeze_rule")  # LamdaConfig fields
PARETO_RANKS = {"cls": {"lamda": [4, 8, 16, 32, 64], "lora": [2, 4, 8, 16]},
                "mean": {"lamda": [4, 8, 16, 32, 40, 64], "lora": [2, 4, 8, 16]}}


# ---- running and caching ------------------------------------------------------------------
def data_paths(task: str, data_dir: Path, split: bool) -> tuple[str, str | None]:
    train, validation, _ = TASKS[task]
    if task == "demo":
        return train, None
    return str(data_dir / train), None if split else str(data_dir / validation)


def run_key(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)


def settled(spec_: dict) -> dict:
    """``spec_`` with the method's defaults written out (rank, alpha, freeze fraction, learning
    rate), so a cached run keeps meaning what it ran with when a default changes."""
    method, out = spec_["method"], dict(spec_)
    out.setdefault("learning_rate", DEFAULT_LEARNING_RATES[method])
    if method != "full":
        out.setdefault("rank", DEFAULT_RANKS[method])
        out.setdefault("alpha", DEFAULT_SCALE * out["rank"])
    if method in LAMDA_METHODS:
        out.setdefault("freeze_fraction", DEFAULT_FREEZE_FRACTION)
    return out


def load_cache() -> dict[str, dict]:
    if not CACHE.is_file():
        return {}
    rows = [json.loads(line) for line in CACHE.read_text().splitlines() if line.strip()]
    return {run_key(row["spec"]): row for row in rows}


_ranks_lock = threading.Lock()


_ranks: dict[tuple, dict[str, int]] = {}


def lamda_plus_plus_ranks(rank: int, strategy: str, train_data: str) -> dict[str, int]:
    """LaMDA++ ranks at the same total rank as uniform rank ``rank``, by ``strategy`` (the
    gradient rule reads the first batches of ``train_data``)."""
    import lamda_core as lc

    key = (rank, strategy, train_data if strategy == "gradient" else None)
    with _ranks_lock:
        if key not in _ranks:
            importance = lc.gradient_importance("default", train_data) if strategy == "gradient" else None
            _ranks[key] = lc.allocate_ranks(lc.scan_spectra("default"), base_rank=rank, strategy=strategy,
                                            importance=importance).rank_pattern
    return _ranks[key]


def train(spec: dict, data_dir: Path, work: Path) -> dict:
    """One run through the product's trainer in a child process; its metrics and peak RSS."""
    spec = dict(spec)
    task, split = spec.pop("task"), spec.pop("split")
    train_data, validation = data_paths(task, data_dir, split)
    method = spec["method"]
    adapter = {k: spec.pop(k) for k in ADAPTER_SETTINGS if k in spec}
    adapter.setdefault("dropout", DEFAULT_DROPOUT[method])
    if "head_modules" in spec:
        adapter["trainable_modules"] = spec.pop("head_modules")
    if method == "lamda++":
        adapter["rank_pattern"] = lamda_plus_plus_ranks(adapter.get("rank", LamdaConfig().rank),
                                                        spec.pop("allocation", "equal-energy"), train_data)
    steps = spec.pop("steps")
    folder = Path(tempfile.mkdtemp(dir=work)) / "run"
    create_run(TrainConfig(max_steps=steps, batch_size=spec.pop("batch"), seq_len=TASKS[task][2],
                           train_data=train_data, validation_data=validation, adapter=LamdaConfig(**adapter),
                           eval_interval=steps, checkpoint_interval=10 * steps, **spec), folder)
    with open(folder / "train.log", "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "lamda_core.training.trainer", str(folder)], stdout=log,
                                 stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"})
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"run {run_key(spec)} failed: {(folder / 'status.json').read_text()}")
    metrics = read_metrics(folder)
    summary = json.loads((folder / "summary.json").read_text())
    steps = len(metrics)
    return {"accuracy": summary["eval_accuracy"], "f1": summary["eval_f1"], "eval_loss": summary["eval_loss"],
            "seconds_per_step": (metrics[-1]["elapsed"] - metrics[0]["elapsed"]) / max(1, steps - 1),
            "adapter_start": metrics[0]["adapter_parameters"], "adapter_end": metrics[-1]["adapter_parameters"],
            "adapter_average": statistics.mean(r["adapter_parameters"] for r in metrics),
            "trainable_start": metrics[0]["trainable_parameters"], "trainable_end": metrics[-1]["trainable_parameters"],
            "trainable_average": statistics.mean(r["trainable_parameters"] for r in metrics),
            "peak_rss_mib": usage.ru_maxrss / 1024}


def ensure(specs: list[dict], data_dir: Path, workers: int) -> None:
    """Run every spec not yet in the cache, ``workers`` at a time (each child on
    cores / workers threads), appending each result as it finishes."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    done = load_cache()
    todo = [s for s in specs if run_key(s) not in done]
    RESULTS.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        started = time.time()
        futures = {pool.submit(train, s, data_dir, Path(tmp)): s for s in todo}
        for number, future in enumerate(as_completed(futures), 1):
            spec_, result = futures[future], future.result()
            with open(CACHE, "a") as handle:
                handle.write(json.dumps({"spec": spec_, **result}) + "\n")
            print(f"[{number}/{len(todo)}, {time.time() - started:.0f} s] {run_key(spec_)}: "
                  f"accuracy {result['accuracy']:.4f}", flush=True)


def spec(task: str, method: str, args, seed: int = 0, split: bool = False, pooling: str = "cls", **changes) -> dict:
    """A run's settings. pooling "cls" (the model's own BERT pooler) is what every section but
    the final table was measured with, before the mean-pooling default (--pooling)."""
    base = {"task": task, "method": method, "seed": seed, "split": split, "steps": args.steps, "batch": args.batch,
            "pooling": pooling}
    return settled({**base, **changes})


# ---- sections -----------------------------------------------------------------------------
def sweep_spec(task: str, sweep: tuple, lr: float, seed: int, args) -> dict:
    _, method, settings, _, _ = sweep
    steps = {} if task == "sst2" else {"steps": STEPS[task]}  # SST-2: --steps
    return spec(task, method, args, seed=seed, split=True, **{**settings, **steps, "learning_rate": lr})


def sweep_runs(args) -> list[dict]:
    return [sweep_spec(task, sweep, lr, seed, args) for task in args.sweep_tasks for sweep in SWEEPS
            for lr in sweep[3] for seed in range(sweep[4]) if sweep[1] in args.sweep_methods]


def sweep_scores(cache: dict, sweep: tuple, args) -> dict[float, float] | None:
    """{rate: mean split accuracy over the sweep's tasks and seeds}, None until every run is in."""
    rows = {lr: [cache.get(run_key(sweep_spec(t, sweep, lr, seed, args))) for t in args.sweep_tasks
                 for seed in range(sweep[4])] for lr in sweep[3]}
    if not all(all(r) for r in rows.values()):
        return None
    return {lr: statistics.mean(r["accuracy"] for r in rs) for lr, rs in rows.items()}


def final_runs(args) -> list[dict]:
    return [final_spec(task, method, seed, args) for task in args.final_tasks for seed in range(args.seeds)
            for method in args.final_methods]


def final_spec(task: str, method: str, seed: int, args, pooling: str | None = None, **changes) -> dict:
    return spec(task, method, args, seed=seed, steps=STEPS[task], pooling=pooling or args.pooling, **changes)


def factor_runs(args) -> dict[str, dict]:
    runs = {}
    for name, change in FACTORS.items():
        change = dict(change)
        steps = args.steps * change.pop("max_steps", 1)
        runs[name] = {**spec("sst2", "lamda", args, split=True, **{**PREVIOUS, **change}), "steps": steps}
    return runs


def variant_runs(args, pooling: str | None = None) -> dict[tuple[str, str], list[dict]]:
    """{(task, variant): its runs over every seed}, for --variant-tasks and --variants, with
    ``pooling`` (default --pooling)."""
    return {
        (task, name): [final_spec(task, "lamda", seed, args, pooling, **VARIANTS[name]) for seed in range(args.seeds)]
        for task in args.variant_tasks
        for name in args.variants
    }


def warmup_runs(args) -> dict[tuple[str, str], list[dict]]:
    """{(task, warm-up): its LaMDA runs over every seed} on the validation files of SST-2 and AG News."""
    return {(task, name): [final_spec(task, "lamda", seed, args, **change) for seed in range(args.seeds)]
            for task in ("sst2", "agnews") for name, change in WARMUP.items()}


def warmup_report(cache: dict, args) -> dict:
    """The warm-up table (printed) and its rows: accuracy, averaged adapter parameters, peak RSS."""
    out = {}
    for task in ("sst2", "agnews"):
        rows_of = {name: [cache[run_key(s)] for s in specs if run_key(s) in cache]
                   for (t, name), specs in warmup_runs(args).items() if t == task}
        if not any(rows_of.values()):
            continue
        print(f"### B's warm-up: LaMDA r=40 ({task} validation file, {STEPS[task]} steps, {args.pooling} pooling)\n")
        print("| B trains | seeds | accuracy % | averaged adapter params | peak RSS (MiB) |")
        print("|---|---:|---:|---:|---:|")
        for name, rows in rows_of.items():
            if rows:
                print(f"| {name} | {len(rows)} | {mean_sd([r['accuracy'] for r in rows])} "
                      f"| {statistics.mean(r['adapter_average'] for r in rows):,.0f} "
                      f"| {statistics.mean(r['peak_rss_mib'] for r in rows):,.0f} |")
        out[task] = {name: [r["accuracy"] for r in rows] for name, rows in rows_of.items()}
        print()
    return out


def allocation_runs(args) -> dict[tuple[str, int, str], list[dict]]:
    """{(task, rank, rule): its runs over every seed}: uniform LaMDA and LaMDA++ by each of
    --allocation-rules at the same total rank, for each ALLOCATION_BUDGETS rank."""
    runs = {}
    for rank in ALLOCATION_BUDGETS:
        for name in args.allocation_rules:
            strategy = ALLOCATION_RULES[name]
            method = "lamda" if strategy is None else "lamda++"
            change = {} if strategy in (None, "equal-energy") else {"allocation": strategy}
            if rank != DEFAULT_RANKS[method]:
                change["rank"] = rank
            for task in ("sst2", "agnews"):
                runs[(task, rank, name)] = [final_spec(task, method, seed, args, **change)
                                            for seed in range(args.seeds)]
    return runs


def allocation_report(cache: dict, args) -> dict:
    """The allocation table (printed): accuracy, averaged adapter parameters, and the gap to
    uniform LaMDA at the same budget."""
    out = {}
    for task in ("sst2", "agnews"):
        rows_of = {(rank, name): [cache[run_key(s)] for s in specs if run_key(s) in cache]
                   for (t, rank, name), specs in allocation_runs(args).items() if t == task}
        if not any(rows_of.values()):
            continue
        print(f"### LaMDA++'s allocation rules against uniform LaMDA ({task} validation file, "
              f"{STEPS[task]} steps, total rank = rank x 36 matrices)\n")
        print("| rank | allocation | seeds | accuracy % | vs uniform | averaged adapter params |")
        print("|---:|---|---:|---:|---:|---:|")
        for (rank, name), rows in rows_of.items():
            if not rows:
                continue
            uniform = rows_of.get((rank, "uniform (LaMDA)")) or rows
            gap = statistics.mean(r["accuracy"] for r in rows) - statistics.mean(r["accuracy"] for r in uniform)
            print(f"| {rank} | {name} | {len(rows)} | {mean_sd([r['accuracy'] for r in rows])} | {100 * gap:+.1f} "
                  f"| {statistics.mean(r['adapter_average'] for r in rows):,.0f} |")
            out.setdefault(task, {})[f"{rank}: {name}"] = [r["accuracy"] for r in rows]
        print()
    return out


def swept_rate_runs(args) -> dict[str, list[dict]]:
    """{method: its SST-2 validation runs over every seed at SWEPT_RATES[method]}."""
    return {m: [final_spec("sst2", m, seed, args, learning_rate=lr) for seed in range(args.seeds)]
            for m, lr in SWEPT_RATES.items()}


def budget_runs(args) -> list[dict]:
    """LaMDA (previous defaults) and LoRA at 1x and 2x the step budget (SST-2 train split)."""
    return [{**spec("sst2", m, args, split=True, **(PREVIOUS if m == "lamda" else {})),
             **({"steps": 2 * args.steps} if twice else {})} for m in ("lamda", "lora") for twice in (False, True)]


def pareto_runs(args, pooling: str) -> list[dict]:
    """LaMDA and LoRA over PARETO_RANKS on SST-2's validation file. cls pooling: LaMDA from its
    previous defaults, alpha 16 at every rank (as measured then); mean: each method's defaults
    (alpha = 2 x rank)."""
    old = pooling == "cls"
    settings = {"lamda": {**PREVIOUS, "alpha": 16.0} if old else {}, "lora": {"alpha": 16.0} if old else {}}
    return [spec("sst2", method, args, seed=seed, pooling=pooling, **{**settings[method], "rank": rank})
            for method, ranks in PARETO_RANKS[pooling].items() for rank in ranks for seed in range(args.pareto_seeds)]


# ---- report -------------------------------------------------------------------------------
def mean_sd(values: list[float], scale: float = 100) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.mean(values):.1f} ± {scale * sd:.1f}"


def pooling_table(cache: dict, args) -> dict:
    """Accuracy of each method's defaults with the model's own pooler (cls) and with the mean of
    the token states, on the validation files; printed where both were run."""
    table = {}
    for task in TASKS:
        for m in METHODS:
            previous = PREVIOUS if m in LAMDA_METHODS else {}  # measured both ways before r=32 was the default
            rows = {
                p: [
                    r
                    for s in range(args.seeds)
                    if (r := cache.get(run_key(final_spec(task, m, s, args, p, **previous))))
                ]
                for p in ("cls", "mean")
            }
            if all(rows.values()):
                table.setdefault(task, {})[m] = {p: [r["accuracy"] for r in rs] for p, rs in rows.items()}
    if table:
        print("### Pooling: the classifier reads BERT's pooler (cls) or the mean of the token states "
              "(validation files; LaMDA and LaMDA++ at their previous defaults, r=8)\n")
        print("| task | method | cls: accuracy % | mean: accuracy % | mean - cls |")
        print("|---|---|---:|---:|---:|")
        for task, methods in table.items():
            for m, by in methods.items():
                change = statistics.mean(by["mean"]) - statistics.mean(by["cls"])
                label = LABELS[m] if m not in LAMDA_METHODS else LABELS[m].replace(f"r={DEFAULT_RANKS[m]}", "r=8")
                print(f"| {task} | {label} | {mean_sd(by['cls'])} ({len(by['cls'])}) "
                      f"| {mean_sd(by['mean'])} ({len(by['mean'])}) | {100 * change:+.1f} |")
        print()
    return table


def report(cache: dict, args) -> dict:
    out = {"settings": {"steps": args.steps, "batch": args.batch, "seeds": args.seeds,
                        "sweeps": [{"label": w[0], "method": w[1], "settings": w[2], "rates": w[3], "seeds": w[4]}
                                   for w in SWEEPS], "defaults": DEFAULT_LEARNING_RATES}, "sweep": {}}
    lines = []
    for sweep in SWEEPS:
        scores = sweep_scores(cache, sweep, args)
        if scores:
            best = max(scores, key=scores.get)
            out["sweep"][sweep[0]] = {"accuracy": {f"{lr:g}": a for lr, a in scores.items()}, "best": best}
            cells = "; ".join(f"{lr:g}: {100 * a:.1f}" for lr, a in scores.items())
            lines.append(f"| {sweep[0]} | {sweep[4]} | {cells} | {best:g} |")
    if lines:
        print(f"### Learning-rate sweep (accuracy % on a 10% split of the train file of "
              f"{' / '.join(args.sweep_tasks)}, mean over seeds)\n")
        print("| method | seeds | learning rate: accuracy % | best |")
        print("|---|---:|---|---:|")
        print("\n".join(lines) + "\n")
    out["final"] = {}
    for task in TASKS:
        rows = {m: [r for s in range(args.seeds) if (r := cache.get(run_key(final_spec(task, m, s, args))))]
                for m in METHODS}
        rows = {m: r for m, r in rows.items() if r}
        if "lamda" not in rows or "lora" not in rows:
            continue
        out["final"][task] = rows
        steps = STEPS[task]
        print(
            f"### {task}: {steps} steps of batch {args.batch}, each method at its defaults ({args.pooling} pooling)\n"
        )
        print(
            "| method | lr | seeds | accuracy % | macro F1 % | adapter params start / end / averaged | trainable with "
            "head (averaged) | s / step | peak RSS (MiB) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for m in METHODS:
            if m not in rows:
                print(f"| {LABELS[m]} | {DEFAULT_LEARNING_RATES[m]:g} | 0 | not run yet | | | | | |")
                continue
            r = rows[m]
            print(f"| {LABELS[m]} | {DEFAULT_LEARNING_RATES[m]:g} | {len(r)} | {mean_sd([x['accuracy'] for x in r])} "
                  f"| {mean_sd([x['f1'] for x in r])} | {r[0]['adapter_start']:,} / {r[0]['adapter_end']:,} / "
                  f"{r[0]['adapter_average']:,.0f} | {r[0]['trainable_average']:,.0f} "
                  f"| {statistics.mean(x['seconds_per_step'] for x in r):.3f} "
                  f"| {statistics.mean(x['peak_rss_mib'] for x in r):,.0f} |")
        gap = statistics.mean(x["accuracy"] for x in rows["lora"]) - statistics.mean(
            x["accuracy"] for x in rows["lamda"]
        )
        ratio = rows["lora"][0]["adapter_average"] / rows["lamda"][0]["adapter_average"]
        worst = min(x["accuracy"] for r in rows.values() for x in r)
        print(f"\nLoRA - LaMDA: {100 * gap:+.1f} points; averaged adapter parameters LoRA / LaMDA: {ratio:.1f}x; "
              f"lowest single-seed accuracy of any method: {100 * worst:.1f}%\n")
        if task != "demo":
            defaults_front(task, rows)
    out["pooling"] = pooling_table(cache, args)
    factors = {name: s for name, s in factor_runs(args).items() if run_key(s) in cache}
    if "previous defaults" in factors:
        base = cache[run_key(factors["previous defaults"])]["accuracy"]
        out["factors"] = {name: cache[run_key(s)]["accuracy"] for name, s in factors.items()}
        print("### What each factor does to LaMDA's previous defaults (r=8, B over the first 30% of steps; SST-2, "
              "seed 0, accuracy % on the train file's 10% split; cls pooling)\n")
        print("| change from the previous defaults | accuracy % | vs previous defaults | averaged adapter params |")
        print("|---|---:|---:|---:|")
        for name, s in factors.items():
            row = cache[run_key(s)]
            print(f"| {name} | {100 * row['accuracy']:.1f} | {100 * (row['accuracy'] - base):+.1f} "
                  f"| {row['adapter_average']:,.0f} |")
        print()
    out["warmup"] = warmup_report(cache, args)
    out["allocation"] = allocation_report(cache, args)
    out["variants"] = {}
    for pooling in ("mean", "cls"):
        variants = {key: [cache[run_key(s)] for s in specs if run_key(s) in cache]
                    for key, specs in variant_runs(args, pooling).items()}
        for task in TASKS:
            rows_of = {name: rows for (t, name), rows in variants.items() if t == task and rows}
            lora = [cache.get(run_key(final_spec(task, "lora", s, args, pooling))) for s in range(args.seeds)]
            if not rows_of or not all(lora):
                continue
            out["variants"][f"{task}, {pooling} pooling"] = {name: [r["accuracy"] for r in rows]
                                                             for name, rows in rows_of.items()}
            print(f"### LaMDA settings against LoRA's defaults ({task} validation file, {STEPS[task]} steps, "
                  f"{pooling} pooling)\n")
            print(f"| LaMDA | seeds | accuracy % | vs {LABELS['lora']} | averaged adapter params | LoRA / LaMDA |")
            print("|---|---:|---:|---:|---:|---:|")
            reference = statistics.mean(r["accuracy"] for r in lora)
            print(f"| ({LABELS['lora']}, its defaults) | {len(lora)} | {mean_sd([r['accuracy'] for r in lora])} | +0.0 "
                  f"| {lora[0]['adapter_average']:,.0f} | 1.0x |")
            for name, rows in rows_of.items():
                change = statistics.mean(r["accuracy"] for r in rows) - reference
                print(
                    f"| {name} | {len(rows)} | {mean_sd([r['accuracy'] for r in rows])} | {100 * change:+.1f} "
                    f"| {rows[0]['adapter_average']:,.0f} "
                    f"| {lora[0]['adapter_average'] / rows[0]['adapter_average']:.1f}x |"
                )
            print()
    swept = {m: [cache[run_key(s)] for s in specs if run_key(s) in cache] for m, specs in swept_rate_runs(args).items()}
    if all(swept.values()):
        out["swept_rates"] = {m: [r["accuracy"] for r in rows] for m, rows in swept.items()}
        print(f"### The baselines at their split sweep's best rate (sst2 validation file, {args.pooling} pooling)\n")
        print("| method | rate | seeds | accuracy % | at its default rate |")
        print("|---|---:|---:|---:|---:|")
        for m, rows in swept.items():
            default = [cache.get(run_key(final_spec("sst2", m, seed, args))) for seed in range(args.seeds)]
            at_default = mean_sd([r["accuracy"] for r in default if r]) if any(default) else "not run"
            print(f"| {LABELS[m]} | {SWEPT_RATES[m]:g} | {len(rows)} | {mean_sd([r['accuracy'] for r in rows])} "
                  f"| {at_default} ({DEFAULT_LEARNING_RATES[m]:g}) |")
        print()
    budget = budget_runs(args)
    if all(run_key(s) in cache for s in budget):
        out["step_budget"] = {f"{s['method']} {s['steps']}": cache[run_key(s)]["accuracy"] for s in budget}
        print("### Step budget (SST-2, seed 0, accuracy % on the train file's 10% split; LaMDA r=8 at its previous "
              "defaults; cls pooling)\n")
        print("| method | " + " | ".join(f"{n} steps" for n in (args.steps, 2 * args.steps)) + " |")
        print("|---|---:|---:|")
        for m, label in (("lamda", "LaMDA r=8"), ("lora", LABELS["lora"])):
            cells = [100 * cache[run_key(s)]["accuracy"] for s in budget if s["method"] == m]
            print(f"| {label} | {cells[0]:.1f} | {cells[1]:.1f} |")
        print()
    out["pareto"] = {}
    for pooling in ("mean", "cls"):
        pareto = pareto_runs(args, pooling)
        if not all(run_key(s) in cache for s in pareto):
            continue
        points = []
        for method, ranks in PARETO_RANKS[pooling].items():
            for rank in ranks:
                rows = [cache[run_key(s)] for s in pareto if s["method"] == method and s["rank"] == rank]
                points.append({"method": method, "rank": rank, "accuracy": statistics.mean(r["accuracy"] for r in rows),
                               "adapter_average": rows[0]["adapter_average"],
                               "peak_memory_mib": statistics.mean(r["peak_rss_mib"] for r in rows)})
        out["pareto"][pooling] = points
        settings = ("each method's defaults, alpha = 2 x rank" if pooling == "mean" else
                    "LaMDA from its previous defaults (B over the first 30% of steps), alpha 16 at every rank")
        print(
            f"### Pareto: SST-2 validation accuracy against averaged adapter parameters ({args.pareto_seeds} seed(s); "
            f"{settings}; {pooling} pooling)\n"
        )
        print("| method | rank | accuracy % | averaged adapter params | peak RSS (MiB) |")
        print("|---|---:|---:|---:|---:|")
        for p in points:
            print(f"| {p['method']} | {p['rank']} | {100 * p['accuracy']:.1f} | {p['adapter_average']:,.0f} "
                  f"| {p['peak_memory_mib']:,.0f} |")
        print()
        if pooling == next(iter(out["pareto"])):  # the figures show the newest complete set
            write_pareto_figures(points)
    (RESULTS / "quality.json").write_text(json.dumps(out, indent=1))
    return out


def defaults_front(task: str, rows: dict[str, list[dict]]) -> None:
    """Every method at its defaults as one point (mean accuracy over seeds): which are on the Pareto
    front of accuracy against averaged trainable parameters (head included, the whole model for full
    fine-tuning) and against peak memory; figures pareto_<task>_params.png / _memory.png."""
    from lamda_core.runs.compare import pareto_front

    points = [{"method": m, "label": m, "accuracy": statistics.mean(x["accuracy"] for x in r),
               "trainable_average": r[0]["trainable_average"],
               "peak_memory_mib": statistics.mean(x["peak_rss_mib"] for x in r)} for m, r in rows.items()]
    for x, what in (("trainable_average", "averaged trainable parameters"), ("peak_memory_mib", "peak memory")):
        front = sorted(points[i]["method"] for i in pareto_front(points, x, "accuracy"))
        print(f"Pareto front, accuracy against {what}: {', '.join(front)}")
    print()
    write_pareto_figures(points, f"pareto_{task}", x_params="trainable_average")


def write_pareto_figures(points: list[dict], stem: str = "pareto", x_params: str = "adapter_average") -> None:
    """<stem>.html, and where Debian's chromium is installed <stem>_params.png and
    <stem>_memory.png (docs/quality.md's images), rendered offline through Playwright."""
    import shutil

    from lamda_core.figures import pareto_figure

    pareto_figure(points, x=x_params).write_html(RESULTS / f"{stem}.html", include_plotlyjs="cdn")
    chromium = shutil.which("chromium")
    if not chromium:
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 500})
        for x, name in ((x_params, f"{stem}_params.png"), ("peak_memory_mib", f"{stem}_memory.png")):
            html = Path(tmp) / "figure.html"
            pareto_figure(points, x=x).update_layout(width=900, height=500).write_html(html, include_plotlyjs=True)
            page.goto(html.as_uri())
            page.wait_for_selector(".main-svg")
            page.screenshot(path=str(RESULTS / name))
        browser.close()


def main() -> None:
    if sys.argv[1:2] == ["llm"]:  # its own script, sections and options
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from llm_quality import main as llm_main

        llm_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sections",
        nargs="+",
        choices=("sweep", "final", "factors", "variants", "warmup", "allocation", "swept-rates", "budget", "pareto",
                 "report"),
    )
    parser.add_argument(
        "--steps", type=int, default=STEPS["sst2"], help="steps of the sweep, factor and Pareto runs (SST-2)"
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pareto-seeds", type=int, default=1)
    parser.add_argument("--sweep-tasks", nargs="+", default=["sst2"], choices=("sst2", "agnews"),
                        help="tasks the learning-rate sweep runs on (AG News costs about twice as much per run)")
    parser.add_argument("--factors", nargs="+", choices=list(FACTORS), help="run only these factors")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="the variants section's variants (default: all)")
    parser.add_argument("--variant-tasks", nargs="+", default=["sst2"], choices=list(TASKS),
                        help="the tasks the variants section runs on (default: sst2)")
    parser.add_argument("--allocation-rules", nargs="+", default=list(ALLOCATION_RULES), choices=list(ALLOCATION_RULES),
                        help="the allocation section's rules (default: all)")
    parser.add_argument("--sweep-methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--final-methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--final-tasks", nargs="+", default=["sst2", "agnews", "demo"], choices=list(TASKS))
    parser.add_argument("--pooling", default="mean", choices=("cls", "mean"),
                        help="the final table's pooling (mean: what the product's default 'auto' picks for MiniLM)")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (2 single-threaded children "
                        "use two cores better than one two-threaded child on these small matrices)")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    if not (args.data_dir / TASKS["sst2"][0]).is_file():
        parser.error(f"no SST-2 train file in {args.data_dir}; pass --data-dir")
    wanted = {"sweep": sweep_runs, "final": final_runs, "budget": budget_runs,
              "swept-rates": lambda a: [s for specs in swept_rate_runs(a).values() for s in specs],
              "factors": lambda a: [s for name, s in factor_runs(a).items() if not a.factors or name in a.factors],
              "variants": lambda a: [s for specs in variant_runs(a).values() for s in specs],
              "warmup": lambda a: [s for specs in warmup_runs(a).values() for s in specs],
              "allocation": lambda a: [s for specs in allocation_runs(a).values() for s in specs],
              "pareto": lambda a: pareto_runs(a, a.pooling)}
    todo = [s for section in args.sections if section in wanted for s in wanted[section](args)]
    ensure(list({run_key(s): s for s in todo}.values()), args.data_dir, args.workers)  # one queue
    report(load_cache(), args)


if __name__ == "__main__":
    main()
