"""Pruning before fine-tuning (sp.prune_at_init): SNIP, GraSP, FORCE, SEVEN_pre (frozen), magnitude, random.

The model of the hand computations is a bias-free ``nn.Linear(3, 2)`` with the loss
``L = 0.5 * ||W x - y||^2`` of one sample per batch, so that ``dL/dW = (W x - y) x^T`` and the Hessian
with respect to each row of W is ``x x^T``: ``H g = g @ sum_b x_b x_b^T``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import sevenprune as sp
from sevenprune import init_pruning as ip
from sevenprune.importance import get_method
from sevenprune.importance.grasp import grasp_scores
from sevenprune.importance.init_request import InitRequest
from sevenprune.importance.snip import snip_scores
from sevenprune.importance import platon as _platon  # noqa: F401 - registers "platon"
from sevenprune.importance.random_scores import random_scores

W = [[-0.5, 1.0, 2.0], [-1.0, 1.0, 0.5]]
XS = [[2.0, 1.0, -1.0], [-1.0, -1.0, 2.0]]
YS = [[1.0, 1.0], [1.0, -1.0]]
METHODS = ["snip", "grasp", "force", "seven", "magnitude", "random"]


def linear(weight: list[list[float]] = W) -> nn.Linear:
    layer = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def data(xs: list[list[float]] = XS, ys: list[list[float]] = YS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.tensor([x]), torch.tensor([y])) for x, y in zip(xs, ys)]


def half_sq(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return 0.5 * ((model(x) - y) ** 2).sum()


def keep(mask: torch.Tensor) -> list[list[bool]]:
    return mask.tolist()  # type: ignore[no-any-return]


# -- hand-computed scores ---------------------------------------------------------------------------
# batch 1: W x1 = [-2, -1.5], r1 = [-3, -2.5], G1 = [[-6, -3, 3], [-5, -2.5, 2.5]]
# batch 2: W x2 = [3.5, 1],   r2 = [2.5, 2],   G2 = [[-2.5, -2.5, 5], [-2, -2, 4]]
G_SUM = [[-8.5, -5.5, 8.0], [-7.0, -4.5, 6.5]]


def test_snip_score_is_abs_w_times_summed_gradient() -> None:
    layer = linear()
    scores = snip_scores(layer, sp.find_prunable(layer), data(), half_sq)[0]
    assert scores.tolist() == [[4.25, 5.5, 16.0], [7.0, 4.5, 3.25]]
    # the three lowest (3.25, 4.25, 4.5) go
    pruner = ip.prune_at_init(linear(), "snip", 0.5, data(), half_sq)
    assert keep(pruner.masks["weight"]) == [[False, True, True], [True, False, False]]


def test_grasp_score_is_minus_w_times_hessian_gradient_product() -> None:
    # sum_b x_b x_b^T = [[5, 3, -4], [3, 2, -3], [-4, -3, 5]]
    # H g = G_SUM @ that = [[-91, -60.5, 90.5], [-74.5, -49.5, 74]];  S = -W * Hg
    layer = linear()
    s = grasp_scores(layer, sp.find_prunable(layer), data(), half_sq)[0]
    assert s.tolist() == [[-45.5, 60.5, -181.0], [-74.5, 49.5, -37.0]]


def test_grasp_removes_the_highest_scores_and_keeps_gradient_flow() -> None:
    pruner = ip.prune_at_init(linear(), "grasp", 0.5, data(), half_sq)
    # the highest S (60.5, 49.5, -37) are removed; not SNIP's choice, not magnitude's
    assert keep(pruner.masks["weight"]) == [[True, False, True], [True, False, False]]

    def grad_norm_sq(weight: torch.Tensor) -> float:
        layer = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            layer.weight.copy_(weight)
        g = sum(torch.autograd.grad(half_sq(layer, b), layer.weight)[0] for b in data())
        return float((g * g).sum())

    base = grad_norm_sq(torch.tensor(W))
    change = []
    for i in range(6):
        w = torch.tensor(W).flatten()
        w[i] = 0.0
        change.append(grad_norm_sq(w.view(2, 3)) - base)
    # the kept weights are exactly those whose removal would reduce ||g||^2 the most
    most_reducing = sorted(range(6), key=lambda i: change[i])[:3]
    kept = torch.nonzero(pruner.masks["weight"].flatten()).flatten().tolist()
    assert sorted(kept) == sorted(most_reducing)
    assert all(change[i] < 0 for i in kept)


def test_grasp_abs_variant_removes_the_lowest_magnitude_of_s() -> None:
    # |S| = [[45.5, 60.5, 181], [74.5, 49.5, 37]]: the three lowest (37, 45.5, 49.5) go. The paper's rule
    # (above) removes 60.5, 49.5 and -37: the two disagree on (0, 0) and (0, 1).
    pruner = ip.prune_at_init(linear(), "grasp", 0.5, data(), half_sq, variant="abs")
    assert keep(pruner.masks["weight"]) == [[False, True, True], [True, False, False]]
    assert pruner.config()["method_options"] == {"variant": "abs"}
    assert ip.prune_at_init(linear(), "grasp", 0.5, data(), half_sq).config()["method_options"] == {
        "variant": "paper"}


def test_grasp_abs_ranks_by_the_full_hessian_magnitude_not_snips_score() -> None:
    # on the linear model above |S| happens to rank like SNIP; here the brute-force |W * H g| decides
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False))
    batches = [(torch.randn(5, 3), torch.randn(5, 2)) for _ in range(2)]
    loss = lambda m, b: nn.functional.mse_loss(m(b[0]), b[1])  # noqa: E731
    params = sp.find_prunable(model)
    flat0 = torch.cat([p.detach().flatten() for p in params.values()])

    def total_loss(flat: torch.Tensor) -> torch.Tensor:
        w1, w2 = flat[:12].view(4, 3), flat[12:].view(2, 4)
        return sum(nn.functional.mse_loss(torch.tanh(x @ w1.T) @ w2.T, y) for x, y in batches)  # type: ignore

    hess = torch.autograd.functional.hessian(total_loss, flat0)
    g = torch.autograd.functional.jacobian(total_loss, flat0)
    magnitude = (flat0 * (hess @ g)).abs()
    expected_pruned = set(torch.argsort(magnitude)[:10].tolist())
    pruner = ip.prune_at_init(model, "grasp", 0.5, batches, loss, variant="abs")
    got = torch.cat([m.flatten() for m in pruner.masks.values()])
    assert set(torch.nonzero(~got).flatten().tolist()) == expected_pruned
    snip = ip.prune_at_init(copy_of(model, flat0), "snip", 0.5, batches, loss)
    assert not torch.equal(torch.cat([m.flatten() for m in snip.masks.values()]), got)


def copy_of(model: nn.Module, flat: torch.Tensor) -> nn.Module:
    """``model`` with its weights put back to ``flat`` (prune_at_init zeroed the pruned ones)."""
    out = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        out[0].weight.copy_(flat[:12].view(4, 3))
        out[2].weight.copy_(flat[12:].view(2, 4))
    return out


def test_grasp_state_saved_before_the_variant_option_still_loads(tmp_path: Path) -> None:
    import json

    pruner = ip.prune_at_init(linear(), "grasp", 0.5, data(), half_sq)
    sp.save_state(pruner, tmp_path / "s")
    config_files = [f for f in (tmp_path / "s").rglob("*.json") if "method_options" in f.read_text()]
    assert config_files
    for f in config_files:  # as a state written before ``variant`` existed
        state = json.loads(f.read_text())
        assert state["config"]["method_options"] == {"variant": "paper"}
        state["config"]["method_options"] = {}
        f.write_text(json.dumps(state))
    other = sp.load_state(tmp_path / "s", ip.prune_at_init(linear(), "grasp", 0.5, data(), half_sq))
    assert keep(other.masks["weight"]) == keep(pruner.masks["weight"])
    with pytest.raises(ValueError, match="another configuration"):  # but an abs pruner is another one
        sp.load_state(tmp_path / "s", ip.prune_at_init(linear(), "grasp", 0.5, data(), half_sq, variant="abs"))


def test_grasp_variant_is_checked() -> None:
    with pytest.raises(ValueError, match=r"variant must be one of \['paper', 'abs'\], got 'ab'"):
        ip.prune_at_init(linear(), "grasp", 0.5, data(), half_sq, variant="ab")


def test_grasp_matches_a_full_hessian_on_a_nonlinear_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False))
    batches = [(torch.randn(5, 3), torch.randn(5, 2)) for _ in range(2)]
    loss = lambda m, b: nn.functional.mse_loss(m(b[0]), b[1])  # noqa: E731
    params = sp.find_prunable(model, include=[r"^\d\.weight$"])
    shapes = [p.shape for p in params.values()]
    flat0 = torch.cat([p.detach().flatten() for p in params.values()])

    def total_loss(flat: torch.Tensor) -> torch.Tensor:
        w1, w2 = flat[:12].view(shapes[0]), flat[12:].view(shapes[1])
        out = 0.0
        for x, y in batches:
            out = out + nn.functional.mse_loss(torch.tanh(x @ w1.T) @ w2.T, y)
        return out  # type: ignore[return-value]

    hess = torch.autograd.functional.hessian(total_loss, flat0)
    g = torch.autograd.functional.jacobian(total_loss, flat0)
    expected = -flat0 * (hess @ g)
    got = torch.cat([s.flatten() for s in grasp_scores(model, params, batches, loss)])
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)


FORCE_W = [[1.0, -2.0, 0.5], [2.0, -1.0, 0.5]]
FORCE_XS = [[-1.0, 0.0, 2.0], [2.0, 0.0, 1.0]]
FORCE_YS = [[-1.0, 1.0], [-1.0, 0.0]]


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        # iteration 1 (keep 0.25 ** (1/2) = 3 of 6): |W G1| = [[1, 0, 1], [4, 0, 2]] -> prune (0,1), (1,1)
        # and, of the tie at 1, the first (0,0). Iteration 2 on W*c1 = [[0, 0, .5], [2, 0, .5]]:
        # r2 = [1.5, 4.5], G2 = [[3, 0, 1.5], [9, 0, 4.5]], |W0 G2| = [[3, 0, .75], [18, 0, 2.25]];
        # keep 2 of 6 (prune round(0.75 * 6) = 4).
        ("force", [[True, False, False], [True, False, False]]),  # (0,0) comes back
        ("iter_snip", [[False, False, False], [True, False, True]]),  # only survivors compete
    ],
)
def test_force_two_iterations_by_hand(variant: str, expected: list[list[bool]]) -> None:
    layer = linear(FORCE_W)
    pruner = ip.prune_at_init(layer, "force", 0.75, data(FORCE_XS, FORCE_YS), half_sq, steps=2,
                              variant=variant)
    assert keep(pruner.masks["weight"]) == expected
    # the kept weights are the starting weights (the pruned network of iteration 1 was undone)
    w0 = torch.tensor(FORCE_W)
    assert torch.equal(layer.weight, w0 * pruner.masks["weight"])


def seven_frozen_by_hand(steps: int, sparsity: float, b1: float = 0.8, b2: float = 0.9,
                         eps: float = 1e-9) -> list[bool]:
    """SEVEN_pre frozen in plain Python: gradients of the masked network, cubic schedule, global
    threshold with ties to the earliest index."""
    w = [v for row in W for v in row]
    mask = [True] * 6
    m = [0.0] * 6
    v = [0.0] * 6
    s = [0.0] * 6
    for t in range(1, steps + 1):
        x, y = XS[(t - 1) % 2], YS[(t - 1) % 2]
        wm = [w[i] if mask[i] else 0.0 for i in range(6)]
        r = [sum(wm[3 * i + j] * x[j] for j in range(3)) - y[i] for i in range(2)]
        for idx in range(6):
            g = r[idx // 3] * x[idx % 3]
            a = abs(g)
            m[idx] = b1 * m[idx] + (1 - b1) * a
            v[idx] = b2 * v[idx] + (1 - b2) * a * a
            ratio = (m[idx] / (1 - b1**t)) / (math.sqrt(v[idx] / (1 - b2**t)) + eps)
            s[idx] += abs(wm[idx] * a * ratio)
        target = sparsity * (1 - (1 - t / steps) ** 3)
        k = round(target * 6)
        order = sorted(range(6), key=lambda i: (s[i] if mask[i] else -math.inf, i))
        for i in order[:k]:
            mask[i] = False
    return mask


@pytest.mark.parametrize(("steps", "sparsity"), [(3, 0.5), (4, 0.7)])
def test_seven_frozen_matches_plain_python(steps: int, sparsity: float) -> None:
    layer = linear()
    pruner = ip.prune_at_init(layer, "seven", sparsity, data(), half_sq, steps=steps,
                              freeze_during_pruning=True)
    assert pruner.masks["weight"].flatten().tolist() == seven_frozen_by_hand(steps, sparsity)


def test_magnitude_and_random_one_shot() -> None:
    pruner = ip.prune_at_init(linear(), "magnitude", 0.5, None, None)
    # |W| = [.5, 1, 2, 1, 1, .5]: prune .5, .5 and the first of the 1s
    assert keep(pruner.masks["weight"]) == [[False, False, True], [True, True, False]]
    pruner = ip.prune_at_init(linear(), "random", 0.5, None, None, seed=3)
    drawn = random_scores([torch.Size([2, 3])], seed=3)[0]
    assert torch.equal(pruner.masks["weight"], drawn > drawn.flatten().sort().values[2])


# -- the protocol ---------------------------------------------------------------------------------------
def tiny_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))


def mlp_batches(n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(3)
    return [(torch.randn(4, 6, generator=gen), torch.randint(0, 3, (4,), generator=gen)) for _ in range(n)]


def ce(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sparsity", [0.0, 0.37, 0.9])
def test_exact_count_and_weights_restored(method: str, sparsity: float) -> None:
    model = tiny_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sentinel = torch.full_like(model[0].bias, 7.0)
    model[0].bias.grad = sentinel  # a gradient the user had must survive untouched
    pruner = ip.prune_at_init(model, method, sparsity, mlp_batches(), ce, steps=4)
    assert pruner.finished and pruner.method == method
    assert pruner.report()["pruned"] == round(sparsity * pruner.numel)
    for name, value in model.state_dict().items():
        if name in pruner.masks:
            mask = pruner.masks[name]
            assert torch.equal(value, before[name] * mask), name
        else:
            assert torch.equal(value, before[name]), name
    assert model[0].bias.grad is sentinel
    assert all(p.grad is None for n, p in model.named_parameters() if n != "0.bias")


def test_returned_pruner_keeps_masks_through_fine_tuning_and_saves(tmp_path: Path) -> None:
    model = tiny_mlp()
    pruner = ip.prune_at_init(model, "grasp", 0.6, mlp_batches(), ce)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    pruner.attach(opt)
    for batch in mlp_batches(5):
        ce(model, batch).backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
    for name, mask in pruner.masks.items():
        assert bool((pruner.params[name][~mask] == 0).all())
    sp.save_state(pruner, tmp_path / "s")
    other = sp.load_state(tmp_path / "s", tiny_mlp(seed=1))
    assert other.method == "grasp" and other.config() == pruner.config() and other.finished
    assert all(torch.equal(other.masks[n], m) for n, m in pruner.masks.items())
    with pytest.raises(ValueError, match="another configuration.*method: state 'grasp', pruner 'snip'"):
        sp.load_state(tmp_path / "s", ip.prune_at_init(tiny_mlp(seed=1), "snip", 0.6, mlp_batches(), ce))


def test_iterative_methods_cycle_through_the_batches_in_order() -> None:
    seen: list[int] = []
    batches = [(i, x, y) for i, (x, y) in enumerate(mlp_batches(2))]

    def loss(model: nn.Module, batch: tuple[int, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        seen.append(batch[0])
        return ce(model, (batch[1], batch[2]))

    ip.prune_at_init(tiny_mlp(), "force", 0.5, batches, loss, steps=5)
    assert seen == [0, 1, 0, 1, 0]
    seen.clear()
    ip.prune_at_init(tiny_mlp(), "seven", 0.5, batches, loss, steps=3)
    assert seen == [0, 1, 0]
    seen.clear()
    ip.prune_at_init(tiny_mlp(), "snip", 0.5, batches, loss, steps=7)  # one shot: every batch once
    assert seen == [0, 1]
    seen.clear()
    ip.prune_at_init(tiny_mlp(), "grasp", 0.5, iter(batches), loss)  # a one-pass iterator is fine
    assert seen == [0, 1, 0, 1]  # g, then H g, on the same batches


def test_a_dataloader_is_cycled_by_iterative_methods() -> None:
    xs, ys = zip(*mlp_batches(2))
    dataset = torch.utils.data.TensorDataset(torch.cat(xs), torch.cat(ys))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)  # 2 batches per pass
    seen: list[int] = []

    def loss(model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        seen.append(int(batch[1][0]))
        return ce(model, (batch[0], batch[1]))

    pruner = ip.prune_at_init(tiny_mlp(), "force", 0.5, loader, loss, steps=5)
    assert len(seen) == 5 and seen[0] == seen[2] == seen[4] and seen[1] == seen[3]
    assert pruner.report()["pruned"] == round(0.5 * pruner.numel)


def test_snip_sums_gradients_over_batches() -> None:
    first = linear()
    one = snip_scores(first, sp.find_prunable(first), data()[:1], half_sq)[0]
    layer = linear()
    both = snip_scores(layer, sp.find_prunable(layer), data(), half_sq)[0]
    assert not torch.equal(one, both)
    # batch 1 alone: |W * G1| = [[3, 3, 6], [5, 2.5, 1.25]]
    assert one.tolist() == [[3.0, 3.0, 6.0], [5.0, 2.5, 1.25]]


def test_init_methods_are_listed_and_refused_by_pruner() -> None:
    assert {"snip", "grasp", "force"} <= set(sp.methods())
    with pytest.raises(ValueError, match="prune_at_init"):
        sp.Pruner(tiny_mlp(), "snip", 0.5)


def test_one_registry_of_methods_of_every_phase() -> None:
    assert sp.init_methods() == sp.methods("before") == sorted(METHODS)
    # the phases partition nothing: seven, magnitude and random run in both; snip, grasp, force before only
    assert not {"snip", "grasp", "force"} & set(sp.pruner_methods())
    assert {"seven", "magnitude", "random"} <= set(sp.pruner_methods()) & set(sp.init_methods())
    assert sp.methods() == sorted(set(sp.pruner_methods()) | set(sp.init_methods()) | set(sp.methods("calibration")))
    assert sp.methods("calibration") == ["sparsegpt", "wanda"]  # prune_oneshot's
    assert [get_method(m).one_shot for m in ("snip", "grasp", "force")] == [True, True, False]
    model = tiny_mlp()
    params = sp.find_prunable(model)
    request = InitRequest(model, params, 0.5, None, None, 1, "global", torch.float32, None, None, {"seed": 0})
    masks = get_method("magnitude").init_masks(request)
    assert list(masks) == list(params) and all(m.dtype == torch.bool for m in masks.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.5 * sum(p.numel() for p in params.values()))
    with pytest.raises(ValueError, match=r"unknown method 'snipp'; choose one of \['force', 'grasp'"):
        ip.prune_at_init(model, "snipp", 0.5)
    # an init method's pruner holds the fixed masks only: no statistics, no scorer of the method
    pruner = ip.prune_at_init(model, "seven", 0.5, mlp_batches(), ce, steps=2)
    assert pruner.importance.name == "fixed" and pruner.state_nbytes() == sum(m.numel() for m in pruner.masks.values())
    assert pruner.config()["method"] == "seven" and pruner.config()["method_options"]["beta1"] == 0.8


def test_tiny_bert_every_method() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config).eval()
    batches = [{"input_ids": torch.randint(0, 64, (2, 8)), "labels": torch.tensor([0, 1])}]
    for method in METHODS:
        pruner = ip.prune_at_init(model, method, 0.5, batches, lambda m, b: m(**b).loss, steps=2)
        assert pruner.report()["pruned"] == round(0.5 * pruner.numel)
        assert "classifier.weight" not in pruner.masks


# -- bad input ------------------------------------------------------------------------------------------
def gen_batches(n: int):  # type: ignore[no-untyped-def]
    yield from mlp_batches(n)


@pytest.mark.parametrize("method", ["snip", "grasp", "force", "seven"])
@pytest.mark.parametrize(
    ("batches", "loss_fn", "error", "match"),
    [
        ([], ce, ValueError, "batches is empty"),
        (iter([]), ce, ValueError, "batches is empty"),
        (None, ce, TypeError, "needs batches"),
        ({"x": torch.ones(2, 6)}, ce, TypeError, "iterable of batches"),
        (torch.ones(2, 6), ce, TypeError, "iterable of batches"),
        (5, ce, TypeError, "iterable of batches"),
        (mlp_batches(1), None, TypeError, "loss_fn must be a callable"),
        (mlp_batches(1), lambda m, b: 1.0, TypeError, "scalar loss tensor"),
        (mlp_batches(1), lambda m, b: m(b[0]).sum(1), ValueError, r"scalar \(0-dim\) tensor"),
        (mlp_batches(1), lambda m, b: ce(m, b).detach(), ValueError, "does not depend"),
        (mlp_batches(1), lambda m, b: ce(m, b) * math.nan, ValueError, "finite loss"),
        (mlp_batches(1), lambda m, b: ce(m, b).long(), TypeError, "expected a float loss"),
        ([(torch.ones(4, 6, device="meta"), torch.zeros(4))], ce, ValueError,
         r"batch 0: batch\[0\] is on meta but the model's prunable weights are on cpu"),
        ([{"x": torch.ones(4, 6, device="meta")}], ce, ValueError, r"batch\['x'\] is on meta"),
    ],
)
def test_bad_batches_and_losses(method: str, batches: object, loss_fn: object, error: type,
                                match: str) -> None:
    model = tiny_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(error, match=match):
        ip.prune_at_init(model, method, 0.5, batches, loss_fn, steps=3)  # type: ignore[arg-type]
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed by a failed call"


@pytest.mark.parametrize("method", ["force", "seven"])
def test_a_failure_mid_way_restores_the_weights(method: str) -> None:
    model = tiny_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def loss(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        calls.append(1)
        return ce(m, b) if len(calls) < 3 else ce(m, b) * math.inf

    with pytest.raises(ValueError, match="batch 2 is inf"):
        ip.prune_at_init(model, method, 0.8, mlp_batches(), loss, steps=4)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_a_one_pass_iterator_too_short_for_steps() -> None:
    with pytest.raises(ValueError, match="ran out after 2 of steps=5"):
        ip.prune_at_init(tiny_mlp(), "force", 0.5, gen_batches(2), ce, steps=5)


@pytest.mark.parametrize(
    ("method", "kwargs", "error", "match"),
    [
        ("platon", {}, ValueError, r"does not run before fine-tuning .*use sevenprune.Pruner\(model, 'platon'"),
        ("snipp", {}, ValueError, r"choose one of \['force', 'grasp'"),
        ("seven", {"freeze_during_pruning": False}, ValueError, "Algorithm 1"),
        ("snip", {"temperature": 2}, TypeError, "unknown option"),
        ("force", {"variant": "fast"}, ValueError, "'force' or 'iter_snip'"),
        ("seven", {"beta1": 2.0}, ValueError, "beta1 must be"),
        ("random", {"seed": "a"}, ValueError, "seed must be an integer"),
        ("snip", {"sparsity": 1.0}, ValueError, "sparsity must be in"),
        ("force", {"steps": 0}, ValueError, "steps must be >= 1"),
        ("snip", {"include": "nothing_matches"}, ValueError, "matched no weight"),
        ("magnitude", {"state_dtype": torch.int8}, ValueError, "state_dtype must be one of"),
    ],
)
def test_bad_arguments(method: str, kwargs: dict, error: type, match: str) -> None:
    sparsity = kwargs.pop("sparsity", 0.5)
    with pytest.raises(error, match=match):
        ip.prune_at_init(tiny_mlp(), method, sparsity, mlp_batches(1), ce, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", METHODS)
def test_on_cuda(method: str) -> None:
    model = tiny_mlp().cuda()
    batches = [(x.cuda(), y.cuda()) for x, y in mlp_batches()]
    pruner = ip.prune_at_init(model, method, 0.6, batches, ce, steps=3)
    assert pruner.report()["pruned"] == round(0.6 * pruner.numel)
    with pytest.raises(ValueError, match="is on cpu but the model's prunable weights are on cuda"):
        ip.prune_at_init(model, "snip", 0.6, mlp_batches(), ce)


# -- N:M before fine-tuning ------------------------------------------------------------------------------
def _top_n_per_group(score: torch.Tensor, n: int, m: int) -> list[list[bool]]:
    """The keep-mask written out loop by loop: in each row, each run of m inputs keeps its n best."""
    out = []
    for row in score.tolist():
        kept = []
        for g in range(0, len(row), m):
            group = row[g:g + m]
            best = sorted(range(m), key=lambda i: -group[i])[:n]
            kept += [i in best for i in range(m)]
        out.append(kept)
    return out


@pytest.mark.parametrize("pattern", ["2:4", "4:8", "1:4"])
def test_magnitude_n_m_keeps_the_n_largest_of_every_m_inputs(pattern: str) -> None:
    # distinct magnitudes (a permutation), so the expectation has no ties
    n, m = (int(v) for v in pattern.split(":"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3, bias=False))  # rows of 16 and of 8 inputs
    with torch.no_grad():
        for layer in (model[0], model[2]):
            signs = torch.where(torch.rand(layer.weight.shape) < 0.5, -1.0, 1.0)
            layer.weight.copy_(signs * (torch.randperm(layer.weight.numel()).float() + 1).view_as(layer.weight))
    weights = {name: p.detach().clone() for name, p in model.named_parameters() if name.endswith("weight")}
    pruner = ip.prune_at_init(model, "magnitude", 1 - n / m, pattern=pattern)
    for name, w in weights.items():
        assert keep(pruner.masks[name]) == _top_n_per_group(w.abs(), n, m), name
    # a global magnitude ranking at the same sparsity is not n:m here: the pattern really decides
    unstructured = ip.prune_at_init(linear_copy(weights, model), "magnitude", 1 - n / m)
    assert any(keep(unstructured.masks[k]) != keep(pruner.masks[k]) for k in weights)
    assert pruner.config()["pattern"] == pattern and pruner.sparsity() == pytest.approx(1 - n / m)


def test_magnitude_n_m_breaks_equal_magnitudes_by_input_index_lower_pruned_first() -> None:
    # quantized checkpoints (SmolLM2's Q4_1) hold many equal magnitudes in a group; the rule is documented
    # (docs/methods.md) and the experiment experiments/results/L/nm_ties.py measures what it changes
    layer = nn.Linear(8, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0, 2.0, -2.0, 2.0, 2.0],
                                         [3.0, 1.0, 1.0, -3.0, 1.0, 2.0, 2.0, 1.0],
                                         [0.5, 4.0, -0.5, 0.5, 1.0, -1.0, 5.0, 1.0]]))
    pruner = ip.prune_at_init(nn.Sequential(layer), "magnitude", 0.5, pattern="2:4")
    assert pruner.masks["0.weight"].bool().tolist() == [
        [False, False, True, True, False, False, True, True],   # all equal: the two last kept
        [True, False, False, True, False, True, True, False],   # no tie at the boundary: the two largest
        [False, True, False, True, False, False, True, True]]   # 4 then the later 0.5; 5 then the later 1


def linear_copy(weights: dict[str, torch.Tensor], model: nn.Module) -> nn.Module:
    import copy

    other = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in other.named_parameters():
            if name in weights:
                p.copy_(weights[name])
    return other


def test_snip_2_4_keeps_the_best_snip_scores_of_every_group() -> None:
    # SNIP's score |W * dL/dW| computed here with autograd, independently of snip_scores
    torch.manual_seed(1)
    layer = nn.Linear(8, 3, bias=False)
    batches = [(torch.randn(4, 8), torch.randn(4, 3)) for _ in range(2)]
    w = layer.weight.detach().clone().requires_grad_(True)
    loss = sum(0.5 * ((x @ w.t() - y) ** 2).sum() for x, y in batches)
    (grad,) = torch.autograd.grad(loss, w)
    expected = _top_n_per_group((w.detach() * grad).abs(), 2, 4)
    pruner = ip.prune_at_init(layer, "snip", 0.5, batches, half_sq, pattern="2:4")
    assert keep(pruner.masks["weight"]) == expected


def test_n_m_on_a_gpt2_conv1d_groups_along_its_first_dimension() -> None:
    # GPT-2's Conv1D stores (in, out): the groups of m inputs run down the columns
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(2)
    model = nn.Sequential(Conv1D(3, 8))  # nf=3 outputs, nx=8 inputs: weight (8, 3)
    with torch.no_grad():
        model[0].weight.copy_((torch.randperm(24).float() + 1).view(8, 3))
    expected = _top_n_per_group(model[0].weight.detach().t(), 2, 4)
    pruner = ip.prune_at_init(model, "magnitude", 0.5, pattern="2:4")
    assert keep(pruner.masks["0.weight"].t()) == expected


def test_seven_pre_ramps_to_the_n_m_pattern() -> None:
    torch.manual_seed(3)
    layer = nn.Linear(8, 4, bias=False)
    batches = [(torch.randn(2, 8), torch.randn(2, 4)) for _ in range(3)]
    pruner = ip.prune_at_init(layer, "seven", 0.5, batches, half_sq, steps=3, pattern="2:4")
    assert sp.patterns.nm_holds(pruner.masks["weight"], 2, 4)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "force", "pattern": "2:4"}, r"method 'force' prunes unstructured before fine-tuning, not pattern '2:4'"),
    ({"method": "magnitude", "pattern": "heads"}, r"prune_at_init prunes 'unstructured' or 'n:m'"),
    ({"method": "magnitude", "pattern": "2:4", "sparsity": 0.6}, r"fixes the sparsity at 1 - 2/4"),
    ({"method": "magnitude", "pattern": "2:3"}, r"has 8 inputs per row, not a multiple of 3"),
])
def test_patterns_a_method_cannot_take_are_refused_before_any_scoring(kwargs: dict, match: str) -> None:
    kwargs = dict(kwargs)  # the parameter's own dict is shared: pop from a copy
    torch.manual_seed(4)
    layer = nn.Linear(8, 4, bias=False)
    before = layer.weight.detach().clone()
    sparsity = kwargs.pop("sparsity", 0.5 if kwargs["pattern"] != "2:3" else 1 / 3)
    with pytest.raises(ValueError, match=match):
        ip.prune_at_init(layer, kwargs.pop("method"), sparsity, [(torch.randn(2, 8), torch.randn(2, 4))],
                         half_sq, **kwargs)
    assert torch.equal(layer.weight, before)


def test_a_method_of_your_own_that_ignores_the_pattern_is_caught() -> None:
    from sevenprune.importance import register, unregister

    @register
    class FirstHalf:  # selects on its own (the first half of every row) and never reads request.pattern
        name = "first_half_toy"
        phases = ("before",)
        needs_grad = False
        defaults: dict[str, object] = {}

        @classmethod
        def init_masks(cls, request: InitRequest) -> dict[str, torch.Tensor]:
            out = {}
            for name, p in request.params.items():
                mask = torch.zeros_like(p, dtype=torch.bool)
                mask[:, : p.shape[1] // 2] = True
                out[name] = mask
            return out

    try:
        layer = nn.Linear(8, 2, bias=False)
        before = layer.weight.detach().clone()
        with pytest.raises(ValueError, match=r"'first_half_toy' does not take pattern '2:4': its mask of 'weight'"):
            ip.prune_at_init(layer, "first_half_toy", 0.5, pattern="2:4")
        assert torch.equal(layer.weight, before)  # nothing applied
        assert ip.prune_at_init(layer, "first_half_toy", 0.5).sparsity() == 0.5  # unstructured: its own choice
    finally:
        unregister("first_half_toy")
