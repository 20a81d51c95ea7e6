"""Every benchmark still runs: each ``benchmarks/bench_*.py --quick`` in a subprocess, on tiny models.

This measures nothing; it catches a benchmark that rotted (an option renamed in the library, a changed
signature) before someone needs its numbers. A benchmark added later is covered by the glob, and must
offer ``--quick`` (seconds, tiny models, no download, outputs under the current folder only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").glob("bench_*.py"))


def test_there_are_benchmarks():
    assert len(BENCHMARKS) >= 6, BENCHMARKS


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_quick_mode_runs(script, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{script.name} --quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    if script.name == "bench_gpu_24.py" and not torch.cuda.is_available():
        assert "skipped: no CUDA" in done.stdout
    # nothing written outside the folder it ran in
    assert not (ROOT / "runs" / "deploy" / "quick").exists() or script.name != "bench_deploy.py" or \
        (tmp_path / "runs" / "deploy" / "quick").exists()
