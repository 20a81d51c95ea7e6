"""Pruning methods, one module each, in one registry (:mod:`sevenprune.importance.registry`).

Every module of this package is imported here, so a method file added to it registers itself: it is
found by name without any other edit.
"""

from .base import Importance, get_method, methods, register
from .force import Force
from .grasp import Grasp
from .magnitude import MagnitudeImportance
from .movement import InstantMovementImportance, MovementImportance
from .platon import PlatonImportance
from .random_scores import RandomImportance
from .registry import PHASES, checked_options, import_method_files, method_for, unregister
from .seven import SevenImportance
from .snip import Snip
from .soft_movement import SoftMovementImportance

import_method_files(__name__, __path__)

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
