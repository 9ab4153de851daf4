"""The layering rules, read from the source: they fail the suite when broken.

- ``catalog`` imports neither ``lutnav`` nor ``trainers``; ``trainers`` does not
  import ``lutnav`` (nothing points back up);
- no import circles between modules;
- no SQL outside ``catalog/``: front ends ask :class:`catalog.index.library.Library`.

Imports are read with :mod:`ast`, so an import inside a function or under
``if TYPE_CHECKING:`` counts like one at the top: hiding an import does not
remove the dependency.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("catalog", "trainers", "lutnav")

#: circles that exist today; this list may only shrink (a circle that is gone
#: must be removed from it, and a new one fails the test)
KNOWN_CIRCLES: set[frozenset[str]] = set()


@cache
def modules() -> dict[str, Path]:
    """Every module of the three packages, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path) -> set[tuple[str, int]]:
    """Every dotted name ``path`` imports (at any depth of the file), with its line."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add((module, node.lineno))
            out.update((f"{module}.{alias.name}", node.lineno) for alias in node.names)
    return out


@cache
def graph() -> dict[str, dict[str, int]]:
    """module → {project module it imports: first line of that import}."""
    mods = modules()
    edges: dict[str, dict[str, int]] = {}
    for name, path in mods.items():
        targets: dict[str, int] = {}
        for target, line in imported_names(name, path):
            while target and target not in mods:  # `from pkg.mod import func` → pkg.mod
                target = target.rpartition(".")[0]
            if target and target != name:
                targets[target] = min(line, targets.get(target, line))
        edges[name] = targets
    return edges


def circles(edges: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(frozenset(group))
    return found


def describe(group: frozenset[str], edges: dict[str, dict[str, int]]) -> str:
    """One line per import inside the circle: ``a.py:12 imports b``."""
    lines = []
    for name in sorted(group):
        path = modules()[name].relative_to(ROOT)
        for target, line in sorted(edges[name].items()):
            if target in group:
                lines.append(f"  {path}:{line} imports {target}")
    return "\n".join(lines)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("catalog", ("lutnav", "trainers")),
    ("trainers", ("lutnav",)),
])
def test_nothing_imports_back_up(package, forbidden):
    wrong = []
    for name, path in modules().items():
        if name.split(".")[0] != package:
            continue
        for target, line in sorted(imported_names(name, path)):
            if target.split(".")[0] in forbidden:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not wrong, f"{package} must not import {' or '.join(forbidden)}:\n" + "\n".join(wrong)


def test_no_new_import_circles():
    edges = graph()
    new = [group for group in circles(edges) if group not in KNOWN_CIRCLES]
    assert not new, "import circle(s):\n" + "\n\n".join(describe(g, edges) for g in new)


def test_known_circles_are_still_there():
    """Breaking a known circle is progress: take it off KNOWN_CIRCLES so it stays broken."""
    gone = KNOWN_CIRCLES - set(circles(graph()))
    assert not gone, "no longer circles, remove from KNOWN_CIRCLES: " + "; ".join(
        ", ".join(sorted(g)) for g in gone)


def test_circle_finder_names_the_imports():
    edges = {"a": {"b": 3}, "b": {"c": 5}, "c": {"a": 7}, "d": {"a": 1}}
    assert circles(edges) == [frozenset({"a", "b", "c"})]
    assert circles({"a": {"b": 1}, "b": {}}) == []


SQL_TEXT = re.compile(
    r"^\s*(select\s.+\sfrom\s|insert\s+(or\s+\w+\s+)?into\s|delete\s+from\s|update\s+\w+\s+set\s"
    r"|create\s+(table|index|virtual\s+table)\s|drop\s+(table|index)\s|pragma\s)",
    re.IGNORECASE | re.DOTALL)
SQL_CALLS = {"execute", "executemany", "executescript"}


def sql_uses(path: Path) -> list[str]:
    """Places in ``path`` that write SQL or hand it to a database."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings and SQL_TEXT.match(node.value)):
            found.append(f"{where}:{node.lineno}: SQL text {node.value[:40]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            on_db = (isinstance(receiver, ast.Name) and receiver.id in {"db", "conn"}
                     or isinstance(receiver, ast.Attribute) and receiver.attr in {"db", "conn"})
            if node.func.attr in SQL_CALLS or (on_db and node.func.attr in {"query", "table"}):
                found.append(f"{where}:{node.lineno}: .{node.func.attr}(…)")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "db":
            found.append(f"{where}:{node.lineno}: db[…] table access")
    return found


def test_no_sql_outside_the_catalog():
    found = []
    for name, path in modules().items():
        if name.split(".")[0] != "catalog":
            found += sql_uses(path)
    assert not found, "SQL belongs in catalog/ (add a Library method):\n" + "\n".join(found)


def test_sql_finder_sees_queries(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""select an entry from the list (a docstring, not SQL)."""\n'
                      'def f(lib, self):\n'
                      '    lib.db.query("select strength from entries where path = ?", [1])\n'
                      '    lib.db.execute("delete from entries")\n'
                      '    self.query(Input)\n', "utf-8")
    found = sorted(line.split(": ", 1)[0] for line in sql_uses(sample))
    assert found == ["sample.py:3", "sample.py:3", "sample.py:4", "sample.py:4"]
