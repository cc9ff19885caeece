"""The `lamda` command line."""
from __future__ import annotations

import argparse
import sys
from collections import Counter

from . import choices
from .errors import LamdaError
from .methods import display_order, get_method, method_names


def _matrices(args) -> None:
    from .models.loading import load_model
    from .models.targets import adaptable_matrices, default_targets

    model, _ = load_model(args.source, task=args.task)
    defaults = {m.name for m in default_targets(model)}
    matrices = adaptable_matrices(model)
    print(f"{'name':<52} {'layer':>5} {'kind':<8} {'d_out':>6} {'d_in':>6} {'type':<7} default")
    for m in matrices:
        layer = "-" if m.layer is None else m.layer
        print(f"{m.name:<52} {layer:>5} {m.kind:<8} {m.d_out:>6} {m.d_in:>6} {m.module_type:<7} "
              f"{'yes' if m.name in defaults else ''}")
    kinds = Counter(m.kind for m in matrices if m.name in defaults)
    print(f"\n{len(defaults)} default targets: " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())))


def _progress_bar(description: str):
    """A tqdm bar driven by the (done, total, name) progress callback of long scans."""
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="matrix", file=sys.stderr)

    def update(done: int, total: int, name: str) -> None:
        bar.total = total
        bar.set_postfix_str(name[-40:], refresh=False)
        bar.update(done - bar.n)
        if done == total:
            bar.close()
    return update


def _format_number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _spectrum(args) -> None:
    from .spectra.spectrum import scan_spectra

    report = scan_spectra(args.source, top_k=args.top_k or None, device=args.device, cache=not args.no_cache,
                          progress=_progress_bar("scanning spectra"))
    rows = report.rows(base_rank=args.base_rank)
    energy = f"energy_at_{args.base_rank}"
    print(f"{'name':<48} {'layer':>5} {'kind':<7} {'shape':>11} {'sigma_1':>9} {'||W||_F':>9} "
          f"{'stable_r':>9} {'eff_rank':>9} {'cond':>9} {'E(' + str(args.base_rank) + ')':>7} {'alpha':>7}")
    for row in rows:
        layer = "-" if row["layer"] is None else row["layer"]
        print(f"{row['name']:<48} {layer:>5} {row['kind']:<7} {row['d_out']:>5}x{row['d_in']:<5} "
              f"{_format_number(row['sigma_1']):>9} {_format_number(row['frobenius']):>9} "
              f"{_format_number(row['stable_rank']):>9} {_format_number(row['effective_rank']):>9} "
              f"{_format_number(row['condition_number']):>9} {row[energy]:>7.3f} {_format_number(row['alpha']):>7}")
    print(f"\n{len(rows)} matrices, {report.cache_hits} from the cache"
          + (f", top {args.top_k} singular values each" if args.top_k else ", full spectra"))
    if args.json:
        report.to_json(args.json)
        print(f"spectra written to {args.json}")


def _allocate(args) -> None:
    from .spectra.allocation import allocate_ranks
    from .spectra.spectrum import scan_spectra

    top_k = args.top_k if args.top_k is not None else (args.r_max or 4 * args.base_rank)
    report = scan_spectra(args.source, top_k=top_k or None, progress=_progress_bar("scanning spectra"))
    budget, kind = (args.budget_params, "params") if args.budget_params is not None else (args.budget, "rank")
    importance = None
    if args.strategy == "gradient":
        if not args.data:
            raise LamdaError("--strategy gradient allocates from your task's gradient: pass --data TRAIN_FILE")
        from .spectra.importance import gradient_importance

        importance = gradient_importance(args.source, args.data, args.text_column, args.label_column)
    allocation = allocate_ranks(report, args.base_rank, budget=budget, budget_kind=kind, strategy=args.strategy,
                                r_min=args.r_min, r_max=args.r_max, multiple=args.multiple, importance=importance)
    print(f"{'name':<48} {'rank':>5} {'uniform':>7} {'E kept':>7} {'E unif':>7}")
    for name, rank in allocation.ranks.items():
        print(f"{name:<48} {rank:>5} {allocation.base_rank:>7} {allocation.energy_kept[name]:>7.3f} "
              f"{allocation.uniform_energy[name]:>7.3f}")
    print(
        f"\n{allocation.strategy}: total rank {allocation.total_rank} "
        f"(uniform {allocation.base_rank * len(allocation.ranks)}), "
        f"trainable adapter parameters {allocation.parameters:,} (uniform {allocation.uniform_parameters:,}), "
        f"threshold {allocation.threshold:.4g}"
    )
    allocation.to_json(args.json)
    print(f"ranks written to {args.json}")


def _mib(value: float) -> str:
    return f"{value / 2 ** 20:,.2f}"


def _fitted(query, args):
    """``query`` at its method's default rank capped to what the model allows (VeRA's 256 on a
    64-wide model), when no --rank was given; a note says so."""
    from .runs.preflight import fitted_default_rank

    if args.rank is not None or query.rank_pattern:
        return query
    rank, note = fitted_default_rank(query.method, args.source, args.task)
    if note:
        print(f"note: {note}")
    return query.replace(rank=rank) if rank else query


def _estimate(args) -> None:
    import json

    from .costs.memory import CostBreakdown
    from .planning.estimate import estimate_each
    from .planning.query import CostQuery

    rank_pattern = _read_ranks(args.ranks)
    query = CostQuery(args.source, args.method, args.rank, rank_pattern, batch_size=args.batch, seq_len=args.seq,
                      dtype=args.dtype, optimizer=args.optimizer, gradient_checkpointing=args.gradient_checkpointing,
                      task=args.task, dropout=args.dropout, device=args.device)
    methods = [args.method] + [m for m in display_order()
                               if m != args.method and (rank_pattern or not get_method(m).needs_rank_pattern)]
    estimates, left_out = estimate_each({m: _fitted(query.replace(method=m), args) for m in methods},
                                        required=args.method)
    for m, error in left_out.items():  # a method this model cannot take (PSOFT on GPT-2's Conv1D)
        print(f"note: {m} left out: {error}")
    columns = {f"{m} est": e for m, e in estimates.items()}
    if args.measure:
        from .planning.measure import measure_costs

        measured = measure_costs(_fitted(query, args))
        columns = {f"{args.method} est": estimates[args.method], f"{args.method} measured": measured,
                   **{k: v for k, v in columns.items() if not k.startswith(args.method + " ")}}
    names = list(columns)
    print(f"training memory in MiB, batch {args.batch} x sequence {args.seq}, {args.dtype}, {args.optimizer}")
    print(f"{'component':<22}" + "".join(f"{n:>18}" for n in names))
    print(f"{'peak':<22}" + "".join(f"{_mib(columns[n].peak):>18}" for n in names))
    print(f"{'peak in':<22}" + "".join(f"{columns[n].peak_phase or '-':>18}" for n in names))
    for component in CostBreakdown.COMPONENTS + ("total",):
        label = "census total" if component == "total" else component
        print(f"{label:<22}" + "".join(f"{_mib(getattr(columns[n], component)):>18}" for n in names))
    for counter in ("trainable_start", "trainable_end", "trainable_average", "adapter_start", "adapter_end"):
        print(f"{counter:<22}" + "".join(f"{getattr(columns[n], counter):>18,.0f}" for n in names))
    if args.measure:
        estimate, measured = estimates[args.method], columns[f"{args.method} measured"]
        errors = {c: (getattr(estimate, c) - getattr(measured, c)) / getattr(measured, c)
                  for c in ("peak",) + CostBreakdown.COMPONENTS + ("total",) if getattr(measured, c)}
        print("relative error of the estimate: " + ", ".join(f"{c} {e:+.1%}" for c, e in errors.items()))
        print(f"process resident memory grew {_mib(measured.rss_growth).strip()} MiB during the measured step")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({n: b.as_dict() for n, b in columns.items()}, handle, indent=1)
        print(f"breakdown written to {args.json}")


def _read_ranks(path: str | None) -> dict | None:
    """Per-matrix ranks from a `lamda allocate` file, or None."""
    if not path:
        return None
    from pathlib import Path

    from .spectra.allocation import Allocation

    if not Path(path).is_file():
        raise LamdaError(f"no such ranks file: {path} (write one with `lamda allocate ... --json {path}`)")
    return Allocation.from_json(path).rank_pattern


def _run_config(args, method: str, **changes):
    """A TrainConfig from the options `train` and `compare` share (_add_run_arguments)."""
    from .runs.config import TrainConfig
    from .runs.preflight import fitted_default_rank

    rank, rank_pattern = args.rank, _read_ranks(getattr(args, "ranks", None))
    if rank is None and not rank_pattern:
        rank, note = fitted_default_rank(method, args.source, args.task)
        if note:
            print(f"note: {note}")
    spec = get_method(method)
    adapter = spec.adapter_config(
        rank, rank_pattern, getattr(args, "dropout", None), alpha=args.alpha,
        init=args.init, freeze_fraction=args.freeze_fraction, freeze_rule=args.freeze_rule,
        trainable_modules=args.head_modules)
    adapter, note = spec.with_ranks(adapter, args.source)  # LaMDA++ without --ranks: from the spectra
    if note:
        print(f"note: {note}")
    return TrainConfig(
        source=args.source, task=args.task, train_data=args.data, validation_data=args.validation,
        text_column=args.text_column, label_column=args.label_column, method=method, adapter=adapter,
        lr_schedule=args.schedule, warmup_fraction=args.warmup, weight_decay=args.weight_decay, batch_size=args.batch,
        grad_accumulation=args.accumulation, eval_interval=args.eval_interval,
        checkpoint_interval=args.checkpoint_interval, seq_len=args.seq, dtype=args.dtype, seed=args.seed,
        pooling=args.pooling, **changes)


def _train(args) -> None:
    from .runs.folder import create_run

    config = _run_config(args, args.method, learning_rate=args.lr, head_learning_rate=args.head_lr,
                         core_learning_rate=args.core_lr, max_steps=args.max_steps, epochs=args.epochs)
    notes = []
    folder = create_run(config, args.output, notes)
    for note in notes:
        print(f"note: {note}")
    _launch(folder, args.background, args.processes)


def _launch(folder, background: bool, processes: int) -> None:
    from .runs.folder import read_status, start_run
    from .training.trainer import run

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
    from .runs.compare import create_comparison
    from .runs.folder import read_config, start_run

    if args.show:
        _print_comparison(args.root, args.show, args.json)
        return
    base = _run_config(args, choices.DEFAULT_METHOD, max_steps=args.steps)
    folders = create_comparison(base, args.methods, args.root, args.match, args.name)
    name = read_config(folders[0]).comparison
    print(f"comparison {name}: {len(folders)} runs queued in {args.root}, trained one after another: "
          + ", ".join(f"{read_config(f).method} (rank {read_config(f).rank_label})" for f in folders), flush=True)
    for folder in folders:
        start_run(folder)
    if args.background:
        print(f"started in the background; see it with `lamda compare --show {name} --root {args.root}`")
        return
    _watch(folders)
    _print_comparison(args.root, name, args.json)


def _sweep(args) -> None:
    from .runs.folder import read_config, start_run
    from .runs.sweep import best_settings, create_best_comparison, create_sweep

    if args.show:
        _print_sweep(args.root, args.show, args.json)
        return
    base = _run_config(args, choices.DEFAULT_METHOD, max_steps=args.steps)
    folders = create_sweep(base, args.methods, args.root, args.lrs, args.sweep_ranks, args.name)
    name = read_config(folders[0]).comparison
    print(f"sweep {name}: {len(folders)} runs queued in {args.root}, each judged on a seeded 10% split of "
          f"{args.data} (never on a validation file): " + ", ".join(f.name[len(name) + 1:] for f in folders),
          flush=True)
    for folder in folders:
        start_run(folder)
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
            start_run(folder)
        _watch(compared)
        _print_comparison(args.root, f"{name}-best", None)


def _print_sweep(root, name: str, json_path: str | None) -> None:
    from .runs.sweep import best_settings

    _print_comparison(root, name, json_path)
    best = best_settings(root, name)
    print("\nbest setting per method (on the train file's split): " + ("; ".join(
        f"{method} lr {row['learning_rate']:g} rank {row['rank']}" for method, row in best.items()) or "none finished"))


def _watch(folders, what: str = "comparison") -> None:
    """One progress bar over every run's steps, naming the run training now, until none is queued
    or training; Ctrl-C asks every active run to checkpoint and stop (each resumes with `lamda resume`)."""
    import time

    from tqdm import tqdm

    from .runs.folder import RunFolder

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

    from .runs.compare import COST_AXES, comparison_runs, comparison_table, quality_metric
    from .runs.folder import read_config

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
              f"{f1:>8}{_format_count(row['adapter_average']):>13}{_format_count(row['trainable_average']):>15}"
              f"{_format_count(row['peak_memory_mib']):>10}{_format_count(row['seconds'], '.1f'):>9}")
    kinds = {row["peak_memory_kind"] for row in rows if row["peak_memory_kind"]}
    print(f"peak MiB: {', '.join(sorted(kinds)) or 'not recorded'}; front: {COST_AXES['trainable_average']}")
    if json_path:
        with open(json_path, "w") as handle:
            json.dump({"comparison": name, "metric": metric, "x": "trainable_average", "runs": rows}, handle, indent=1)
        print(f"table written to {json_path}")


def _format_count(value, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _resume(args) -> None:
    from .runs.folder import RunFolder

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
    from .runs.folder import request_stop

    request_stop(args.run)
    print(f"stop requested: {args.run} checkpoints and stops at its next step")


def _runs(args) -> None:
    from .runs.folder import RunFolder, list_runs

    print(f"{'run':<32} {'state':<9} {'method':<8} {'step':>9}  final eval")
    for folder in list_runs(args.root):
        run = RunFolder(folder)
        status, config = run.status(), run.config
        final = ", ".join(f"{k[5:]} {v:.4g}" for k, v in run.last_eval().items())
        print(f"{folder.name:<32} {status['state']:<9} {config.method:<8} "
              f"{status.get('step', 0):>4}/{status.get('total_steps') or '?':<4}  {final}")


def _export(args) -> None:
    from .use.export import export_merged

    target = export_merged(args.run, args.merged)
    print(f"merged model written to {target}; load it like this (also in {target / 'README.md'}):")
    card = (target / "README.md").read_text()
    print(card[card.index("```python") + 10:card.rindex("```")].rstrip())


def _fraction_bar(description: str):
    """A tqdm bar driven by a (done, total) progress callback."""
    from tqdm import tqdm

    bar = tqdm(desc=description, file=sys.stderr, unit="ex")

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done == total:
            bar.close()
    return update


def _evaluate(args) -> None:
    from .use.chat_evaluation import ChatReport
    from .use.evaluation import ClassificationReport, evaluate_run, side_by_side, write_report

    reports = []
    for folder in args.runs:
        report = evaluate_run(folder, args.data, args.text_column, args.label_column,
                              progress=_fraction_bar(f"evaluating {folder}"))
        reports.append(report)
        for note in getattr(report, "notes", []):
            print(f"note: {note}")
        if isinstance(report, ClassificationReport):
            _print_classification(report)
        elif isinstance(report, ChatReport):
            _print_chat(report)
        else:
            print(
                f"{report.run} on {report.data} ({report.blocks} blocks): "
                f"perplexity {report.fine_tuned_perplexity:.3f}, "
                f"base model {report.base_perplexity:.3f}"
            )
        suffix = (lambda path: path) if len(args.runs) == 1 else (lambda path: _per_run(path, report.run))
        for path in write_report(report, args.json and suffix(args.json), args.csv and suffix(args.csv)):
            print(f"written: {path}")
    if len(reports) > 1:
        rows = side_by_side(reports)
        print("\nside by side")
        columns = list(rows[0])
        print("".join(f"{c:>16}" if i else f"{c:<32}" for i, c in enumerate(columns)))
        for row in rows:
            print("".join(f"{_cell(row[c]):>16}" if i else f"{row[c]:<32}" for i, c in enumerate(columns)))


def _per_run(path: str, run: str) -> str:
    """report.json -> report-<run>.json: one file per run when several are evaluated."""
    from pathlib import Path

    p = Path(path)
    return str(p.with_name(f"{p.stem}-{run}{p.suffix}"))


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _print_classification(report) -> None:
    print(f"\n{report.run} on {report.data} ({report.examples} examples): accuracy {100 * report.accuracy:.2f}%, "
          f"macro F1 {100 * report.macro_f1:.2f}%")
    print(f"{'class':<20}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}")
    for c in report.per_class:
        print(f"{c['label'][:19]:<20}{c['precision']:>10.3f}{c['recall']:>10.3f}{c['f1']:>10.3f}{c['support']:>9}")
    names = [n[:10] for n in report.label_names]
    print("confusion matrix (rows: true, columns: predicted)")
    print(f"{'':<12}" + "".join(f"{n:>11}" for n in names))
    for name, row in zip(names, report.confusion):
        print(f"{name:<12}" + "".join(f"{v:>11}" for v in row))
    if report.wrong:
        print(f"most confidently wrong ({len(report.wrong)} shown):")
        for w in report.wrong[:10]:
            print(f"  {w['probability']:.3f} {w['predicted']!r} (true {w['true']!r}): {w['text'][:90]}")


def _print_chat(report) -> None:
    print(f"\n{report.run} on {report.data} ({report.examples} conversations): exact match "
          f"{100 * report.exact_match:.1f}% (base {100 * report.base_exact_match:.1f}%), perplexity of the "
          f"answers {report.fine_tuned_perplexity:.3f} (base {report.base_perplexity:.3f})")
    if report.truncated:
        print(f"note: {report.truncated} conversations are longer than the run's sequence length; their loss "
              "counts the answer tokens that fit")
    print(f"worst {min(10, len(report.worst))} of {len(report.worst)} (highest loss per answer token, wrong first):")
    for w in report.worst[:10]:
        mark = "ok " if w["correct"] else "x  "
        print(f"  {mark}{w['answer_loss']:7.3f}  {w['answer'][:40]!r} (reference {w['reference'][:30]!r}): "
              f"{' '.join(w['prompt'].split())[:70]}")


def _predict(args) -> None:
    from .data.reading import read_texts
    from .use.evaluation import prediction_rows, write_csv
    from .use.inference import load_run

    if not args.texts and not args.data:
        raise LamdaError("give texts to classify, or --data FILE")
    loaded = load_run(args.run)
    texts = list(args.texts) + (read_texts(args.data, args.text_column) if args.data else [])
    probabilities = loaded.probabilities(texts, progress=_fraction_bar("predicting") if len(texts) > 64 else None)
    rows = prediction_rows(texts, probabilities, loaded.label_names)
    if args.output:
        write_csv(rows, args.output)
        print(f"{len(rows)} predictions written to {args.output}")
        return
    for row in rows:
        print(f"{row['predicted']} ({100 * row['probability']:.1f}%)  "
              + "  ".join(f"{n} {100 * float(row[f'p({n})']):.1f}%" for n in loaded.label_names) + f"  | {row['text']}")


def _generate(args) -> None:
    from .use.inference import load_base, load_run

    models = [load_run(args.run)] + ([load_base(args.run)] if args.base else [])
    for loaded in models:
        shown = args.prompt if args.raw or not loaded.chat else ""  # a continuation reads on from the prompt
        print(f"{loaded.name}: {shown}", end="", flush=True)
        for piece in loaded.stream(args.prompt, args.max_new_tokens, args.temperature, args.top_p, args.seed,
                                   raw=args.raw):
            print(piece, end="", flush=True)
        print()


def _analyze(args) -> None:
    from .use.analysis import analyze_run

    report = analyze_run(args.run, top_k=args.top_k, intruder_k=args.intruder_k,
                         intruder_threshold=args.intruder_threshold)
    print(f"what fine-tuning changed in {report.run} ({report.method} on {report.source}); dW = W after - W before")
    print(f"{'matrix':<48}{'rank':>6}{'||dW||/||W||':>14}{'in top-r of W':>15}{'sigma_1(dW)':>13}{'eff. rank':>11}"
          f"{'intruders':>11}")
    for m in report.matrices:
        print(f"{m.name:<48}{m.rank:>6}{m.relative_norm:>14.3e}{m.principal_share:>15.3f}{m.update_top_sigma:>13.3e}"
              f"{m.update_effective_rank:>11.2f}{m.intruders:>11}")
    shares = [m.principal_share for m in report.matrices]
    print(
        f"\n{len(shares)} matrices; share of dW inside W's top-r subspaces: "
        f"median {sorted(shares)[len(shares) // 2]:.3f}; intruder dimensions (top {report.intruder_k} singular "
        f"vectors of W', |cos| < {report.intruder_threshold:g} with all of W's): {report.total_intruders} in "
        f"{sum(m.intruders > 0 for m in report.matrices)} matrices"
    )
    if args.json:
        report.to_json(args.json)
        print(f"report written to {args.json}")
    if args.csv:
        with open(args.csv, "w") as handle:
            handle.write(report.to_csv())
        print(f"table written to {args.csv}")


def _doctor(args) -> None:
    from .doctor import run_checks

    checks = run_checks(args.runs)
    for check in checks:
        print(f"{'ok' if check.ok else 'PROBLEM':<8} {check.name:<15} {check.detail}")
        if check.advice:
            print(f"{'':<8} {'':<15} -> {check.advice}")
    problems = [c.name for c in checks if not c.ok]
    print("\n" + ("all checks passed" if not problems else f"{len(problems)} problem(s): {', '.join(problems)}"))
    if problems:
        raise SystemExit(1)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The model, data, adapter and shape options that `train` and `compare` share."""
    parser.add_argument(
        "--source", default="default", help="model: 'default', 'smollm2', 'tiny-llama', 'tiny-gpt2', a folder or hub id"
    )
    parser.add_argument("--task", default="classification", choices=choices.TRAIN_TASKS)
    parser.add_argument("--data", default="demo-sentiment",
                        help="'demo-sentiment', 'demo-corpus', 'demo-chat' or a .csv/.tsv/.jsonl/.parquet file "
                             "(causal-lm: .txt, "
                             "or instruction .jsonl/.parquet: messages, prompt/completion or instruction/output)")
    parser.add_argument("--validation", help="validation file (default: 10%% of the data, seeded)")
    parser.add_argument("--text-column")
    parser.add_argument("--label-column")
    parser.add_argument("--rank", type=int, help="r of every adapted matrix (default: the method's, "
                        + _per_method(lambda m: m.default_rank if m.adapts_matrices else None) + ")")
    parser.add_argument("--alpha", type=float, help=f"update scale s = alpha / r (default: alpha = "
                        f"{choices.DEFAULT_SCALE:g} x rank)")
    parser.add_argument("--init", default=choices.DEFAULT_INIT, choices=choices.INIT_VARIANTS)
    parser.add_argument("--freeze-fraction", type=float, default=choices.DEFAULT_FREEZE_FRACTION)
    parser.add_argument("--freeze-rule", default=choices.DEFAULT_FREEZE_RULE, choices=choices.FREEZE_RULES)
    parser.add_argument("--head-modules", nargs="+", default=None,
                        help="modules trained in full beside the adapter (default: the classification head)")
    parser.add_argument("--schedule", default=choices.DEFAULT_LR_SCHEDULE, choices=choices.LR_SCHEDULES)
    parser.add_argument("--warmup", type=float, default=0.06, help="warm-up fraction of the steps")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=choices.DEFAULT_BATCH_SIZE, help="micro-batch size")
    parser.add_argument("--accumulation", type=int, default=1, help="gradient accumulation steps")
    parser.add_argument("--eval-interval", type=int, default=25)
    parser.add_argument("--checkpoint-interval", type=int, default=25)
    parser.add_argument("--seq", type=int, default=choices.DEFAULT_SEQ_LEN,
                        help="maximum tokens per example (block size for causal-lm)")
    parser.add_argument("--dtype", default="float32", choices=choices.MODEL_DTYPES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pooling", default=choices.DEFAULT_POOLING, choices=choices.POOLINGS,
                        help="classification: the model's own head (cls), the masked mean of the token "
                             "states (mean), or what the model was trained with (auto: mean for MiniLM)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamda", description="LaMDA / LaMDA++ fine-tuning tools")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_commands in (_add_model_commands, _add_estimate_command, _add_training_commands, _add_run_folder_commands,
                         _add_use_commands):
        add_commands(commands)
    return parser


def _add_model_commands(commands) -> None:
    """matrices, spectrum, allocate: what a model holds and LaMDA++'s ranks from it."""
    matrices = commands.add_parser("matrices", help="list the adaptable matrices of a model")
    matrices.add_argument("source", nargs="?", default="default",
                          help="'default', 'smollm2', 'tiny-llama', 'tiny-gpt2', a local folder or a hub id")
    matrices.add_argument("--task", default="classification", choices=choices.TASKS)
    matrices.set_defaults(handler=_matrices)

    spectrum = commands.add_parser("spectrum", help="singular-value spectra of every adaptable matrix")
    spectrum.add_argument("source", nargs="?", default="default")
    spectrum.add_argument("--top-k", type=int, default=None, help="keep only the k largest singular values")
    spectrum.add_argument("--base-rank", type=int, default=8, help="r0 for the E(r0) column")
    spectrum.add_argument("--device", default="cpu")
    spectrum.add_argument("--no-cache", action="store_true", help="recompute instead of reading the cache")
    spectrum.add_argument("--json", help="write the spectra as JSON to this file")
    spectrum.set_defaults(handler=_spectrum)

    allocate = commands.add_parser("allocate", help="LaMDA++ per-matrix ranks from the spectra")
    allocate.add_argument("source", nargs="?", default="default")
    allocate.add_argument("--base-rank", type=int, required=True, help="r0 of uniform LaMDA")
    group = allocate.add_mutually_exclusive_group()
    group.add_argument("--budget", type=int, help="total rank (default: base rank x matrices)")
    group.add_argument("--budget-params", type=int, help="trainable adapter parameters instead of total rank")
    allocate.add_argument("--strategy", default=choices.ALLOCATION_STRATEGIES[0], choices=choices.ALLOCATION_STRATEGIES)
    allocate.add_argument("--data", help="training file (classification) for --strategy gradient: ranks follow "
                          "the norm of each matrix's task gradient on its first 8 batches of 32")
    allocate.add_argument("--text-column")
    allocate.add_argument("--label-column")
    allocate.add_argument("--r-min", type=int, default=None)
    allocate.add_argument("--r-max", type=int, default=None)
    allocate.add_argument("--multiple", type=int, default=1)
    allocate.add_argument("--top-k", type=int, default=None,
                          help="singular values to scan (default r_max = 4 x base rank; 0 = all)")
    allocate.add_argument("--json", required=True, help="write the allocation (ranks) to this file")
    allocate.set_defaults(handler=_allocate)


def _add_estimate_command(commands) -> None:
    """estimate: parameters and training memory of each method."""
    estimate = commands.add_parser("estimate", help="parameters and training memory of each method")
    estimate.add_argument("source", nargs="?", default="default")
    estimate.add_argument("--method", default=choices.DEFAULT_METHOD, choices=method_names())
    estimate.add_argument("--rank", type=int, help="default: each method's own default rank")
    estimate.add_argument("--ranks", help="per-matrix ranks: a JSON file written by `lamda allocate` (for lamda++)")
    estimate.add_argument("--batch", type=int, default=choices.DEFAULT_BATCH_SIZE, help="micro-batch size")
    estimate.add_argument("--seq", type=int, default=choices.DEFAULT_SEQ_LEN, help="tokens per example")
    estimate.add_argument("--dtype", default="float32", choices=choices.MODEL_DTYPES)
    estimate.add_argument("--optimizer", default="adamw", choices=choices.OPTIMIZERS)
    estimate.add_argument("--gradient-checkpointing", action="store_true")
    estimate.add_argument("--dropout", type=float, default=None,
                          help="adapter dropout (default: the method's, as a run trains it: "
                               + _per_method(lambda m: m.default_dropout) + ")")
    estimate.add_argument("--task", default="classification", choices=choices.TASKS)
    estimate.add_argument("--device", default="cpu", help="cpu or cuda: which kernels the estimate assumes")
    estimate.add_argument("--measure", action="store_true", help="also run one real training step and compare")
    estimate.add_argument("--json", help="write the breakdowns as JSON to this file")
    estimate.set_defaults(handler=_estimate)


def _add_training_commands(commands) -> None:
    """train and compare: create run folders and train them."""
    train = commands.add_parser("train", help="a short local fine-tune as a resumable run folder")
    _add_run_arguments(train)
    train.add_argument("--method", default=choices.DEFAULT_METHOD, choices=method_names())
    train.add_argument("--ranks", help="per-matrix ranks from `lamda allocate` (for lamda++)")
    train.add_argument("--dropout", type=float, default=None,
                       help="adapter dropout (default: " + _per_method(lambda m: m.default_dropout) + ")")
    train.add_argument("--lr", type=float, default=None,
                       help="default: " + _per_method(lambda m: m.default_learning_rate))
    train.add_argument("--head-lr", type=float, default=None,
                       help="the task head's rate (default: "
                            + _per_method(lambda m: m.default_head_learning_rate, "as --lr") + ")")
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
    _add_run_arguments(compare)
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
    _add_run_arguments(sweep)
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


def _add_run_folder_commands(commands) -> None:
    """resume, stop, runs, export: act on existing run folders."""
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

    export = commands.add_parser("export", help="export a finished run as a merged model")
    export.add_argument("run")
    export.add_argument("--merged", required=True, help="the folder to write the merged model to")
    export.set_defaults(handler=_export)


def _add_use_commands(commands) -> None:
    """evaluate, predict, generate, analyze, doctor: use and inspect what was trained, check the machine."""
    evaluate = commands.add_parser("evaluate", help="score finished or stopped runs on a held-out file: accuracy, "
                                   "macro F1, per class, confusion matrix, wrong examples (causal LMs: perplexity, "
                                   "and exact match of greedy answers on conversations)")
    evaluate.add_argument("runs", nargs="+", metavar="RUN", help="run folders (several: one table side by side)")
    evaluate.add_argument("--data", required=True, help="a labelled file like the training data (causal-lm: .txt for "
                          "perplexity; conversations .jsonl/.parquet for answer perplexity and exact match)")
    evaluate.add_argument("--text-column")
    evaluate.add_argument("--label-column")
    evaluate.add_argument("--json", help="write the report (without per-example rows) to this file")
    evaluate.add_argument("--csv", help="write every example with its prediction and probabilities (answers for "
                          "conversations) to this file")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="each label's probability for texts, from a finished or stopped run")
    predict.add_argument("run")
    predict.add_argument("texts", nargs="*", metavar="TEXT")
    predict.add_argument("--data", help="a file of texts (.csv/.tsv/.jsonl/.parquet with a text column, or .txt lines)")
    predict.add_argument("--text-column")
    predict.add_argument("--output", help="write a CSV with a prediction column instead of printing")
    predict.set_defaults(handler=_predict)

    generate = commands.add_parser("generate", help="answer a prompt with a causal-lm run (the chat template of an "
                                   "instruct model; --raw: plain continuation), streamed")
    generate.add_argument("run")
    generate.add_argument("prompt")
    generate.add_argument("--max-new-tokens", type=int, default=40)
    generate.add_argument("--temperature", type=float, default=0.0, help="0: greedy; above 0: sampling")
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--base", action="store_true", help="also the base model's answer, to compare")
    generate.add_argument("--raw", action="store_true", help="continue the prompt as plain text, no chat template")
    generate.set_defaults(handler=_generate)

    analyze = commands.add_parser(
        "analyze", help="what fine-tuning changed: the learned update of every matrix of a run"
    )
    analyze.add_argument("run")
    analyze.add_argument("--top-k", type=int, default=16, help="singular values kept per matrix")
    analyze.add_argument("--intruder-k", type=int, default=10,
                         help="top singular vectors of the fine-tuned weight checked for intruders (the paper's 10)")
    analyze.add_argument("--intruder-threshold", type=float, default=0.5,
                         help="an intruder's |cosine| with every pretrained singular vector stays below this")
    analyze.add_argument("--json", help="write the full report (singular values, spectra) to this file")
    analyze.add_argument("--csv", help="write one row per matrix to this file")
    analyze.set_defaults(handler=_analyze)

    doctor = commands.add_parser("doctor", help="check Python, packages, threads, memory, disk, the model and GPU")
    doctor.add_argument("--runs", default="runs", help="the runs folder whose disk space to check")
    doctor.set_defaults(handler=_doctor)

def _per_method(value_of, none: str | None = None) -> str:
    """"lamda 40, lora 8, ..." of ``value_of(entry)`` for every registered method; a None value
    reads ``none`` (left out when ``none`` is None)."""
    values = {name: value_of(get_method(name)) for name in method_names()}
    return ", ".join(f"{m} {v:g}" if v is not None else f"{m} {none}" for m, v in values.items()
                     if v is not None or none is not None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except LamdaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
