"""One registry for the methods of every phase: adding a method is one new file.

Which wrong implementation this catches: a registry that needs a second edit (a list in the CLI, a
hand-written tuple of one-shot methods, a second registry for pruning before fine-tuning), an entry
point that runs a method of another phase, or a ``register`` that accepts a class without the hook of
a phase it declares.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

import sevenprune as sp
from sevenprune import cli
from sevenprune.importance import get_method, register, unregister
from sevenprune.importance.registry import import_method_files
from sevenprune.tasks.config import RunConfig, method_choices, validate

#: a whole method file, as a contributor writes it: it scores by |W| during fine-tuning (gradually) and,
#: before fine-tuning, keeps the entries of largest |W| of each row's sign (a rule of its own, so that
#: the test can tell it ran)
TOY = '''
from typing import Any

from torch import Tensor

from sevenprune.importance.base import Importance, register


@register
class ToyImportance(Importance):
    """``method="toy"``: the scores are ``scale * |W|``."""

    name = "toy"
    phases = ("fine-tuning", "before")
    needs_grad = False
    defaults = {"scale": 1.0}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        if not options["scale"] > 0:
            raise ValueError(f"scale must be > 0, got {options['scale']!r}")

    def observe(self, t: int) -> None:
        """Nothing to observe."""

    def scores(self, masks):
        return [self.pin_pruned(p.detach().abs().float() * self.options["scale"], masks.get(n))
                for n, p in self.params.items()]

    @classmethod
    def init_masks(cls, request) -> dict[str, Tensor]:
        # keep the positive weights first: the opposite of magnitude's choice on a signed matrix
        return request.select([p.detach().float() for p in request.params.values()])
'''


@pytest.fixture
def toy(tmp_path: Path) -> Iterator[ModuleType]:
    path = tmp_path / "toy_method.py"
    path.write_text(TOY)
    spec = importlib.util.spec_from_file_location("toy_method", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_method"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        unregister("toy")
        sys.modules.pop("toy_method", None)


def layer() -> nn.Linear:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, -4.0], [-1.0, 2.0]]))
    return model


def test_a_method_file_is_found_by_every_entry_point(toy: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert "toy" in sp.methods() and "toy" in sp.pruner_methods() and "toy" in sp.init_methods()
    assert get_method("toy") is toy.ToyImportance
    # during fine-tuning: the Pruner runs it on its schedule (|W|: -1 and 2 go, by magnitude)
    model = layer()
    pruner = sp.Pruner(model, "toy", 0.5, start_step=0, prune_steps=1, scale=2.0)
    pruner.step()
    assert pruner.masks["weight"].tolist() == [[True, True], [False, False]]
    assert pruner.config()["method_options"] == {"scale": 2.0}
    # before fine-tuning: prune_at_init runs its init_masks (W itself: -4 and -1 go)
    model = layer()
    pruner = sp.prune_at_init(model, "toy", 0.5)
    assert pruner.masks["weight"].tolist() == [[True, False], [False, True]]
    assert model.weight.tolist() == [[3.0, 0.0], [0.0, 2.0]]
    # its options are checked by the method itself, in both phases
    with pytest.raises(ValueError, match="scale must be > 0"):
        sp.Pruner(layer(), "toy", 0.5, scale=0.0)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['size'\]"):
        sp.prune_at_init(layer(), "toy", 0.5, size=1)
    # the command line's list and help name it, with its options
    assert cli.main(["list"]) == 0
    assert "  toy  [scale=1.0]" in capsys.readouterr().out.splitlines()
    assert "toy" in cli._method_help()
    # the run configuration offers it and has the method check its options
    assert "toy" in method_choices()
    with pytest.raises(ValueError, match="scale must be > 0"):
        validate(RunConfig(method="toy", sparsity=0.5, method_options={"scale": -1.0}))


def test_unregister_removes_it(toy: ModuleType) -> None:
    unregister("toy")
    assert "toy" not in sp.methods()
    with pytest.raises(ValueError, match="unknown method 'toy'"):
        sp.Pruner(layer(), "toy", 0.5)


def test_each_entry_point_names_the_one_that_runs_a_method_of_another_phase() -> None:
    with pytest.raises(ValueError, match=r"'snip' does not run during fine-tuning.*use sevenprune.prune_at_init"):
        sp.Pruner(layer(), "snip", 0.5)
    with pytest.raises(ValueError, match=r"'platon' does not run before fine-tuning.*use sevenprune.Pruner"):
        sp.prune_at_init(layer(), "platon", 0.5)

    @register
    class Calibrated:  # the shape of the one-shot methods with calibration data (Wanda, SparseGPT)
        name = "calibrated_toy"
        phases = ("calibration",)
        defaults: dict[str, object] = {}

    try:
        assert "calibrated_toy" in sp.methods("calibration") and "calibrated_toy" not in sp.pruner_methods()
        with pytest.raises(ValueError, match=r"'calibrated_toy' does not run during fine-tuning.*prune_oneshot"):
            sp.Pruner(layer(), "calibrated_toy", 0.5)
        with pytest.raises(ValueError, match=r"does not run before fine-tuning.*prune_oneshot"):
            sp.prune_at_init(layer(), "calibrated_toy", 0.5)
    finally:
        unregister("calibrated_toy")


def test_register_refuses_a_class_without_the_hook_of_its_phase() -> None:
    class NoPhases:
        name = "nophases"

    class NoInitMasks:
        name = "noinit"
        phases = ("before",)

    class NotAnImportance:
        name = "noimportance"
        phases = ("fine-tuning",)

    with pytest.raises(TypeError, match="phases must be a non-empty tuple"):
        register(NoPhases)
    with pytest.raises(TypeError, match="needs a classmethod init_masks"):
        register(NoInitMasks)
    with pytest.raises(TypeError, match="must subclass sevenprune.importance.base.Importance"):
        register(NotAnImportance)
    assert not {"nophases", "noinit", "noimportance"} & set(sp.methods())


def test_a_file_added_to_a_methods_package_registers_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    # the mechanism sevenprune.importance runs on its own folder, on a package of one toy file
    package = tmp_path / "more_methods"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "toy_method.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert import_method_files("more_methods", [str(package)]) == ["toy_method"]
        assert "toy" in sp.methods() and get_method("toy").__module__ == "more_methods.toy_method"
    finally:
        unregister("toy")
        for name in ("more_methods.toy_method", "more_methods"):
            sys.modules.pop(name, None)
    # and the package itself is imported whole
    import pkgutil

    import sevenprune.importance as methods_package

    names = {m.name for m in pkgutil.iter_modules(methods_package.__path__)}
    assert {"snip", "grasp", "force", "seven", "registry"} <= names
    assert all(f"sevenprune.importance.{n}" in sys.modules for n in names)
