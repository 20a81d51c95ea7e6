"""docs/design.md's module map names every module of src/sevenprune and nothing that is not there.

Which mistake this catches: a module added, moved or removed without the map following (the map is
the newcomer's guide to where each job lives)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "sevenprune"


def _mapped() -> set[str]:
    """Module paths named in the map's first column (``a.py``, ``pkg/a.py``, ``pkg/a.py`, `b.py`` = pkg/b.py)."""
    names: set[str] = set()
    for line in (REPO / "docs" / "design.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        folder = ""
        for item in re.findall(r"`([^`]+\.py)`", cell):
            if "/" in item:
                folder = item.rsplit("/", 1)[0] + "/"
                names.add(item)
            else:
                names.add(folder + item)
    return names


def test_the_module_map_matches_the_code() -> None:
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    mapped = _mapped()
    assert not modules - mapped, f"modules missing from docs/design.md's map: {sorted(modules - mapped)}"
    assert not mapped - modules, f"the map names modules that do not exist: {sorted(mapped - modules)}"
