"""The package's shape: every module imports on its own, module-level imports form no cycle, and the
leaderboard and the task kinds never import each other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "harness"


def _modules() -> list[str]:
    out = []
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _imports(path: Path, module: str, top_level_only: bool) -> set[str]:
    """The harness modules ``path`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("harness")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("harness"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    known = set(_modules())
    return {m for m in found if m in known and m != module}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    graph = {}
    for m in _modules():
        rel = Path(*m.split("."))
        path = ROOT / (str(rel) + ".py") if (ROOT / (str(rel) + ".py")).exists() else ROOT / rel / "__init__.py"
        graph[m] = _imports(path, m, top_level_only)
    return graph


def test_every_module_imports_on_its_own():
    code = (
        "import importlib, sys, traceback\n"
        f"mods = {_modules()!r}\n"
        "bad = []\n"
        "for m in mods:\n"
        "    for k in [k for k in sys.modules if k == 'harness' or k.startswith('harness.')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception:\n"
        "        bad.append(m + ': ' + traceback.format_exc().strip().splitlines()[-1])\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


def test_module_level_imports_have_no_cycle():
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_board_and_tasks_never_import_each_other():
    graph = _graph(top_level_only=False)  # function-level imports count too
    for m, deps in graph.items():
        if m.startswith("harness.board"):
            assert not any(d.startswith("harness.tasks") for d in deps), (m, sorted(deps))
        if m.startswith("harness.tasks"):
            assert not any(d.startswith("harness.board") for d in deps), (m, sorted(deps))


def test_shared_code_never_branches_on_the_kind_string():
    """Outside the task packages, no code compares a task kind with a literal kind name."""
    kinds = {"qa", "classification"}
    offenders = []
    for f in PACKAGE.rglob("*.py"):
        if "tasks" in f.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                values = [node.left, *node.comparators]
                literals = {v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)}
                names = [v for v in values if isinstance(v, (ast.Name, ast.Attribute))]
                text = " ".join(ast.unparse(v) for v in names)
                if literals & kinds and any(w in text for w in ("task", "kind")):
                    offenders.append(f"{f.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, "\n".join(offenders)
