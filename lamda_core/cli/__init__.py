"""The `lamda` command line: one module per command group, each with its parsers and handlers
together (model_commands, run_commands, use_commands; common holds what they share)."""
from __future__ import annotations

import argparse
import sys

from ..errors import LamdaError
from .model_commands import add_estimate_command, add_model_commands
from .run_commands import add_run_folder_commands, add_training_commands
from .use_commands import add_use_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamda", description="LaMDA / LaMDA++ fine-tuning tools")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_commands in (add_model_commands, add_estimate_command, add_training_commands, add_run_folder_commands,
                         add_use_commands):
        add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except LamdaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
