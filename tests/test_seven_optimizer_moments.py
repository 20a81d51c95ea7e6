"""SEVEN with ``moments="optimizer"``: the noise discount read from the attached AdamW's own moments.

Checked against an independent computation (AdamW's moment update written out by hand, the score from
those moments, a plain global selection), refused with optimizers that keep no Adam moments, resumed
exactly together with the optimizer's state, and measured in bytes per weight. The DDP and FSDP2
cases are in tests/test_ddp.py and tests/test_distributed_threshold.py (tests/_ddp_worker.py).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import sevenprune as sp

START, WINDOW, STEPS = 2, 5, 7  # two steps before the window: the optimizer's k runs 2 ahead of t
SPARSITY = 0.6
LR, WD, EPS = 0.05, 0.1, 1e-8
BETAS = [(0.9, 0.999), (0.8, 0.95)]  # two param groups with their own betas


def tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)


def loss_of(model: nn.Module, step: int) -> torch.Tensor:
    x, y = batch(step)
    return (model(x) - y).square().mean()


def make_optimizer(model: nn.Sequential, **kw: object) -> torch.optim.AdamW:
    groups = [{"params": list(model[0].parameters()), "betas": BETAS[0]},
              {"params": list(model[2].parameters()), "betas": BETAS[1]}]
    return torch.optim.AdamW(groups, lr=LR, weight_decay=WD, eps=EPS, **kw)  # type: ignore[arg-type]


def run_pruner(steps: int = STEPS, **kw: object) -> tuple[nn.Sequential, sp.Pruner, list[dict[str, torch.Tensor]]]:
    model = tiny_model()
    opt = make_optimizer(model, **kw)
    pruner = sp.Pruner(model, "seven", SPARSITY, START, WINDOW, optimizer=opt, moments="optimizer")
    scores = []
    for step in range(1, steps + 1):
        loss_of(model, step).backward()
        opt.step()
        pruner.step()
        if pruner.importance.stats:
            scores.append({n: s.clone() for n, s in pruner.importance.stats["score"].items()})
        opt.zero_grad()
    return model, pruner, scores


def hand_run() -> tuple[nn.Sequential, dict[str, torch.Tensor], list[dict[str, torch.Tensor]], list[float]]:
    """The same training with AdamW written out by hand (fp64), SEVEN's score computed from its moments
    (method.md / docs/methods.md, the optimizer form), a plain global selection by sorting, and the
    pruner's contract: masks applied after each optimizer step, moments of newly pruned entries zeroed."""
    model = tiny_model()
    names = ["0.weight", "2.weight"]
    params = dict(model.named_parameters())
    betas = {"0.weight": BETAS[0], "0.bias": BETAS[0], "2.weight": BETAS[1], "2.bias": BETAS[1]}
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    masks = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    score = {n: torch.zeros_like(params[n]) for n in names}
    scores, gaps = [], []
    total = sum(params[n].numel() for n in names)
    for k in range(1, STEPS + 1):  # k: the optimizer's step count (every weight has a gradient)
        model.zero_grad()
        loss_of(model, k).backward()
        with torch.no_grad():
            for n, p in params.items():
                g = p.grad
                b1, b2 = betas[n]
                p.mul_(1 - LR * WD)  # AdamW: decoupled weight decay, then the moments and the update
                m[n] = b1 * m[n] + (1 - b1) * g
                v[n] = b2 * v[n] + (1 - b2) * g * g
                m_hat, v_hat = m[n] / (1 - b1**k), v[n] / (1 - b2**k)
                p.sub_(LR * m_hat / (v_hat.sqrt() + EPS))
            for n in names:  # the pruner's hook: pruned weights stay exactly zero
                params[n].mul_(masks[n])
            if k <= START:
                continue
            t = k - START  # the window's step
            for n in names:
                b1, b2 = betas[n]
                m_hat = m[n] / (1 - b1**k)
                r_hat = (v[n] / (1 - b2**k)).sqrt() + 1e-9  # the pruner's eps
                score[n] += (params[n] * params[n].grad * m_hat / r_hat).abs()
                score[n][~masks[n]] = -math.inf
            s_t = SPARSITY * (1 - (1 - t / WINDOW) ** 3)
            count = round(s_t * total)
            flat = torch.cat([score[n].reshape(-1) for n in names])
            order = torch.sort(flat, stable=True).values
            if 0 < count < total:  # the test's premise: no near-tie at the threshold
                gaps.append(float((order[count] - order[count - 1]) / order[count].abs()))
            keep = torch.ones_like(flat, dtype=torch.bool)
            keep[torch.sort(flat, stable=True).indices[:count]] = False
            offset = 0
            for n in names:
                size = params[n].numel()
                new = keep[offset:offset + size].view_as(masks[n])
                newly = masks[n] & ~new
                m[n][newly], v[n][newly] = 0.0, 0.0  # the pruner zeroes the optimizer's state there
                masks[n] = new
                params[n].mul_(new)
                score[n][~new] = -math.inf
                offset += size
            scores.append({n: s.clone() for n, s in score.items()})
    return model, masks, scores, gaps


def test_optimizer_form_matches_a_hand_run_adamw() -> None:
    model, pruner, scores = run_pruner()
    ref_model, ref_masks, ref_scores, gaps = hand_run()
    assert min(gaps) > 1e-3  # the scores near each threshold are apart: rounding cannot flip a mask
    assert len(ref_scores) == WINDOW and len(scores) == WINDOW - 1  # the last step frees the statistics
    for got, want in zip(scores, ref_scores):  # the score after every step of the window but the last
        for n in got:
            finite = torch.isfinite(want[n])
            assert torch.equal(torch.isfinite(got[n]), finite)
            assert torch.allclose(got[n][finite].double(), want[n][finite], rtol=1e-5, atol=0)
    for n, mask in ref_masks.items():
        assert torch.equal(pruner.masks[n], mask)
    assert pruner.sparsity() == round(SPARSITY * pruner.numel) / pruner.numel
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.allclose(p, q, rtol=1e-9, atol=1e-12)


def test_optimizer_form_is_not_the_pruners_own_moments() -> None:
    # the same run with the pruner's own signed moments (b1 0.8, b2 0.9, its own t) scores otherwise:
    # the hand-run match above cannot come from the default computation
    _, _, scores = run_pruner()
    model = tiny_model()
    opt = make_optimizer(model)
    pruner = sp.Pruner(model, "seven", SPARSITY, START, WINDOW, optimizer=opt, moments="signed")
    for step in range(1, START + 2):
        loss_of(model, step).backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
    own = pruner.importance.stats["score"]["0.weight"]
    assert not torch.allclose(own, scores[0]["0.weight"], rtol=1e-3)


@pytest.mark.parametrize("kw", [{"foreach": True}, {"foreach": False}, {"fused": True}])
def test_foreach_and_fused_adamw_give_the_same_masks(kw: dict[str, bool]) -> None:
    if kw.get("fused"):  # fused AdamW keeps `step` as a tensor; on the CPU from torch 2.4
        try:
            torch.optim.AdamW([nn.Parameter(torch.zeros(1, dtype=torch.float64))], fused=True)
        except (RuntimeError, ValueError) as exc:
            pytest.skip(f"fused AdamW unavailable here: {exc}")
    _, reference, _ = run_pruner()
    _, pruner, _ = run_pruner(**kw)
    for n, mask in reference.masks.items():
        assert torch.equal(pruner.masks[n], mask)


def test_pinned_scores_and_cleared_moments_stay_consistent() -> None:
    model = tiny_model()
    opt = make_optimizer(model)
    pruner = sp.Pruner(model, "seven", SPARSITY, 0, 20, optimizer=opt, moments="optimizer",
                       state_dtype=torch.bfloat16)
    for step in range(1, 8):
        loss_of(model, step).backward()
        opt.step()
        pruner.step()
        for n, p in pruner.params.items():
            mask, score = pruner.masks[n], pruner.importance.stats["score"][n]
            assert score.dtype == torch.bfloat16
            assert torch.isneginf(score[~mask]).all() and torch.isfinite(score[mask]).all()  # no NaN
            assert (p[~mask] == 0).all()
            state = opt.state[p]
            if step == 1:  # cleared at the mask change; the next step's gradient refills them
                assert (state["exp_avg"][~mask] == 0).all() and (state["exp_avg_sq"][~mask] == 0).all()
        opt.zero_grad()


def test_other_optimizers_are_refused_naming_them_and_the_alternatives() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"torch\.optim\.sgd\.SGD does not keep.*moments='abs'.*moments='signed'"):
        sp.Pruner(model, "seven", 0.5, optimizer=sgd, moments="optimizer")
    transformers = pytest.importorskip("transformers")
    adafactor = transformers.optimization.Adafactor(model.parameters(), lr=1e-3, relative_step=False)
    with pytest.raises(ValueError, match=r"transformers\.optimization\.Adafactor does not keep.*moments='abs'"):
        sp.Pruner(model, "seven", 0.5, optimizer=adafactor, moments="optimizer")
    pruner = sp.Pruner(model, "seven", 0.5, moments="optimizer")
    with pytest.raises(ValueError, match=r"torch\.optim\.(_?adafactor\.)?Adafactor does not keep"):
        pruner.attach(torch.optim.Adafactor(model.parameters(), lr=1e-3))
    assert pruner.optimizer is None  # the refusal left the pruner as it was
    sp.Pruner(model, "seven", 0.5, optimizer=sgd)  # the pruner's own moments work with any optimizer


def test_no_optimizer_or_the_wrong_order_is_an_error_at_the_first_step() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    pruner = sp.Pruner(model, "seven", 0.5, prune_steps=4, moments="optimizer")
    model(torch.randn(2, 4)).sum().backward()
    with pytest.raises(RuntimeError, match="no optimizer is attached.*moments='abs' or moments='signed'"):
        pruner.step()
    opt = torch.optim.AdamW(model.parameters())
    pruner = sp.Pruner(model, "seven", 0.5, prune_steps=4, moments="optimizer", optimizer=opt)
    with pytest.raises(RuntimeError, match=r"holds no exp_avg for weight '0.weight'.*after optimizer.step\(\)"):
        pruner.step()  # before optimizer.step(): the moments would lag one gradient behind


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_resume_with_the_optimizer_state_is_exact(dtype: torch.dtype, tmp_path: object) -> None:
    def build() -> tuple[nn.Sequential, torch.optim.AdamW, sp.Pruner]:
        model = tiny_model()
        opt = make_optimizer(model)
        return model, opt, sp.Pruner(model, "seven", SPARSITY, 1, 6, optimizer=opt, moments="optimizer",
                                     state_dtype=dtype, mask_interval=2)

    def train(model: nn.Module, opt: torch.optim.Optimizer, pruner: sp.Pruner, steps: range) -> None:
        for step in steps:
            loss_of(model, step).backward()
            opt.step()
            pruner.step()
            opt.zero_grad()

    model, opt, pruner = build()
    train(model, opt, pruner, range(1, 9))
    half_model, half_opt, half = build()
    train(half_model, half_opt, half, range(1, 5))
    path = sp.save_state(half, tmp_path / "pruner")  # type: ignore[operator]
    weights = copy.deepcopy(half_model.state_dict())
    opt_state = copy.deepcopy(half_opt.state_dict())

    resumed_model = tiny_model()
    resumed_model.load_state_dict(weights)
    resumed_opt = make_optimizer(resumed_model)
    resumed_opt.load_state_dict(opt_state)
    resumed = sp.Pruner.from_state(resumed_model, sp.read_state(path), optimizer=resumed_opt)
    train(resumed_model, resumed_opt, resumed, range(5, 9))
    for n, mask in pruner.masks.items():
        assert torch.equal(resumed.masks[n], mask)
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(p, q)

    # the same pruner state with a fresh optimizer: its moments are not the ones the score came from
    fresh_model = tiny_model()
    fresh_model.load_state_dict(weights)
    fresh_opt = make_optimizer(fresh_model)
    fresh = sp.Pruner.from_state(fresh_model, sp.read_state(path), optimizer=fresh_opt)
    loss_of(fresh_model, 5).backward()
    fresh_opt.step()
    with pytest.raises(RuntimeError, match=r"stepped weight '0.weight' 1 times.*at optimizer step 4.*load the "
                                           r"optimizer state_dict saved with it"):
        fresh.step()


def test_pruner_step_skipped_after_an_optimizer_step_is_caught() -> None:
    model = tiny_model()
    opt = make_optimizer(model)
    pruner = sp.Pruner(model, "seven", SPARSITY, 0, 6, optimizer=opt, moments="optimizer")
    for step in (1, 2):
        loss_of(model, step).backward()
        opt.step()
        if step == 1:
            pruner.step()
        opt.zero_grad()
    loss_of(model, 3).backward()
    opt.step()
    with pytest.raises(RuntimeError, match="stepped weight '0.weight' 3 times.*2 were expected.*"
                                           r"forget_optimizer_steps\(\)"):
        pruner.step()


def test_forget_optimizer_steps_accepts_steps_taken_without_the_pruner() -> None:
    """Optimizer steps taken on purpose with the pruner detached: after forget_optimizer_steps() the next
    step reads the optimizer's moments as they are (the score of a pruner that had read the same moments),
    and the check holds again from there on."""
    model = tiny_model()
    opt = make_optimizer(model)
    pruner = sp.Pruner(model, "seven", SPARSITY, 0, 6, optimizer=opt, moments="optimizer")
    loss_of(model, 1).backward()
    opt.step()
    pruner.step()
    opt.zero_grad()
    pruner.detach()
    for step in (2, 3):  # two steps the pruner does not see
        loss_of(model, step).backward()
        opt.step()
        opt.zero_grad()
    pruner.attach(opt)
    loss_of(model, 4).backward()
    opt.step()
    score_before = pruner.importance.stats["score"]["0.weight"].clone()
    pruner.importance.forget_optimizer_steps()
    pruner.step()
    # the step added |W * G| * m_hat / r_hat from the optimizer's moments at its 4th step
    state = opt.state[model[0].weight]
    k = float(state["step"])
    b1, b2 = opt.param_groups[0]["betas"]
    m_hat = state["exp_avg"] / (1 - b1**k)
    r_hat = (state["exp_avg_sq"] / (1 - b2**k)).sqrt()
    w, g = model[0].weight.detach(), model[0].weight.grad
    expected = score_before + (w * g).abs() * m_hat.abs() / (r_hat + pruner.importance.options["eps"])
    alive = pruner.masks["0.weight"].bool()
    torch.testing.assert_close(pruner.importance.stats["score"]["0.weight"][alive], expected[alive].float())
    opt.zero_grad()
    loss_of(model, 5).backward()
    opt.step()
    opt.zero_grad()
    loss_of(model, 6).backward()
    opt.step()
    with pytest.raises(RuntimeError, match="stepped weight '0.weight' 6 times.*5 were expected"):
        pruner.step()


@pytest.mark.parametrize("dtype,expected", [(torch.float32, 5), (torch.bfloat16, 3)])
def test_state_bytes_per_weight(dtype: torch.dtype, expected: int) -> None:
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 32))
    opt = torch.optim.AdamW(model.parameters())
    pruner = sp.Pruner(model, "seven", 0.5, 0, 3, optimizer=opt, moments="optimizer", state_dtype=dtype)
    for _ in range(2):
        model(torch.randn(4, 64)).sum().backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
    assert pruner.state_nbytes() / pruner.numel == expected  # the score and the 1-byte mask
    model(torch.randn(4, 64)).sum().backward()
    opt.step()
    pruner.step()
    assert pruner.state_nbytes() == pruner.numel  # after the window only the masks remain


def test_bf16_score_keeps_growing_over_a_long_window() -> None:
    # a steady gradient: AdamW's m_hat / r_hat is ~1, so each step adds ~|W * G| to the score. A bf16 sum
    # rounded to nearest stops growing near 256-512 increments; the stochastic rounding keeps the sum
    # unbiased (the dither comes from the increment's own bits: deterministic)
    steps = 1200
    torch.manual_seed(3)
    layer = nn.Linear(16, 16, bias=False)
    grad = torch.randn(16, 16)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.0)  # the weights stay put: the exact sum is known
    pruner = sp.Pruner(layer, "seven", 0.0, 0, steps + 10, optimizer=opt, moments="optimizer",
                       state_dtype=torch.bfloat16)
    nearest = torch.zeros(16, 16, dtype=torch.bfloat16)
    exact = torch.zeros(16, 16, dtype=torch.float64)
    for _ in range(steps):
        layer.weight.grad = grad.clone()
        opt.step()
        pruner.step()
        inc = pruner.importance.discount("weight", 0).double() * (layer.weight.detach() * grad).abs().double()
        exact += inc
        nearest = (nearest.float() + inc.float()).to(torch.bfloat16)
    score = pruner.importance.stats["score"]["weight"].double()
    relative = score / exact - 1
    assert (nearest.double() / exact).max() < 0.7  # round-to-nearest would have lost over 30 %
    assert abs(float(relative.mean())) < 0.01  # unbiased: 256 entries, each ~4 % noise at t = 1,200
    assert float(relative.abs().max()) < 0.2


def test_optimizer_moments_option_in_the_run_config() -> None:
    from sevenprune.tasks.config import RunConfig, validate

    base = dict(task="mr", model="minilm", method="seven", sparsity=0.5,
                method_options={"moments": "optimizer"})
    try:
        validate(RunConfig(**base))  # type: ignore[arg-type]
    except ValueError as exc:  # a machine without the model's files: only the optimizer check matters here
        assert "moments" not in str(exc)
    with pytest.raises(ValueError, match=r"moments=optimizer.*--optimizer sgd.*moments=abs"):
        validate(RunConfig(**base, optimizer="sgd"))  # type: ignore[arg-type]


def test_diagnostics_read_the_optimizers_discount() -> None:
    model = tiny_model()
    opt = make_optimizer(model)
    pruner = sp.Pruner(model, "seven", SPARSITY, 0, 6, optimizer=opt, moments="optimizer")
    diag = sp.PruningDiagnostics(pruner, snapshots=3)
    for step in range(1, 7):
        loss_of(model, step).backward()
        opt.step()
        pruner.step()
        diag.step()
        opt.zero_grad()
    discounts = [r["noise_discount"] for r in diag.records]
    assert discounts and all(d is not None for d in discounts)
    for d in discounts:  # |m_hat| / r_hat, from the optimizer's moments
        assert all(0.0 <= q < math.inf for w in d["per_weight"].values() for q in w["quantiles"])
    assert diag.discount_effect  # SEVEN's ranking against the first-order sum's, as for the default form


def test_a_step_count_held_as_a_tensor_gives_the_same_corrections() -> None:
    # fused/capturable Adam on an accelerator keeps `step` as a device tensor: the bias corrections are then
    # computed as tensors there (no host sync); they must equal the Python-float ones
    from sevenprune.importance.seven import SevenImportance

    for k in (1.0, 7.0, 3000.0):
        c1, c2 = SevenImportance._corrections(torch.tensor(k), 0.9, 0.999)
        f1, f2 = SevenImportance._corrections(k, 0.9, 0.999)
        assert isinstance(c1, torch.Tensor) and float(c1) == pytest.approx(f1, rel=1e-6)
        assert isinstance(c2, torch.Tensor) and float(c2) == pytest.approx(f2, rel=1e-6)
