"""The house's one-way order (README "Development"): a lower room never imports a higher one, not even
inside a function. Rooms and their floors are listed here; a new top-level module or package must be given
a floor."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tedigan"

#: room -> floor (higher floors may import lower ones, never the reverse; one floor may hold siblings)
FLOORS = {
    "typed": 0,
    "fs": 0,
    "domains": 0,
    "assets": 0,
    "data": 1,
    "models": 2,
    "config": 3,
    "losses": 4,
    "convert": 4,
    "metrics": 5,
    "editing": 5,
    "training": 6,
    "pipeline": 6,
    "evaluation": 7,
    "cli": 8,
    "commands": 9,
    "app": 8,  # the web demo: a user interface like the commands, started by `tedigan demo`
    "edit": 10,
    "generate": 10,
    "invert": 10,
    "__main__": 10,
    "__init__": 10,
}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "tedigan" and len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tedigan":  # from tedigan import cli, edit ...
                found += [(node.lineno, f"tedigan.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_room_has_a_floor():
    rooms = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in _files()}
    assert rooms <= set(FLOORS), sorted(rooms - set(FLOORS))


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_the_house(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    upward = [
        f"line {line}: {module}"
        for line, module in _imports(path)
        if (room := _room(module)) in FLOORS and room != own and FLOORS[room] > FLOORS[own]
    ]
    assert not upward, f"{path.relative_to(PACKAGE)} ({own}, floor {FLOORS[own]}) imports upward: {upward}"
