"""Experiments on top of the library: tasks, metrics, runs, sweeps, reports and plots.

The command line (``sevenprune run|sweep|report|demo``) is a thin layer over this package:

>>> from sevenprune.tasks import RunConfig, resolve_config
>>> resolve_config({"task": "mr", "method": "seven_dyn", "sparsity": 0.5}).method
'seven_dyn'
"""

from .config import RunConfig, resolve_config
from .run import run
from .sweep import sweep
from .report import build_report

__all__ = ["RunConfig", "resolve_config", "run", "sweep", "build_report"]
