"""The layer contract: every module of lamda_core imports only its own layer and the layers below
it (function-local imports too); docs/architecture.md lists the layers in this order."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lamda_core"
# bottom first; a module belongs to the longest entry its dotted name starts with
LAYERS = [
    ("errors", "choices"),
    ("models",),
    ("data",),
    ("adapter",),
    ("costs",),
    ("spectra",),
    ("methods",),
    ("planning",),
    ("runs",),
    ("training",),
    ("use",),
    ("figures", "doctor"),
    ("cli",),
    ("",),  # lamda_core/__init__.py: the public API re-exports every layer
]


def layer_of(module: str) -> int:
    """The index in LAYERS of ``module`` (dotted, without "lamda_core.")."""
    best, index = -1, None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".") or name == "") and len(name) > best:
                best, index = len(name), i
    return index


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported lamda_core module without the prefix) for every import in ``path``, at
    module top or inside a function; ``from .. import choices`` names the module choices."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("lamda_core"):
                target = node.module.removeprefix("lamda_core").lstrip(".")
            else:
                continue
            for alias in node.names:  # a name may be a module of the package imported from
                candidate = f"{target}.{alias.name}".lstrip(".")
                is_module = (PACKAGE / candidate.replace(".", "/")).with_suffix(".py").exists() or \
                    (PACKAGE / candidate.replace(".", "/")).is_dir()
                found.append((node.lineno, candidate if is_module else target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.removeprefix("lamda_core").lstrip("."))
                      for a in node.names if a.name.startswith("lamda_core")]
    return found


def upward_imports(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        own = layer_of(module_name(path))
        for line, target in imports(path):
            if target and layer_of(target) > own:
                problems.append(f"{path.relative_to(root.parent)}:{line} imports {target} "
                                f"(layer {LAYERS[layer_of(target)]} above {LAYERS[own]})")
    return problems


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports() == []


def package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of lamda_core that the checks read instead of the real one (to plant an import in)."""
    import shutil

    copy = tmp_path / "lamda_core"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "demo"))
    monkeypatch.setattr(__import__(__name__), "PACKAGE", copy)
    return copy


def test_an_upward_import_is_caught_inside_a_function_too(tmp_path, monkeypatch):
    """The check can fail: a copy of the package with one function-local upward import."""
    copy = package_copy(tmp_path, monkeypatch)
    target = copy / "costs" / "parameters.py"
    target.write_text(target.read_text() + "\n\ndef _registry():\n    from ..methods import get_method\n"
                      "    return get_method\n")
    problems = upward_imports(copy)
    assert len(problems) == 1 and "costs/parameters.py" in problems[0] and "imports methods" in problems[0]


def test_the_docs_list_the_layers_in_this_order():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("## Layers"):]
    listed = re.findall(r"^\d+\. `([^`]+)`", section, re.M)
    assert listed == [" ".join(names) if names != ("",) else "lamda_core" for names in LAYERS]


@pytest.mark.parametrize("layer", ["adapter", "costs", "spectra", "models"])
def test_the_layers_below_the_registry_never_name_it(layer):
    """Not even through an absolute import or lamda_core's public API."""
    for path in (PACKAGE / layer).rglob("*.py"):
        text = path.read_text()
        assert "methods" not in {t.split(".")[0] for _, t in imports(path)}, path
        assert "import lamda_core" not in text and "from lamda_core import" not in text, path


def import_circles(root: Path = PACKAGE) -> list[list[str]]:
    """Groups of modules that import each other round a circle (function-local imports too);
    importing a parent package (``from .. import choices`` runs lamda_core/__init__) is no edge."""
    graph = {module_name(path): set() for path in root.rglob("*.py")}
    for path in root.rglob("*.py"):
        module = module_name(path)
        graph[module] |= {t for _, t in imports(path) if t in graph and t != module
                          and not module.startswith(t + ".") and t != ""}
    circles, reached = [], set()
    for start in sorted(graph):  # the modules reachable from start that reach start back
        if start in reached:
            continue
        forward = _reachable(graph, start)
        backward = _reachable({m: {n for n in graph if m in graph[n]} for m in graph}, start)
        circle = sorted((forward & backward) | {start})
        reached.update(circle)
        if len(circle) > 1:
            circles.append(circle)
    return circles


def _reachable(graph: dict[str, set], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_two_modules_import_each_other_round_a_circle(tmp_path, monkeypatch):
    assert import_circles() == []
    # and the check can fail: a copy where data/reading.py imports data/chat.py, which imports it back
    copy = package_copy(tmp_path, monkeypatch)
    reading = copy / "data" / "reading.py"
    reading.write_text(reading.read_text() + "\n\ndef _chat():\n    from .chat import is_chat_file\n"
                       "    return is_chat_file\n")
    assert import_circles(copy) == [["data.chat", "data.reading"]]
