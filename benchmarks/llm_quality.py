"""LaMDA, LaMDA++ and LoRA instruction-tuning the embedded SmolLM2-135M-Instruct on real data.

    python benchmarks/llm_quality.py [sweep] [final] [report] [--seeds 3]
    (also: python benchmarks/quality.py llm ...)

Tasks, built from ../shared/data as conversations in the `messages` format (written to a work
folder, never copied into the repository):
  sst2    "Is the sentiment of this movie review phrase positive or negative? ..." -> "positive" / "negative"
  agnews  "Which topic is this news article about: World, Sports, Business or Sci/Tech? ..." -> the label word
Each trains on the task's train file; the score is on VALIDATION_EXAMPLES seeded examples of its
validation file: exact match of the greedy answer (chat_evaluation.normalize) and the perplexity
of the reference answers. The base model's own score is the row "base (no fine-tuning)".

Sections:
  sweep   the rate sweep (SWEEP_RATES, seed 0) on a 90/10 split of SST-2's train file, scored by
          exact match on the 10% (never on the validation file); each method's best rate is what
          `final` uses
  final   LaMDA, LaMDA++ (equal-energy allocation at LaMDA's total rank) and LoRA at the sweep's
          rates, every seed, both tasks
  report  the markdown table (and benchmarks/results/llm_quality.json)

Every run goes through the product's trainer as a child process (its peak RSS from os.wait4).
Runs are cached in benchmarks/results/llm_quality_runs.jsonl, keyed by their settings.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CACHE = RESULTS / "llm_quality_runs.jsonl"
SOURCE = "smollm2"
METHODS = ("lamda", "lamda++", "lora")
QUESTIONS = {
    "sst2": ("Is the sentiment of this movie review phrase positive or negative? Answer with one word.\n\n{text}",
             {"0": "negative", "1": "positive"}),
    "agnews": ("Which topic is this news article about: World, Sports, Business or Sci/Tech? Answer with the topic "
               "only.\n\n{text}", None),
}
FILES = {"sst2": ("sst2_phrases_train.tsv", "sst2_phrases_validation.tsv"),
         "agnews": ("agnews_train.tsv", "agnews_validation.tsv")}
# tokens per example: the rendered SST-2 question fits in 96 tokens, 99% of AG News's in 160
SEQ_LEN = {"sst2": 96, "agnews": 160}
STEPS = {"sst2": 40, "agnews": 30}
BATCH = 8
VALIDATION_EXAMPLES = 100
# two rates a method (2 cores): LaMDA's MiniLM default 3e-3 and the next lower; LoRA's 1e-3 and the next lower
SWEEP_RATES = {"lamda": (1e-3, 3e-3), "lora": (3e-4, 1e-3)}


def write_task(task: str, data_dir: Path, out: Path) -> dict[str, Path]:
    """The task's conversations: train, split_train / split_validation (90/10 of train, seeded),
    validation (VALIDATION_EXAMPLES seeded rows of the validation file)."""
    question, names = QUESTIONS[task]

    def read(name: str) -> list[dict]:
        with open(data_dir / name, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        text = "sentence" if "sentence" in rows[0] else "text"
        return [{"messages": [{"role": "user", "content": question.format(text=r[text].strip())},
                              {"role": "assistant", "content": names[r["label"]] if names else r["label"]}]}
                for r in rows]

    train, validation = read(FILES[task][0]), read(FILES[task][1])
    order = list(range(len(train)))
    random.Random(0).shuffle(order)
    cut = len(order) // 10
    parts = {"train": train, "split_train": [train[i] for i in order[cut:]],
             "split_validation": [train[i] for i in order[:cut]][:VALIDATION_EXAMPLES],
             "validation": random.Random(0).sample(validation, VALIDATION_EXAMPLES)}
    paths = {}
    for name, rows in parts.items():
        paths[name] = out / f"{task}_{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def run_key(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)


def load_cache() -> dict[str, dict]:
    if not CACHE.is_file():
        return {}
    rows = [json.loads(line) for line in CACHE.read_text().splitlines() if line.strip()]
    return {run_key(row["spec"]): row for row in rows}


def train(spec: dict, paths: dict[str, Path], work: Path) -> dict:
    """One run through the product's trainer, then its exact match and answer perplexity."""
    import lamda_core as lc
    from lamda_core.adapter.config import LamdaConfig
    from lamda_core.methods import get_method
    from lamda_core.runs.config import TrainConfig
    from lamda_core.runs.folder import create_run, read_metrics
    from lamda_core.use.inference import load_run

    split = spec["split"]
    train_file = paths["split_train" if split else "train"]
    scored = paths["split_validation" if split else "validation"]
    method = spec["method"]
    adapter = get_method(method).adapter_config()
    if method == "lamda++":
        ranks = lc.allocate_ranks(lc.scan_spectra(SOURCE), base_rank=adapter.rank).rank_pattern
        adapter = LamdaConfig(**{**adapter.to_dict(), "rank_pattern": ranks})
    folder = Path(tempfile.mkdtemp(dir=work)) / "run"
    steps = spec["steps"]
    create_run(TrainConfig(source=SOURCE, task="causal-lm", method=method, adapter=adapter, train_data=str(train_file),
                           validation_data=str(scored), learning_rate=spec["learning_rate"], max_steps=steps,
                           batch_size=BATCH, seq_len=spec["seq_len"], seed=spec["seed"], eval_interval=steps,
                           checkpoint_interval=10 * steps), folder)
    with open(folder / "train.log", "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "lamda_core.training.trainer", str(folder)], stdout=log,
                                 stderr=subprocess.STDOUT, env={**os.environ, "TQDM_DISABLE": "1"})
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"run {run_key(spec)} failed: {(folder / 'status.json').read_text()}")
    metrics = read_metrics(folder)
    summary = json.loads((folder / "summary.json").read_text())  # the trainer's answer loss on the scored file
    score = {**score_model(load_run(folder), scored, with_loss=False), "perplexity": summary["eval_perplexity"]}
    # the median step (not the mean): an evaluation, a checkpoint or a paused machine stretches single steps
    per_step = statistics.median(b["elapsed"] - a["elapsed"] for a, b in zip(metrics, metrics[1:]))
    return {**score, "seconds_per_step": per_step, "tokens_per_second": score["mean_tokens"] * BATCH / per_step,
            "adapter_average": statistics.mean(r["adapter_parameters"] for r in metrics),
            "trainable_start": metrics[0]["trainable_parameters"], "trainable_end": metrics[-1]["trainable_parameters"],
            "peak_rss_mib": usage.ru_maxrss / 1024}


def score_model(loaded, path: Path, with_loss: bool = True) -> dict:
    """Exact match of greedy answers on ``path``, the mean rendered length, and (``with_loss``)
    the perplexity of the reference answers (a trained run has it from its own evaluation)."""
    from lamda_core.data.chat import encode_conversation, read_conversations
    from lamda_core.training.passes import answer_loss, perplexity
    from lamda_core.use.chat_evaluation import exact_match, greedy_answers

    conversations = read_conversations(path)
    examples = [encode_conversation(loaded.tokenizer, c, 512)[0] for c in conversations]
    answers = greedy_answers(loaded, conversations)
    correct = [exact_match(a, c[-1]["content"]) for a, c in zip(answers, conversations)]
    score = {"exact_match": sum(correct) / len(correct),
             "mean_tokens": statistics.mean(len(e.input_ids) for e in examples)}
    if with_loss:
        score["perplexity"] = perplexity(answer_loss(loaded.model, examples, loaded.tokenizer.pad_token_id))
    return score


def base_score(task: str, paths: dict[str, Path]) -> dict:
    import lamda_core as lc
    from lamda_core.use.inference import RunModel

    model, tokenizer = lc.load_model(SOURCE, task="causal-lm")
    base = RunModel("base", "causal-lm", model.eval(), tokenizer, None, 512, "base", 0)
    return score_model(base, paths["validation"])


def ensure(specs: list[dict], tasks: dict, work: Path) -> dict[str, dict]:
    cache = load_cache()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        key = run_key(spec)
        if key in cache:
            continue
        print(f"training {key}", flush=True)
        result = train(spec, tasks[spec["task"]], work) if spec["method"] != "base" else base_score(
            spec["task"], tasks[spec["task"]])
        row = {"spec": spec, "result": result}
        with open(CACHE, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        cache[key] = row
        print(f"  exact match {result['exact_match']:.3f}", flush=True)
    return cache


def spec(task: str, method: str, rate: float | None, seed: int, split: bool) -> dict:
    return {"task": task, "method": method, "learning_rate": rate, "seed": seed, "split": split,
            "steps": STEPS[task], "seq_len": SEQ_LEN[task], "batch": BATCH, "examples": VALIDATION_EXAMPLES}


def sweep_specs() -> list[dict]:
    return [spec("sst2", m, rate, 0, True) for m, rates in SWEEP_RATES.items() for rate in rates]


def best_rates(cache: dict) -> dict[str, float]:
    """Each swept method's rate with the highest exact match on the split (LaMDA++ takes LaMDA's)."""
    best = {}
    for method, rates in SWEEP_RATES.items():
        scores = {r: cache[run_key(spec("sst2", method, r, 0, True))]["result"]["exact_match"]
                  for r in rates if run_key(spec("sst2", method, r, 0, True)) in cache}
        if scores:
            best[method] = max(scores, key=scores.get)
    if "lamda" in best:
        best["lamda++"] = best["lamda"]
    return best


def final_specs(cache: dict, seeds: int, tasks: list[str]) -> list[dict]:
    from lamda_core.methods import get_method

    rates = best_rates(cache)
    specs = [spec(t, "base", None, 0, False) for t in tasks]
    return specs + [spec(t, m, rates.get(m, get_method(m).default_learning_rate), seed, False)
                    for t in tasks for seed in range(seeds) for m in METHODS]


def mean_sd(values: list[float], scale: float = 100) -> str:
    if len(values) == 1:
        return f"{scale * values[0]:.1f}"
    return f"{scale * statistics.mean(values):.1f} ± {scale * statistics.stdev(values):.1f}"


def report(cache: dict, seeds: int, tasks: list[str]) -> None:
    sweep = [(s["method"], s["learning_rate"], cache[run_key(s)]["result"]["exact_match"])
             for s in sweep_specs() if run_key(s) in cache]
    if sweep:
        print("\nrate sweep (SST-2 train split, exact match on its 10%, seed 0)")
        print("| method | rate | exact match % |\n|---|---:|---:|")
        for method, rate, score in sweep:
            print(f"| {method} | {rate:g} | {100 * score:.1f} |")
    table = {}
    print("\n| method | " + " | ".join(f"{t} exact match %" for t in tasks)
          + " | answer perplexity (sst2) | adapter params (averaged) | peak RSS sst2 (MiB) | tokens/s sst2 |")
    print("|---|" + "---:|" * (len(tasks) + 4))
    for method in ("base", *METHODS):
        rows = {t: [cache[run_key(s)]["result"] for s in final_specs(cache, seeds, [t])
                    if s["method"] == method and run_key(s) in cache] for t in tasks}
        if not any(rows.values()):
            continue
        first = rows[tasks[0]]
        table[method] = {t: [r["exact_match"] for r in rows[t]] for t in tasks}
        cells = [mean_sd(table[method][t]) if rows[t] else "-" for t in tasks]
        ppl = f"{statistics.mean(r['perplexity'] for r in first):.3f}" if first else "-"
        if method == "base":
            print(f"| base (no fine-tuning) | {' | '.join(cells)} | {ppl} | 0 | - | - |")
            continue
        print(f"| {method} | {' | '.join(cells)} | {ppl} | {statistics.mean(r['adapter_average'] for r in first):,.0f}"
              f" | {statistics.mean(r['peak_rss_mib'] for r in first):,.0f}"
              f" | {statistics.mean(r['tokens_per_second'] for r in first):,.0f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "llm_quality.json").write_text(json.dumps({"rates": best_rates(cache), "exact_match": table}, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", default=["sweep", "final", "report"],
                        choices=("sweep", "final", "report"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", default=["sst2", "agnews"], choices=list(QUESTIONS))
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args(argv)
    if not (args.data_dir / FILES["sst2"][0]).is_file():
        parser.error(f"no SST-2 train file in {args.data_dir}; pass --data-dir")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        tasks = {t: write_task(t, args.data_dir, work) for t in QUESTIONS}
        cache = load_cache()
        if "sweep" in args.sections:
            cache = ensure(sweep_specs(), tasks, work)
        if "final" in args.sections:
            cache = ensure(final_specs(cache, args.seeds, args.tasks), tasks, work)
        report(cache, args.seeds, args.tasks)


if __name__ == "__main__":
    main()
