"""Pruning criteria, one module each, behind the :class:`Importance` interface."""

from .base import Importance, get_method, methods, register
from .magnitude import MagnitudeImportance
from .seven import SevenImportance

__all__ = ["Importance", "get_method", "methods", "register", "MagnitudeImportance", "SevenImportance"]
