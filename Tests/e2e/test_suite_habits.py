"""Habits of this suite that a reader relies on, checked so they hold (no server needed).

- A test waits on an observable condition, not on time: a literal sleep longer than 0.2 s (a
  polling interval) needs a comment, on its line or directly above it, saying why no condition can
  be awaited there (a window that shows an absence, media that must flow in real time, a period).
- Fixtures live in conftest.py: no test module imports from another test module what pytest
  would treat as a fixture.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

E2E = Path(__file__).resolve().parent
SLEEP = re.compile(r"\b(?:time|asyncio)\.sleep\(\s*([0-9]*\.?[0-9]+)\s*\)")
POLL_INTERVAL = 0.2


def python_files() -> list[Path]:
    return sorted(E2E.glob("*.py"))


def test_every_long_literal_sleep_says_why_no_condition_is_awaited():
    problems = []
    for path in python_files():
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, start=1):
            for m in SLEEP.finditer(line):
                if float(m.group(1)) <= POLL_INTERVAL or "#" in line[m.end():]:
                    continue
                above = lines[number - 2].strip() if number >= 2 else ""
                if not above.startswith("#"):
                    problems.append(f"{path.name}:{number}: {line.strip()}")
    assert not problems, ("literal sleeps over 0.2 s without a comment saying why no condition can be awaited "
                          "(wait on the condition instead, or say why there is none):\n" + "\n".join(problems))


def fixture_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if ast.unparse(target) in ("pytest.fixture", "fixture"):
                    names.add(node.name)
    return names


def test_no_module_imports_fixtures_from_another():
    defined = {path.stem: fixture_names(path) for path in python_files() if path.name != "conftest.py"}
    problems = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in defined:
                imported = {alias.name for alias in node.names} & defined[node.module]
                if imported:
                    problems.append(f"{path.name}: imports the fixtures {sorted(imported)} from {node.module}.py")
    assert not problems, "fixtures shared between modules belong in conftest.py:\n" + "\n".join(problems)
