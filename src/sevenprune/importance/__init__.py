"""Pruning methods, one module each, in one registry (:mod:`sevenprune.importance.registry`).

Every module of this package is imported here, so a method file added to it registers itself: it is
found by name without any other edit.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from .base import Importance, get_method, methods, register
from .force import Force
from .grasp import Grasp
from .magnitude import MagnitudeImportance
from .movement import InstantMovementImportance, MovementImportance
from .platon import PlatonImportance
from .random_scores import RandomImportance
from .registry import PHASES, checked_options, method_for, unregister
from .seven import SevenImportance
from .snip import Snip
from .soft_movement import SoftMovementImportance

for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "PHASES",
    "Force",
    "Grasp",
    "Importance",
    "InstantMovementImportance",
    "MagnitudeImportance",
    "MovementImportance",
    "PlatonImportance",
    "RandomImportance",
    "SevenImportance",
    "Snip",
    "SoftMovementImportance",
    "checked_options",
    "get_method",
    "method_for",
    "methods",
    "register",
    "unregister",
]
