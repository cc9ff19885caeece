"""`lamda matrices / spectrum / allocate / estimate`: what a model holds, LaMDA++'s ranks from its
spectra, and each method's costs."""
from __future__ import annotations

from collections import Counter

from .. import choices
from ..errors import LamdaError
from ..methods import display_order, get_method, method_names
from .common import (
    format_number,
    mib,
    per_method,
    progress_bar,
    read_ranks,
)


def _matrices(args) -> None:
    from ..models.loading import load_model
    from ..models.targets import adaptable_matrices, default_targets

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


def _spectrum(args) -> None:
    from ..spectra.spectrum import scan_spectra

    report = scan_spectra(args.source, top_k=args.top_k or None, device=args.device, cache=not args.no_cache,
                          progress=progress_bar("scanning spectra"))
    rows = report.rows(base_rank=args.base_rank)
    energy = f"energy_at_{args.base_rank}"
    print(f"{'name':<48} {'layer':>5} {'kind':<7} {'shape':>11} {'sigma_1':>9} {'||W||_F':>9} "
          f"{'stable_r':>9} {'eff_rank':>9} {'cond':>9} {'E(' + str(args.base_rank) + ')':>7} {'alpha':>7}")
    for row in rows:
        layer = "-" if row["layer"] is None else row["layer"]
        print(f"{row['name']:<48} {layer:>5} {row['kind']:<7} {row['d_out']:>5}x{row['d_in']:<5} "
              f"{format_number(row['sigma_1']):>9} {format_number(row['frobenius']):>9} "
              f"{format_number(row['stable_rank']):>9} {format_number(row['effective_rank']):>9} "
              f"{format_number(row['condition_number']):>9} {row[energy]:>7.3f} {format_number(row['alpha']):>7}")
    print(f"\n{len(rows)} matrices, {report.cache_hits} from the cache"
          + (f", top {args.top_k} singular values each" if args.top_k else ", full spectra"))
    if args.json:
        report.to_json(args.json)
        print(f"spectra written to {args.json}")


def _allocate(args) -> None:
    from ..spectra.allocation import allocate_ranks
    from ..spectra.spectrum import scan_spectra

    top_k = args.top_k if args.top_k is not None else (args.r_max or 4 * args.base_rank)
    report = scan_spectra(args.source, top_k=top_k or None, progress=progress_bar("scanning spectra"))
    budget, kind = (args.budget_params, "params") if args.budget_params is not None else (args.budget, "rank")
    importance = None
    if args.strategy == "gradient":
        if not args.data:
            raise LamdaError("--strategy gradient allocates from your task's gradient: pass --data TRAIN_FILE")
        from ..spectra.importance import gradient_importance

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


def _fitted(query, args):
    """``query`` at its method's default rank capped to what the model allows (VeRA's 256 on a
    64-wide model), when no --rank was given; a note says so."""
    from ..runs.preflight import fitted_default_rank

    if args.rank is not None or query.rank_pattern:
        return query
    rank, note = fitted_default_rank(query.method, args.source, args.task)
    if note:
        print(f"note: {note}")
    return query.replace(rank=rank) if rank else query


def _estimate(args) -> None:
    import json

    from ..costs.memory import CostBreakdown
    from ..planning.estimate import estimate_each
    from ..planning.query import CostQuery

    rank_pattern = read_ranks(args.ranks)
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
        from ..planning.measure import measure_costs

        measured = measure_costs(_fitted(query, args))
        columns = {f"{args.method} est": estimates[args.method], f"{args.method} measured": measured,
                   **{k: v for k, v in columns.items() if not k.startswith(args.method + " ")}}
    names = list(columns)
    print(f"training memory in MiB, batch {args.batch} x sequence {args.seq}, {args.dtype}, {args.optimizer}")
    print(f"{'component':<22}" + "".join(f"{n:>18}" for n in names))
    print(f"{'peak':<22}" + "".join(f"{mib(columns[n].peak):>18}" for n in names))
    print(f"{'peak in':<22}" + "".join(f"{columns[n].peak_phase or '-':>18}" for n in names))
    for component in CostBreakdown.COMPONENTS + ("total",):
        label = "census total" if component == "total" else component
        print(f"{label:<22}" + "".join(f"{mib(getattr(columns[n], component)):>18}" for n in names))
    for counter in ("trainable_start", "trainable_end", "trainable_average", "adapter_start", "adapter_end"):
        print(f"{counter:<22}" + "".join(f"{getattr(columns[n], counter):>18,.0f}" for n in names))
    if args.measure:
        estimate, measured = estimates[args.method], columns[f"{args.method} measured"]
        errors = {c: (getattr(estimate, c) - getattr(measured, c)) / getattr(measured, c)
                  for c in ("peak",) + CostBreakdown.COMPONENTS + ("total",) if getattr(measured, c)}
        print("relative error of the estimate: " + ", ".join(f"{c} {e:+.1%}" for c, e in errors.items()))
        print(f"process resident memory grew {mib(measured.rss_growth).strip()} MiB during the measured step")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({n: b.as_dict() for n, b in columns.items()}, handle, indent=1)
        print(f"breakdown written to {args.json}")


def add_model_commands(commands) -> None:
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


def add_estimate_command(commands) -> None:
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
                               + per_method(lambda m: m.default_dropout) + ")")
    estimate.add_argument("--task", default="classification", choices=choices.TASKS)
    estimate.add_argument("--device", default="cpu", help="cpu or cuda: which kernels the estimate assumes")
    estimate.add_argument("--measure", action="store_true", help="also run one real training step and compare")
    estimate.add_argument("--json", help="write the breakdowns as JSON to this file")
    estimate.set_defaults(handler=_estimate)
