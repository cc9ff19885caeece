"""The house rules a tool checks: `ruff check` (pycodestyle, pyflakes, import order; the
configuration is pyproject.toml's [tool.ruff]) is clean on the whole tree."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_function_runs_past_sixty_lines():
    """One concern per function: none of lamda_core, studio_ui or the pages is longer than 60 lines."""
    import ast

    long = []
    for path in [*ROOT.glob("lamda_core/**/*.py"), *ROOT.glob("studio_ui/*.py"), *ROOT.glob("app_pages/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, long
