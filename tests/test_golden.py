"""Golden runs: a restructuring or a speed-up changes no mask and no weight (see ``golden_runs.py``).

Which wrong implementation this catches: any change of the selected entries (a tie broken the other
way, a count off by one, a path that skips the sampled band), of the scores' arithmetic, or of the
training interaction (optimizer state clearing, masks re-applied), in any method, pattern or scope.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import golden_runs  # noqa: E402

pytest.importorskip("transformers")

EXPECTED = json.loads(golden_runs.GOLDEN.read_text())


def test_the_golden_file_covers_every_run() -> None:
    assert sorted(EXPECTED) == sorted(golden_runs.RUNS)


@pytest.mark.parametrize("name", sorted(golden_runs.RUNS))
def test_golden_run_is_unchanged(name: str) -> None:
    got, want = golden_runs.compute(name), EXPECTED[name]
    assert got["pruned"] == want["pruned"]
    assert got["masks"] == want["masks"], f"{name}: the masks changed"
    assert got["projections"].keys() == want["projections"].keys()
    for key, value in want["projections"].items():
        assert math.isclose(got["projections"][key], value, rel_tol=1e-9, abs_tol=1e-12), f"{name}: {key}"
    if os.environ.get("SEVENPRUNE_GOLDEN_EXACT") == "1":  # same machine and build: bit for bit
        assert got["weights"] == want["weights"], f"{name}: the weights changed"
