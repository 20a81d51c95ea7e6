"""The one registry of pruning methods, whatever the phase they run in.

A method is a class in a file of its own under ``sevenprune/importance/``, decorated with
:func:`register`. It declares:

* ``name``: the name users pass (``sp.Pruner(model, name, ...)``, ``--method name``);
* ``phases``: when it runs, one or more of :data:`PHASES`:

  - ``"fine-tuning"``: run by :class:`sevenprune.Pruner` on the cubic schedule; the class is an
    :class:`~sevenprune.importance.base.Importance` (``observe``, ``scores``, ...);
  - ``"before"``: run by :func:`sevenprune.prune_at_init` at the starting weights; the class has a
    classmethod ``init_masks(request) -> {weight name: keep-mask}``
    (:class:`~sevenprune.importance.init_request.InitRequest`), and ``one_shot = True`` if it scores
    once on every batch given (else it iterates ``steps`` times);
  - ``"calibration"``: run by ``sevenprune.prune_oneshot`` from calibration batches (Wanda, SparseGPT);

* ``defaults``: its options with their default values (JSON-serialisable), and optionally a classmethod
  ``check_options(options)`` raising ``ValueError`` for a bad value;
* ``needs_grad``: whether it reads gradients (``False``: it needs no batches before fine-tuning).

Every method file in the package is imported when ``sevenprune.importance`` is, so a new file is found
by ``sp.methods()``, the command line's help, ``sevenprune list`` and the run configuration's checks
without any other edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["PHASES", "ENTRY_POINTS", "register", "unregister", "methods", "get_method", "method_for",
           "checked_options", "import_method_files"]

#: when a method runs: during fine-tuning, before it (at the starting weights), or one shot from
#: calibration data
PHASES = ("fine-tuning", "before", "calibration")

#: the entry point that runs each phase, as an error message shows it
ENTRY_POINTS = {
    "fine-tuning": "sevenprune.Pruner(model, {name!r}, sparsity, start_step, prune_steps)",
    "before": "sevenprune.prune_at_init(model, {name!r}, sparsity, batches, loss_fn)",
    "calibration": "sevenprune.prune_oneshot(model, {name!r}, sparsity, calibration_batches)",
}

_REGISTRY: dict[str, Any] = {}  # name -> method class (duck-typed: the attributes above)

#: what the Pruner calls on a method of the fine-tuning phase (``Importance`` has them all)
_FINE_TUNING_HOOKS = ("observe", "scores", "masks_updated", "mask_due", "release", "state_dict",
                      "load_state_dict")


_Method = TypeVar("_Method", bound=type)


def register(cls: _Method) -> _Method:
    """Class decorator adding a method to the registry under ``cls.name``.

    The class must have a ``name`` and ``phases`` (a tuple of :data:`PHASES`), and the hook of each
    phase it declares: an :class:`Importance` subclass for ``"fine-tuning"``, a classmethod
    ``init_masks(request)`` for ``"before"``.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' (a non-empty string)")
    phases = getattr(cls, "phases", None)
    if not isinstance(phases, tuple) or not phases or not set(phases) <= set(PHASES):
        raise TypeError(f"{cls.__name__}.phases must be a non-empty tuple of {list(PHASES)}, got {phases!r}")
    missing = [hook for hook in _FINE_TUNING_HOOKS if not callable(getattr(cls, hook, None))]
    if "fine-tuning" in phases and missing:
        raise TypeError(f"{cls.__name__} runs during fine-tuning, so it must subclass "
                        f"sevenprune.importance.base.Importance (it lacks {missing})")
    if "before" in phases and not callable(getattr(cls, "init_masks", None)):
        raise TypeError(f"{cls.__name__} runs before fine-tuning, so it needs a classmethod "
                        f"init_masks(request) returning {{weight name: keep-mask}}")
    if not isinstance(getattr(cls, "defaults", {}), Mapping):
        raise TypeError(f"{cls.__name__}.defaults must be a mapping of option names to default values")
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (a method registered by a test or a notebook)."""
    _REGISTRY.pop(name, None)


def methods(phase: str | None = None) -> list[str]:
    """Names of the registered methods (of one phase, if given), sorted."""
    if phase is not None and phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose one of {list(PHASES)}")
    return sorted(n for n, cls in _REGISTRY.items() if phase is None or phase in cls.phases)


def get_method(name: str) -> Any:
    """The class registered under ``name`` (``ValueError`` naming the choices if there is none)."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a string, one of {methods()}; got {name!r}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {methods()}") from None


def method_for(name: str, phase: str) -> Any:
    """The class of ``name`` if it runs in ``phase``; else a ``ValueError`` naming the entry point that
    runs it (``sp.Pruner(model, "snip")`` says to use ``prune_at_init``)."""
    cls = get_method(name)
    if phase not in cls.phases:
        where = " or ".join(ENTRY_POINTS[p].format(name=name) for p in cls.phases)
        raise ValueError(f"method {name!r} does not run {_WHEN[phase]} (it runs {_phase_words(cls.phases)}): "
                         f"use {where}; the methods that run {_WHEN[phase]} are {methods(phase)}")
    return cls


_WHEN = {"fine-tuning": "during fine-tuning", "before": "before fine-tuning",
         "calibration": "one shot from calibration data"}


def _phase_words(phases: tuple[str, ...]) -> str:
    return " and ".join(_WHEN[p] for p in phases)


def checked_options(method: str | type, options: Mapping[str, Any], phase: str | None = None) -> dict[str, Any]:
    """``options`` of ``method`` completed with its ``defaults`` and checked: an unknown name is a
    ``TypeError``, a bad value a ``ValueError`` (the method's ``check_options``). Before fine-tuning a
    method may first take options of that phase alone (its ``init_options(options)`` removes them).

    >>> checked_options("random", {"seed": 3})
    {'seed': 3}
    """
    cls: Any = get_method(method) if isinstance(method, str) else method
    given = dict(options)
    if phase == "before" and callable(getattr(cls, "init_options", None)):
        cls.init_options(given)
    defaults = dict(getattr(cls, "defaults", {}))
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"method {cls.name!r} got unknown option(s) {unknown}; "
                        f"its options are {sorted(defaults) or 'none'}")
    full = {**defaults, **given}
    check = getattr(cls, "check_options", None)
    if callable(check):
        check(full)
    return full


def import_method_files(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of ``package`` (its folders ``path``), so that each method file registers
    itself; returns their names."""
    names = [m.name for m in pkgutil.iter_modules(list(path))]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
