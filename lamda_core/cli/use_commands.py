"""`lamda export / evaluate / predict / generate / analyze / doctor`: using finished runs, and checking
the installation."""
from __future__ import annotations

from ..errors import LamdaError
from .common import (
    cell,
    fraction_bar,
)


def _export(args) -> None:
    from ..use.export import export_merged

    target = export_merged(args.run, args.merged)
    print(f"merged model written to {target}; load it like this (also in {target / 'README.md'}):")
    card = (target / "README.md").read_text()
    print(card[card.index("```python") + 10:card.rindex("```")].rstrip())


def _evaluate(args) -> None:
    from ..use.chat_evaluation import ChatReport
    from ..use.evaluation import ClassificationReport, evaluate_run, side_by_side, write_report

    reports = []
    for folder in args.runs:
        report = evaluate_run(folder, args.data, args.text_column, args.label_column,
                              progress=fraction_bar(f"evaluating {folder}"))
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
            print("".join(f"{cell(row[c]):>16}" if i else f"{row[c]:<32}" for i, c in enumerate(columns)))


def _per_run(path: str, run: str) -> str:
    """report.json -> report-<run>.json: one file per run when several are evaluated."""
    from pathlib import Path

    p = Path(path)
    return str(p.with_name(f"{p.stem}-{run}{p.suffix}"))


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
    from ..data.reading import read_texts
    from ..use.evaluation import prediction_rows, write_csv
    from ..use.inference import load_run

    if not args.texts and not args.data:
        raise LamdaError("give texts to classify, or --data FILE")
    loaded = load_run(args.run)
    texts = list(args.texts) + (read_texts(args.data, args.text_column) if args.data else [])
    probabilities = loaded.probabilities(texts, progress=fraction_bar("predicting") if len(texts) > 64 else None)
    rows = prediction_rows(texts, probabilities, loaded.label_names)
    if args.output:
        write_csv(rows, args.output)
        print(f"{len(rows)} predictions written to {args.output}")
        return
    for row in rows:
        print(f"{row['predicted']} ({100 * row['probability']:.1f}%)  "
              + "  ".join(f"{n} {100 * float(row[f'p({n})']):.1f}%" for n in loaded.label_names) + f"  | {row['text']}")


def _generate(args) -> None:
    from ..use.inference import load_base, load_run

    models = [load_run(args.run)] + ([load_base(args.run)] if args.base else [])
    for loaded in models:
        shown = args.prompt if args.raw or not loaded.chat else ""  # a continuation reads on from the prompt
        print(f"{loaded.name}: {shown}", end="", flush=True)
        for piece in loaded.stream(args.prompt, args.max_new_tokens, args.temperature, args.top_p, args.seed,
                                   raw=args.raw):
            print(piece, end="", flush=True)
        print()


def _analyze(args) -> None:
    from ..use.analysis import analyze_run

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
    from ..doctor import run_checks

    checks = run_checks(args.runs)
    for check in checks:
        print(f"{'ok' if check.ok else 'PROBLEM':<8} {check.name:<15} {check.detail}")
        if check.advice:
            print(f"{'':<8} {'':<15} -> {check.advice}")
    problems = [c.name for c in checks if not c.ok]
    print("\n" + ("all checks passed" if not problems else f"{len(problems)} problem(s): {', '.join(problems)}"))
    if problems:
        raise SystemExit(1)


def add_use_commands(commands) -> None:
    """export, evaluate, predict, generate, analyze, doctor: use and inspect what was trained, check the machine."""
    export = commands.add_parser("export", help="export a finished run as a merged model")
    export.add_argument("run")
    export.add_argument("--merged", required=True, help="the folder to write the merged model to")
    export.set_defaults(handler=_export)

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
