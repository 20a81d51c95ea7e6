"""Every benchmark still runs: each ``benchmarks/bench_*.py --quick`` in a subprocess, on tiny models.

This measures nothing; it catches a benchmark that rotted (an option renamed in the library, a changed
signature) before someone needs its numbers. A benchmark added later is covered by the glob, and must
offer ``--quick``: seconds on tiny models, no download, outputs under the current folder only, and on
a machine without what it needs (CUDA) a line saying it is skipped and exit status 0.

The scripts start together (one thread each) and each test waits for its own, so the whole module
takes about as long as the slowest script rather than their sum.
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


@pytest.fixture(scope="module")
def started(tmp_path_factory, request):
    """``{script name: (process, its folder)}``, the ``--quick`` runs of the selected tests started at once
    (only those: ``-k bench_core`` must not start, load the machine with and then kill the others)."""
    selected = {item.callspec.params["script"].name for item in request.session.items
                if item.name.startswith("test_quick_mode_runs[")}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs = {}
    for script in (s for s in BENCHMARKS if s.name in selected):
        folder = tmp_path_factory.mktemp(script.stem)
        with open(folder / "stdout.txt", "w") as out, open(folder / "stderr.txt", "w") as err:
            runs[script.name] = (subprocess.Popen([sys.executable, str(script), "--quick"], cwd=folder, env=env,
                                                  stdout=out, stderr=err), folder)
    yield runs
    for process, _ in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def test_there_are_benchmarks():
    assert len(BENCHMARKS) >= 6, BENCHMARKS


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_quick_mode_runs(script, started):
    process, folder = started[script.name]
    code = process.wait(timeout=600)
    stdout, stderr = (folder / "stdout.txt").read_text(), (folder / "stderr.txt").read_text()
    assert code == 0, f"{script.name} --quick failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr
    if script.name == "bench_gpu_24.py" and not torch.cuda.is_available():
        assert "skipped: no CUDA" in stdout
    # it wrote only into the folder it ran in
    assert not (ROOT / "runs" / "deploy" / "quick").exists() or (folder / "runs").exists()
