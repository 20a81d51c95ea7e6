"""sevenprune: prune Transformer models with SEVEN and the methods it is measured against.

>>> import torch, sevenprune as sp
>>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> pruner = sp.Pruner(model, method="magnitude", sparsity=0.5, start_step=0, prune_steps=2)
>>> for _ in range(2):
...     pruner.step()
>>> pruner.sparsity()
0.5
"""

from .diagnostics import PruningDiagnostics
from .importance import Importance, methods, register
from .init_pruning import init_methods, prune_at_init
from .lottery import lottery_ticket
from .oneshot import oneshot_methods, prune_oneshot
from .pruner import Pruner
from .schedules import cubic_sparsity
from .state import load_state, read_state, save_state
from .targets import find_prunable
from .threshold import smallest_k_keep_masks

__version__ = "0.1.0"


def pruner_methods() -> list[str]:
    """Names of the methods :class:`Pruner` runs during fine-tuning (``methods("fine-tuning")``);
    :func:`methods` lists every registered method, of every phase."""
    return methods("fine-tuning")


__all__ = [
    "Importance",
    "Pruner",
    "PruningDiagnostics",
    "cubic_sparsity",
    "find_prunable",
    "init_methods",
    "load_state",
    "lottery_ticket",
    "methods",
    "oneshot_methods",
    "prune_at_init",
    "prune_oneshot",
    "pruner_methods",
    "read_state",
    "register",
    "save_state",
    "smallest_k_keep_masks",
    "__version__",
]
