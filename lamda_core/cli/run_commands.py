"""`lamda train / compare / sweep / resume / stop / runs`: runs as folders, alone or in groups, watched
to the end."""
from __future__ import annotations

import sys

from .. import choices
from ..methods import get_method, method_names
from .common import (
    add_run_arguments,
    format_count,
    per_method,
    run_config,
)


def _train(args) -> None:
    from ..runs.folder import create_run

    config = run_config(args, args.method, learning_rate=args.lr, head_learning_rate=args.head_lr,
                         core_learning_rate=args.core_lr, max_steps=args.max_steps, epochs=args.epochs)
    notes = []
    folder = create_run(config, args.output, notes)
    for note in notes:
        print(f"note: {note}")
    _launch(folder, args.background, args.processes)


def _launch(folder, background: bool, processes: int) -> None:
    from ..runs.folder import read_status, start_run
    from ..training.trainer import run

    if background or processes > 1:
        process = start_run(folder, processes)
        if background:
            print(f"run started in the background (pid {process.pid}): {folder}")
            return
        process.wait()
        state = read_status(folder)["state"]
    else:
        state = run(folder)
    status = read_status(folder)
    print(f"run {state}: {folder}" + (f" ({status['reason']})" if status.get("reason") else ""))
    if state == "failed":
        raise SystemExit(1)


def _compare(args) -> None:
    from ..runs.compare import create_comparison
    from ..runs.folder import read_config, start_run

    if args.show:
        _print_comparison(args.root, args.show, args.json)
        return
    base = run_config(args, choices.DEFAULT_METHOD, max_steps=args.steps)
    folders = create_comparison(base, args.methods, args.root, args.match, args.name)
    name = read_config(folders[0]).comparison
    print(f"comparison {name}: {len(folders)} runs queued in {args.root}, trained one after another: "
          + ", ".join(f"{read_config(f).method} (rank {read_config(f).rank_label})" for f in folders), flush=True)
    for folder in folders:
        start_run(folder, warm=True)
    if args.background:
        print(f"started in the background; see it with `lamda compare --show {name} --root {args.root}`")
        return
    _watch(folders)
    _print_comparison(args.root, name, args.json)


def _sweep(args) -> None:
    from ..runs.folder import read_config, start_run
    from ..runs.sweep import best_settings, create_best_comparison, create_sweep

    if args.show:
        _print_sweep(args.root, args.show, args.json)
        return
    base = run_config(args, choices.DEFAULT_METHOD, max_steps=args.steps)
    folders = create_sweep(base, args.methods, args.root, args.lrs, args.sweep_ranks, args.name)
    name = read_config(folders[0]).comparison
    print(f"sweep {name}: {len(folders)} runs queued in {args.root}, each judged on a seeded 10% split of "
          f"{args.data} (never on a validation file): " + ", ".join(f.name[len(name) + 1:] for f in folders),
          flush=True)
    for folder in folders:
        start_run(folder, warm=True)
    if args.background:
        print(f"started in the background; see it with `lamda sweep --show {name} --root {args.root}`")
        return
    _watch(folders, "sweep")
    _print_sweep(args.root, name, args.json)
    if args.validation and best_settings(args.root, name):
        compared = create_best_comparison(args.root, name, args.validation)
        print(f"\ncomparison {name}-best: each method at its best setting on the whole of {args.data}, "
              f"evaluated on {args.validation}", flush=True)
        for folder in compared:
            start_run(folder, warm=True)
        _watch(compared)
        _print_comparison(args.root, f"{name}-best", None)


def _print_sweep(root, name: str, json_path: str | None) -> None:
    from ..runs.sweep import best_settings

    _print_comparison(root, name, json_path)
    best = best_settings(root, name)
    print("\nbest setting per method (on the train file's split): " + ("; ".join(
        f"{method} lr {row['learning_rate']:g} rank {row['rank']}" for method, row in best.items()) or "none finished"))


def _watch(folders, what: str = "comparison") -> None:
    """One progress bar over every run's steps, naming the run training now, until none is queued
    or training; Ctrl-C asks every active run to checkpoint and stop (each resumes with `lamda resume`)."""
    import time

    from tqdm import tqdm

    from ..runs.folder import RunFolder

    runs = [RunFolder(f) for f in folders]
    bar = tqdm(total=sum(run.config.max_steps for run in runs), desc=what, unit="step", file=sys.stderr)
    try:
        while True:
            statuses = [run.status() for run in runs]
            bar.update(sum(s.get("step") or 0 for s in statuses) - bar.n)
            now = [f"{run.config.method} {s['state']}" for run, s in zip(runs, statuses)
                   if s["state"] in ("running", "stopping")]
            if (now[0] if now else "") != bar.postfix:  # redraw on a change only (a log file stays short)
                bar.set_postfix_str(now[0] if now else "")
            if not any(run.is_live() for run in runs):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        for run in runs:
            if run.is_active():
                run.request_stop()
        print("\nstop requested for every active run; resume each with `lamda resume RUN`", file=sys.stderr)
        raise SystemExit(130)
    finally:
        bar.close()
    for run, status in zip(runs, statuses):
        if status["state"] != "finished":
            print(f"{run.name}: {status['state']}" + (f" ({status['reason']})" if status.get("reason") else ""))


def _print_comparison(root, name: str, json_path: str | None) -> None:
    import json

    from ..runs.compare import COST_AXES, comparison_runs, comparison_table, quality_metric
    from ..runs.folder import read_config

    metric = quality_metric(read_config(comparison_runs(root, name)[0]).task)
    rows = comparison_table(root, name, metric)
    print(f"\ncomparison {name}: final {metric} against averaged trainable parameters; * = on the Pareto front")
    print(f"{'method':<9}{'rank':>10}{'lr':>8}{'state':>10}{metric:>12}{'F1':>8}{'adapter avg':>13}"
          f"{'trainable avg':>15}{'peak MiB':>10}{'seconds':>9}")
    for row in rows:
        value = row[metric]
        shown = "-" if value is None else (f"{100 * value:.1f}%" if metric == "accuracy" else f"{value:.3f}")
        f1 = "-" if row["f1"] is None else f"{100 * row['f1']:.1f}%"
        print(f"{row['method'] + ('*' if row['pareto'] else ''):<9}{row['rank']:>10}{row['learning_rate']:>8g}"
              f"{row['state']:>10}{shown:>12}"
              f"{f1:>8}{format_count(row['adapter_average']):>13}{format_count(row['trainable_average']):>15}"
              f"{format_count(row['peak_memory_mib']):>10}{format_count(row['seconds'], '.1f'):>9}")
    kinds = {row["peak_memory_kind"] for row in rows if row["peak_memory_kind"]}
    print(f"peak MiB: {', '.join(sorted(kinds)) or 'not recorded'}; front: {COST_AXES['trainable_average']}")
    if json_path:
        with open(json_path, "w") as handle:
            json.dump({"comparison": name, "metric": metric, "x": "trainable_average", "runs": rows}, handle, indent=1)
        print(f"table written to {json_path}")


def _resume(args) -> None:
    from ..runs.folder import RunFolder

    run = RunFolder(args.run)
    run.config  # a config this install cannot read (e.g. an unknown method) is refused before anything changes
    if run.status()["state"] == "stopping":
        print(f"waiting for {args.run} to checkpoint and stop ...", flush=True)
        run.wait_for_stop()
    checkpoint = run.resume_checkpoint()  # refuses a broken or changed run before starting
    run.clear_stop_request()
    print(f"resuming {args.run} from " + (checkpoint.name if checkpoint else "the start"))
    _launch(args.run, args.background, args.processes)


def _stop(args) -> None:
    from ..runs.folder import request_stop

    request_stop(args.run)
    print(f"stop requested: {args.run} checkpoints and stops at its next step")


def _runs(args) -> None:
    from ..runs.folder import RunFolder, list_runs

    print(f"{'run':<32} {'state':<9} {'method':<8} {'step':>9}  final eval")
    for folder in list_runs(args.root):
        run = RunFolder(folder)
        status, config = run.status(), run.config
        final = ", ".join(f"{k[5:]} {v:.4g}" for k, v in run.last_eval().items())
        print(f"{folder.name:<32} {status['state']:<9} {config.method:<8} "
              f"{status.get('step', 0):>4}/{status.get('total_steps') or '?':<4}  {final}")


def add_training_commands(commands) -> None:
    """train and compare: create run folders and train them."""
    train = commands.add_parser("train", help="a short local fine-tune as a resumable run folder")
    add_run_arguments(train)
    train.add_argument("--method", default=choices.DEFAULT_METHOD, choices=method_names())
    train.add_argument("--ranks", help="per-matrix ranks from `lamda allocate` (for lamda++)")
    train.add_argument("--dropout", type=float, default=None,
                       help="adapter dropout (default: " + per_method(lambda m: m.default_dropout) + ")")
    train.add_argument("--lr", type=float, default=None,
                       help="default: " + per_method(lambda m: m.default_learning_rate))
    train.add_argument("--head-lr", type=float, default=None,
                       help="the task head's rate (default: "
                            + per_method(lambda m: m.default_head_learning_rate, "as --lr") + ")")
    train.add_argument("--core-lr", type=float, default=None,
                       help="LaMDA's r x r core S (default: --lr, which B then uses alone)")
    train.add_argument("--max-steps", type=int)
    train.add_argument("--epochs", type=float, help="used when --max-steps is not given (default 3)")
    train.add_argument("--output", required=True, help="the run folder to create")
    train.add_argument("--background", action="store_true", help="start a separate process and return")
    train.add_argument("--processes", type=int, default=1, help="processes under accelerate launch (CPU: gloo)")
    train.set_defaults(handler=_train)

    compare = commands.add_parser("compare", help="train several methods on the same data with matched budgets "
                                  "and compare quality, parameters, memory and time")
    add_run_arguments(compare)
    compare.add_argument(
        "--methods",
        nargs="+",
        default=list(choices.DEFAULT_COMPARE_METHODS),
        choices=method_names(),
        help="the methods to train (default: %(default)s; add full for the full fine-tuning reference)",
    )
    compare.add_argument("--match", default=choices.COMPARE_MATCHES[0], choices=choices.COMPARE_MATCHES,
                         help="defaults: LoRA at its default rank, LaMDA at --rank (default: its own), LaMDA++ at "
                              "LaMDA's total rank; rank: every adapter at --rank (LaMDA++ at the same total rank); "
                              "parameters: LoRA's rank chosen to match LaMDA's averaged trainable parameters")
    compare.add_argument("--steps", type=int, default=choices.DEFAULT_STEPS, help="optimizer steps of every run")
    compare.add_argument("--root", default="runs", help="the runs folder to create the runs in")
    compare.add_argument("--name", help="the comparison's name (default: compare-<date>-<time>)")
    compare.add_argument("--background", action="store_true", help="queue the runs and return")
    compare.add_argument("--show", metavar="NAME", help="print the table of an existing comparison and exit")
    compare.add_argument("--json", help="write the table as JSON to this file")
    compare.set_defaults(handler=_compare)

    sweep = commands.add_parser("sweep", help="a grid of learning rates and ranks per method, judged on a split of "
                                "the train file; with --validation, each method's best then compared on it")
    add_run_arguments(sweep)
    sweep.add_argument("--methods", nargs="+", default=list(choices.DEFAULT_SWEEP_METHODS),
                       choices=[m for m in method_names() if not get_method(m).needs_rank_pattern],
                       help="the methods to sweep (default: %(default)s)")
    sweep.add_argument("--lrs", nargs="+", type=float, help="learning rates (default: each method's own)")
    sweep.add_argument("--sweep-ranks", nargs="+", type=int, help="ranks (default: each method's own)")
    sweep.add_argument("--steps", type=int, default=choices.DEFAULT_STEPS, help="optimizer steps of every run")
    sweep.add_argument("--root", default="runs", help="the runs folder to create the runs in")
    sweep.add_argument("--name", help="the sweep's name (default: sweep-<date>-<time>)")
    sweep.add_argument("--background", action="store_true", help="queue the runs and return")
    sweep.add_argument("--show", metavar="NAME", help="print the table and best settings of a sweep and exit")
    sweep.add_argument("--json", help="write the sweep's table as JSON to this file")
    sweep.set_defaults(handler=_sweep)


def add_run_folder_commands(commands) -> None:
    """resume, stop, runs: act on existing run folders."""
    resume = commands.add_parser("resume", help="resume a stopped, failed or killed run from its last checkpoint")
    resume.add_argument("run")
    resume.add_argument("--background", action="store_true")
    resume.add_argument("--processes", type=int, default=1)
    resume.set_defaults(handler=_resume)

    stop = commands.add_parser("stop", help="ask a running run to checkpoint and stop")
    stop.add_argument("run")
    stop.set_defaults(handler=_stop)

    runs = commands.add_parser("runs", help="list the runs in a folder")
    runs.add_argument("root", nargs="?", default="runs")
    runs.set_defaults(handler=_runs)
