"""Pruning criteria, one module each, behind the :class:`Importance` interface."""

from .base import Importance, get_method, methods, register
from .magnitude import MagnitudeImportance
from .movement import InstantMovementImportance, MovementImportance
from .platon import PlatonImportance
from .random_scores import RandomImportance
from .seven import SevenImportance
from .soft_movement import SoftMovementImportance

__all__ = [
    "Importance",
    "InstantMovementImportance",
    "MagnitudeImportance",
    "MovementImportance",
    "PlatonImportance",
    "RandomImportance",
    "SevenImportance",
    "SoftMovementImportance",
    "get_method",
    "methods",
    "register",
]
