"""What a run ran on, and how busy the machine was meanwhile (recorded in ``result.json`` as ``"machine"``).

A run's seconds depend on the CPU and on what else shares it: two runs of one method on two machines, or beside a
third process, differ by more than two methods do. ``result.json`` therefore records the processor, the threads
the run used, when it ran (UTC) and the machine's one-minute load average sampled while it ran, so that a cost
table can say which timings are comparable instead of a hand-kept log saying it. It also records the share
of the wall time the process got the CPU (``cpu_share``): the direct measure, for a one-thread run, of how much
another process slowed it.

>>> info = machine_info()
>>> sorted(info) == ["cpu", "logical_cpus", "platform", "python", "torch", "torch_threads"]
True
>>> with LoadMonitor(read=iter([1.0, 3.0]).__next__, interval=3600) as load:
...     pass
>>> load.summary()
{'mean': 2.0, 'max': 3.0, 'samples': 2, 'interval_s': 3600}

A one-thread run that got the CPU for 60 of its 80 seconds (a third process took turns on its core):

>>> clock = iter([0.0, 80.0]).__next__; cpu = iter([0.0, 60.0]).__next__
>>> with LoadMonitor(read=lambda: None, interval=3600, wall_clock=clock, cpu_clock=cpu) as load:
...     usage = load.cpu_share(threads=1)
>>> usage
{'cpu_seconds': 60.0, 'wall_seconds': 80.0, 'cpu_share': 0.75}
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch


def cpu_model() -> str:
    """The processor's name (``/proc/cpuinfo``'s "model name" on Linux; else what :mod:`platform` says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """The processor, its logical CPUs, the threads torch uses, and the software versions."""
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}


def utc_now() -> str:
    """The time now in UTC, to the second, ISO 8601 (``2026-12-07T15:51:00+00:00``)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _load_1min() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):  # no load average on this platform (Windows)
        return None


class LoadMonitor:
    """Samples the one-minute load average when entered, every ``interval`` seconds in a daemon thread, and
    when left. The thread sleeps between samples: it costs the run nothing measurable.

    On a machine with ``logical_cpus`` cores, a mean load near the number of busy run processes means the run
    had its cores to itself; a higher one, that something else shared them (and its seconds are inflated).
    """

    def __init__(self, read: Callable[[], float | None] | None = None, interval: float = 30.0, *,
                 wall_clock: Callable[[], float] = time.perf_counter,
                 cpu_clock: Callable[[], float] = time.process_time) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self._read, self.interval = read or _load_1min, interval
        self._wall_clock, self._cpu_clock = wall_clock, cpu_clock
        self._wall0 = self._cpu0 = 0.0
        self.started_utc: str | None = None
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Take one sample now (the run takes one before it writes its result: a short run has two)."""
        value = self._read()
        if value is not None:
            self._samples.append(value)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> LoadMonitor:
        self._wall0, self._cpu0, self.started_utc = self._wall_clock(), self._cpu_clock(), utc_now()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="sevenprune-load-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def cpu_share(self, threads: int) -> dict[str, float | None]:
        """The process's CPU seconds since the monitor was entered, the wall seconds, and their ratio per
        thread (``cpu_seconds / (wall_seconds * threads)``): near 1 for a one-thread run that had a core to
        itself, lower where it waited for one. With several threads it is below 1 also where torch's threads
        idle between parallel regions, so it reads cleanly for one-thread runs only."""
        wall, cpu = self._wall_clock() - self._wall0, self._cpu_clock() - self._cpu0
        share = round(cpu / (wall * max(1, threads)), 4) if wall > 0 else None  # None, not NaN: JSON has none
        return {"cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3), "cpu_share": share}

    def record(self) -> dict[str, Any]:
        """``result.json["machine"]``: :func:`machine_info`, the start (when entered) and now in UTC, the load
        samples with one taken now (a run shorter than the interval has one at each end) and the CPU share
        over torch's current threads."""
        self.sample()
        return {**machine_info(), "started_utc": self.started_utc, "finished_utc": utc_now(),
                "load_1min": self.summary(), **self.cpu_share(torch.get_num_threads())}

    def summary(self) -> dict[str, Any] | None:
        """``{"mean", "max", "samples", "interval_s"}`` of the samples; None where the platform has no load
        average."""
        if not self._samples:
            return None
        return {"mean": round(sum(self._samples) / len(self._samples), 3), "max": round(max(self._samples), 3),
                "samples": len(self._samples), "interval_s": self.interval}
