"""Fidelity to the authors' code: each test computes the expected value independently (plain Python
or a brute-force autograd computation) and would fail on the named mutation of the library.

Covered: SEVEN's window step and observed-step bias correction, its noise_discount ablation, the
compiled (fused) SEVEN path, PLATON's local window (delta_t), per-matrix ranking (scope="local"),
movement in the authors' form (Adam-trained scores), soft movement's regulariser over several
matrices, low-precision statistics, and GraSP's Hessian-gradient product over every Linear weight.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import sevenprune as sp
from sevenprune import schedules
from sevenprune.importance import movement as _movement  # noqa: F401 - registers the methods
from sevenprune.importance import platon as _platon  # noqa: F401
from sevenprune.importance import soft_movement as _soft  # noqa: F401
from sevenprune.importance.grasp import grasp_scores
from sevenprune.init_pruning import prune_at_init

W = [[1.0, -2.0, 0.5], [3.0, -1.0, 2.0]]
GRADS = [
    [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]],
    [[0.5, 1.0, -2.0], [-1.0, 0.5, -0.5]],
    [[0.5, -3.0, 2.0], [1.0, 0.0, 4.0]],
    [[-1.5, 0.25, 1.0], [0.5, 2.0, -1.0]],
    [[1.0, -0.5, 0.75], [-2.0, 1.0, 0.5]],
    [[0.25, 1.5, -1.0], [1.0, -0.75, 2.0]],
    [[2.0, -1.0, 0.5], [-0.5, 0.25, 1.5]],
]
NAN = [[math.nan] * 3] * 2


def layer_with(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def feed(pruner: sp.Pruner, layer: nn.Linear, grads: list[list[list[float]]]) -> sp.Pruner:
    for g in grads:
        layer.weight.grad = torch.tensor(g)
        pruner.step()
    return pruner


def seven_reference(grads: list[list[list[float]]], b1: float = 0.8, b2: float = 0.9,
                    eps: float = 1e-9) -> list[list[float]]:
    """method.md's SEVEN score in plain Python, t = 1, 2, ... over ``grads`` (the observed steps)."""
    out = []
    for i in range(2):
        row = []
        for j in range(3):
            m = v = s = 0.0
            for t, g in enumerate(grads, start=1):
                a = abs(g[i][j])
                m = b1 * m + (1 - b1) * a
                v = b2 * v + (1 - b2) * a * a
                s += abs(W[i][j] * a * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps))
            row.append(s)
        out.append(row)
    return out


# -- SEVEN ------------------------------------------------------------------------------------------
def test_seven_counts_t_from_the_window_start_not_the_global_step() -> None:
    # mutation caught: observe(n) with the global step n (bias corrections 1 - b^(t + 3))
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "seven", sparsity=0.0, start_step=3, prune_steps=100)
    feed(pruner, layer, GRADS[:3])  # before the window: not observed
    assert pruner.observed_steps == 0
    feed(pruner, layer, GRADS[3:6])
    got = pruner.importance.stats["score"]["weight"]
    assert torch.allclose(got, torch.tensor(seven_reference(GRADS[3:6])), rtol=1e-6, atol=0)


def test_seven_skipped_overflow_step_does_not_advance_bias_correction() -> None:
    # mutation caught: t = window step (the skipped step would count in 1 - b^t)
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "seven", sparsity=0.0, start_step=2, prune_steps=100)
    feed(pruner, layer, GRADS[:2] + [GRADS[2], NAN, GRADS[3], GRADS[4]])
    assert (pruner.step_count, pruner.observed_steps, pruner.skipped_steps) == (6, 3, 1)
    got = pruner.importance.stats["score"]["weight"]
    assert torch.allclose(got, torch.tensor(seven_reference([GRADS[2], GRADS[3], GRADS[4]])), rtol=1e-6, atol=0)


def test_seven_without_noise_discount_is_the_accumulated_first_order_score() -> None:
    layer = layer_with(W)
    pruner = feed(sp.Pruner(layer, "seven", sparsity=0.0, start_step=0, prune_steps=100, noise_discount=False),
                  layer, GRADS[:4])
    expected = [[sum(abs(W[i][j] * g[i][j]) for g in GRADS[:4]) for j in range(3)] for i in range(2)]
    assert torch.allclose(pruner.importance.stats["score"]["weight"], torch.tensor(expected), rtol=1e-6)
    assert set(pruner.importance.stats) == {"score"}  # no moments: 4 bytes per weight + the mask
    assert pruner.state_nbytes() == 5 * pruner.numel
    # and it is not SEVEN: the discount changes the scores here
    assert not torch.allclose(torch.tensor(expected), torch.tensor(seven_reference(GRADS[:4])), rtol=1e-3)


def test_noise_discount_is_what_keeps_steady_gradients() -> None:
    # 4 steady weights (|g| = 1) and 4 noisy ones (|g| = 2.0 / 0.2, larger mean): SEVEN keeps the steady
    # ones, the ablation keeps the noisy ones, on the same schedule and threshold
    grads = [[[1.0] * 4 + [2.0 if t % 2 == 0 else 0.2] * 4] for t in range(10)]
    kept = {}
    for discount in (True, False):
        layer = layer_with([[1.0] * 8])
        pruner = sp.Pruner(layer, "seven", sparsity=0.0, start_step=0, prune_steps=100, noise_discount=discount)
        for g in grads:
            layer.weight.grad = torch.tensor(g)
            pruner.step()
        pruner.update_masks(0.5)  # the same threshold on the scores of the 10 steps
        kept[discount] = pruner.masks["weight"][0].tolist()
    assert kept[True] == [True] * 4 + [False] * 4
    assert kept[False] == [False] * 4 + [True] * 4


def test_compiled_seven_update_matches_the_formula() -> None:
    # the fused torch.compile path (used on large models) against plain Python; a fallback to eager
    # would warn, and is refused here so that the compiled kernel itself is what is checked
    pytest.importorskip("torch._inductor")
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "seven", sparsity=0.0, start_step=1, prune_steps=100, compile=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="compiled SEVEN update failed")
        warnings.filterwarnings("error", message="torch.compile unavailable")
        try:
            feed(pruner, layer, GRADS[:4])
        except UserWarning as exc:  # pragma: no cover - a platform without a working compiler
            pytest.skip(f"torch.compile unavailable here: {exc}")
    from sevenprune.importance.seven import _eager_update_

    assert pruner.importance._kernel is not _eager_update_
    got = pruner.importance.stats["score"]["weight"]
    assert torch.allclose(got, torch.tensor(seven_reference(GRADS[1:4])), rtol=1e-5, atol=0)


# -- PLATON's local window ---------------------------------------------------------------------------
def platon_reference(grads: list[list[list[float]]], dt: int, b1: float = 0.85, b2: float = 0.95,
                     fold_partial: bool = False) -> tuple[list[list[float]], list[list[float]]]:
    """The authors' window in plain Python: Ibar, U updated once per window of ``dt`` steps."""
    ibar = [[0.0] * 3 for _ in range(2)]
    unc = [[0.0] * 3 for _ in range(2)]
    windows = [grads[k:k + dt] for k in range(0, len(grads), dt)]
    if not fold_partial and len(windows[-1]) < dt:
        windows = windows[:-1]
    for win in windows:
        for i in range(2):
            for j in range(3):
                mean = sum(abs(W[i][j] * g[i][j]) for g in win) / len(win)
                ibar[i][j] = b1 * ibar[i][j] + (1 - b1) * mean
                unc[i][j] = b2 * unc[i][j] + (1 - b2) * abs(mean - ibar[i][j])
    return ibar, unc


def test_platon_window_updates_once_per_window_with_the_window_mean() -> None:
    # mutation caught: folding every step (delta_t ignored), or folding the last step instead of the mean
    layer = layer_with(W)
    pruner = feed(sp.Pruner(layer, "platon", sparsity=0.0, start_step=0, prune_steps=100, delta_t=3),
                  layer, GRADS[:7])
    ibar, unc = platon_reference(GRADS[:7], 3)  # two full windows folded; step 7 waits in the window
    stats = pruner.importance.stats
    assert torch.allclose(stats["ibar"]["weight"], torch.tensor(ibar), rtol=1e-6)
    assert torch.allclose(stats["unc"]["weight"], torch.tensor(unc), rtol=1e-6)
    window_mean = [[abs(W[i][j] * GRADS[6][i][j]) for j in range(3)] for i in range(2)]
    assert torch.allclose(stats["ipt"]["weight"], torch.tensor(window_mean))


def _prune_lowest(scores: list[float], keep: list[bool], k: int) -> list[bool]:
    """Prune the lowest-scored kept entries (ties: lowest index) until ``k`` are pruned."""
    keep = list(keep)
    order = sorted((s if kept else -math.inf, i) for i, (s, kept) in enumerate(zip(scores, keep)))
    for _, i in order[:k]:
        keep[i] = False
    return keep


def test_platon_masks_change_on_window_boundaries_and_fold_the_partial_window_at_the_end() -> None:
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "platon", sparsity=0.5, start_step=0, prune_steps=7, delta_t=3)
    keep = [True] * 6
    for t, g in enumerate(GRADS[:7], start=1):
        layer.weight.grad = torch.tensor(g)
        pruner.step()
        if t in (3, 6, 7):  # window boundaries and the last step
            ibar, unc = platon_reference(GRADS[:t], 3, fold_partial=True)
            scores = [ibar[i][j] * unc[i][j] for i in range(2) for j in range(3)]
            keep = _prune_lowest(scores, keep, schedules.pruned_count(sp.cubic_sparsity(t, 0.5, 0, 7), 6))
        assert pruner.masks["weight"].reshape(-1).tolist() == keep, f"step {t}"
    assert sum(not k for k in keep) == 3


# -- scope="local" ---------------------------------------------------------------------------------
def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 4), nn.ReLU(), nn.Linear(4, 3))


def sgd_steps(model: nn.Module, opt: torch.optim.Optimizer, pruner: sp.Pruner, steps: int):
    """One seeded SGD step + ``pruner.step()`` at a time; yields the step number after each."""
    gen = torch.Generator().manual_seed(3)
    for step in range(1, steps + 1):
        x, y = torch.randn(5, 6, generator=gen), torch.randint(0, 3, (5,), generator=gen)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
        yield step


def test_local_scope_prunes_each_matrix_by_its_own_ranking() -> None:
    # magnitude in one step: every matrix loses its own round(s * n) smallest |W| (a global threshold
    # would strip the small-valued layer first)
    model = mlp()
    with torch.no_grad():
        model[2].weight.mul_(0.01)  # a layer of small weights
    pruner = sp.Pruner(model, "magnitude", sparsity=0.6, start_step=0, prune_steps=1, scope="local")
    expected = {}
    for name, p in pruner.params.items():
        flat = p.detach().abs().reshape(-1).tolist()
        k = round(0.6 * len(flat))
        expected[name] = _prune_lowest(flat, [True] * len(flat), k)
    pruner.step()
    for name, mask in pruner.masks.items():
        assert mask.reshape(-1).tolist() == expected[name], name
    glob = sp.Pruner(mlp(), "magnitude", sparsity=0.6, start_step=0, prune_steps=1)
    with torch.no_grad():
        glob.model[2].weight.mul_(0.01)
    glob.step()
    assert glob.report()["layers"]["2.weight"]["sparsity"] > 0.9  # what local scope avoids


@pytest.mark.parametrize("method", ["seven", "platon", "movement", "soft_movement", "random"])
def test_local_scope_reaches_the_scheduled_fraction_in_every_matrix_at_every_step(method: str) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    extra = {"delta_t": 1} if method == "platon" else {}
    pruner = sp.Pruner(model, method, sparsity=0.7, start_step=1, prune_steps=6, optimizer=opt, scope="local", **extra)
    for step in sgd_steps(model, opt, pruner, 8):
        s = sp.cubic_sparsity(step, 0.7, 1, 6)
        for name, p in pruner.params.items():
            assert int((~pruner.masks[name]).sum()) == schedules.pruned_count(s, p.numel()), (name, step)
            assert bool((p[~pruner.masks[name]] == 0).all())
    assert pruner.config()["scope"] == "local"


def test_local_scope_is_refused_when_misspelt() -> None:
    with pytest.raises(ValueError, match=r"scope must be one of \['global', 'local'\], got 'layer'"):
        sp.Pruner(mlp(), "seven", 0.5, scope="layer")


def test_local_scope_for_one_shot_init_methods() -> None:
    model = mlp()
    pruner = prune_at_init(model, "magnitude", 0.5, scope="local")
    for name, p in pruner.params.items():
        assert int((~pruner.masks[name]).sum()) == schedules.pruned_count(0.5, p.numel()), name
    assert pruner.config()["scope"] == "local"


# -- movement, the authors' form ----------------------------------------------------------------------
def test_movement_adam_form_trains_scores_from_the_first_step() -> None:
    # their scores are parameters trained by AdamW (lr 1e-2) on dL/dS = G * W from step 1; the pruning
    # window starts at step 3. Mutations caught: a plain sum, no bias correction, scores from the window only.
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "movement", sparsity=0.0, start_step=2, prune_steps=100, form="adam")
    feed(pruner, layer, GRADS[:5])
    expected = []
    for i in range(2):
        row = []
        for j in range(3):
            s = m = v = 0.0
            for t, g in enumerate(GRADS[:5], start=1):
                d = g[i][j] * W[i][j]
                m = b1 * m + (1 - b1) * d
                v = b2 * v + (1 - b2) * d * d
                s -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
            row.append(s)
        expected.append(row)
    assert pruner.observed_steps == 5
    assert torch.allclose(pruner.importance.stats["score"]["weight"], torch.tensor(expected), rtol=1e-5)


def test_movement_sum_form_still_observes_the_window_only() -> None:
    layer = layer_with(W)
    pruner = feed(sp.Pruner(layer, "movement", sparsity=0.0, start_step=2, prune_steps=100), layer, GRADS[:5])
    expected = [[-sum(W[i][j] * g[i][j] for g in GRADS[2:5]) for j in range(3)] for i in range(2)]
    assert torch.allclose(pruner.importance.stats["score"]["weight"], torch.tensor(expected))


# -- soft movement: the regulariser over several matrices ----------------------------------------------
def test_soft_movement_regulariser_is_normalised_per_matrix_and_by_the_number_of_matrices() -> None:
    # R = (1/L) sum_l mean(sigmoid(S_l)): dR/dS_l = sigmoid'(S_l) / (L n_l). With zero task gradients,
    # SGD with lr 1 and S_0 = 0.5: S_1 = 0.5 - lam * sig'(0.5) / (L n_l). Mutations caught: dividing by the
    # total count N, or forgetting L.
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 5, bias=False))
    lam = 7.0
    pruner = sp.Pruner(model, "soft_movement", sparsity=0.0, start_step=0, prune_steps=100, score_optimizer="sgd",
                       lr=1.0, reg_lambda=lam, init=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    pruner.step()
    sig = 1 / (1 + math.exp(-0.5))
    for name, n in (("0.weight", 6), ("1.weight", 10)):
        expected = 0.5 - lam * sig * (1 - sig) / (2 * n)
        got = pruner.importance.stats["score"][name]
        assert torch.allclose(got, torch.full_like(got, expected), rtol=1e-6), name


# -- low-precision statistics --------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "stat", "options"), [
    ("seven", "m", {}), ("platon", "ibar", {"delta_t": 1}), ("movement", "exp_avg", {"form": "adam"}),
    ("soft_movement", "exp_avg", {}),
])
def test_bf16_statistics_are_bf16_and_track_fp32(method: str, stat: str, options: dict) -> None:
    # mutation caught: a state_dtype that is ignored (fp32 moments), or bf16 arithmetic that drifts
    torch.manual_seed(0)
    grads = [torch.randn(2, 3).tolist() for _ in range(6)]
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        layer = layer_with(W)
        pruner = feed(sp.Pruner(layer, method, sparsity=0.0, start_step=0, prune_steps=100, state_dtype=dtype,
                                **options), layer, grads)
        assert pruner.importance.stats[stat]["weight"].dtype == dtype
        results[dtype] = pruner.importance.scores(pruner.masks)[0].float()
    assert torch.allclose(results[torch.bfloat16], results[torch.float32], rtol=3e-2, atol=1e-4)


# -- GraSP over every Linear weight ------------------------------------------------------------------
def test_grasp_hessian_gradient_product_runs_through_the_head() -> None:
    # a 20-64-64-5 MLP whose last layer (the head) is not prunable: g and Hg are taken over all three
    # weights, as the authors' GraSP.py does, and only the first two are scored. Brute force: the
    # Hessian-vector product of the loss as a function of all weights (torch.autograd.functional.hvp).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 5))
    x, y = torch.randn(16, 20), torch.randint(0, 5, (16,))
    names = ["0.weight", "2.weight", "4.weight"]
    weights = [dict(model.named_parameters())[n].detach().clone() for n in names]

    def loss_of(*ws: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(nn.functional.linear(x, ws[0], model[0].bias))
        h = torch.tanh(nn.functional.linear(h, ws[1], model[2].bias))
        return nn.functional.cross_entropy(nn.functional.linear(h, ws[2], model[4].bias), y)

    g = torch.autograd.grad(loss_of(*[w.requires_grad_() for w in weights]), weights)
    _, hg = torch.autograd.functional.hvp(loss_of, tuple(w.detach() for w in weights), g)
    expected = [-w.detach() * h for w, h in zip(weights[:2], hg[:2])]

    params = {n: p for n, p in model.named_parameters() if n in names[:2]}
    got = grasp_scores(model, params, [(x, y)], lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]))
    for e, s in zip(expected, got):
        assert torch.allclose(s, e, rtol=1e-4, atol=1e-7)

    # the head's cross terms matter: Hg over the prunable weights alone ranks differently
    _, hg_own = torch.autograd.functional.hvp(lambda a, b: loss_of(a, b, weights[2].detach()),
                                             tuple(w.detach() for w in weights[:2]), g[:2])
    own = torch.cat([(-w.detach() * h).reshape(-1) for w, h in zip(weights[:2], hg_own)])
    full = torch.cat([s.reshape(-1) for s in got])
    k = full.numel() // 2
    changed = (torch.topk(-full, k).indices.sort().values != torch.topk(-own, k).indices.sort().values).sum()
    assert int(changed) > 0


# -- non-finite gradients -------------------------------------------------------------------------------
def test_all_non_finite_gradients_defer_selection_warn_past_a_few_and_refuse_at_the_end() -> None:
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "seven", sparsity=0.5, start_step=0, prune_steps=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feed(pruner, layer, [NAN] * 5)
    assert pruner.sparsity() == 0.0  # nothing observed: nothing selected (no pruning from empty scores)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 5 - sp.Pruner.QUIET_SKIPS
    with pytest.raises(RuntimeError, match="observed nothing and cannot choose what to prune"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            feed(pruner, layer, [NAN])


def test_a_late_first_observation_catches_up_with_the_schedule() -> None:
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "seven", sparsity=0.5, start_step=0, prune_steps=4)
    feed(pruner, layer, [NAN, NAN, GRADS[0]])
    assert pruner.report()["pruned"] == schedules.pruned_count(sp.cubic_sparsity(3, 0.5, 0, 4), 6)
    feed(pruner, layer, [GRADS[1]])
    assert pruner.report()["pruned"] == 3


# -- mask_interval ----------------------------------------------------------------------------------
@pytest.mark.parametrize("interval", [1, 3])
def test_mask_interval_selects_every_nth_step_and_the_last_with_exact_counts(interval: int) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner = sp.Pruner(model, "seven", sparsity=0.7, start_step=2, prune_steps=8, optimizer=opt,
                       mask_interval=interval)
    due = 0
    for step in sgd_steps(model, opt, pruner, 11):
        w = step - 2
        if 1 <= w <= 8 and (w % interval == 0 or w == 8):
            due = step
        expected = schedules.pruned_count(sp.cubic_sparsity(due, 0.7, 2, 8), pruner.numel) if due else 0
        assert pruner.report()["pruned"] == expected, step
    assert pruner.observed_steps == 8  # scores are observed every step whatever the interval
    assert pruner.config()["mask_interval"] == interval
    with pytest.raises(ValueError, match="mask_interval must be >= 1, got 0"):
        sp.Pruner(mlp(), "seven", 0.5, mask_interval=0)


def test_local_scope_with_an_n_m_pattern_counts_per_matrix_and_ends_exactly_2_4() -> None:
    from sevenprune.patterns import nm_holds

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner = sp.Pruner(model, "magnitude", sparsity=0.5, start_step=0, prune_steps=4, optimizer=opt,
                       pattern="2:4", scope="local")
    gen = torch.Generator().manual_seed(1)
    for step in range(1, 5):
        x, y = torch.randn(5, 8, generator=gen), torch.randint(0, 4, (5,), generator=gen)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
        s = sp.cubic_sparsity(step, 0.5, 0, 4)
        for name, p in pruner.params.items():
            assert int((~pruner.masks[name]).sum()) == schedules.pruned_count(s, p.numel()), (name, step)
    assert all(nm_holds(m, 2, 4) for m in pruner.masks.values())
