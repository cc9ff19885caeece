"""The `lamda` command line."""
from __future__ import annotations

import argparse
import sys
from collections import Counter

from .errors import LamdaError


def _matrices(args) -> None:
    from .loading import load_model
    from .targets import adaptable_matrices, default_targets

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamda", description="LaMDA / LaMDA++ fine-tuning tools")
    commands = parser.add_subparsers(dest="command", required=True)
    matrices = commands.add_parser("matrices", help="list the adaptable matrices of a model")
    matrices.add_argument("source", nargs="?", default="default",
                          help="'default', 'tiny-llama', 'tiny-gpt2', a local folder or a hub id")
    matrices.add_argument("--task", default="classification", choices=("classification", "causal-lm", "encoder"))
    matrices.set_defaults(run=_matrices)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except LamdaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
