"""One-shot pruning (Wanda, SparseGPT) against independent computations on tiny layers and models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import sevenprune as sp
from sevenprune.importance.sparsegpt import SparseGPTPruner
from sevenprune.importance.wanda import WandaPruner
from sevenprune.oneshot import find_blocks
from sevenprune.patterns import nm_holds


# -- independent references ---------------------------------------------------------------------------
def wanda_reference(W: np.ndarray, X: np.ndarray, sparsity: float, nm: tuple[int, int] | None = None) -> np.ndarray:
    """Pruned-mask from the paper's score |W_ij| * ||X_j||_2 (X: tokens x columns), per row or per group."""
    score = np.abs(W) * np.sqrt((X ** 2).sum(axis=0))[None, :]
    pruned = np.zeros(W.shape, dtype=bool)
    for r in range(W.shape[0]):
        if nm is None:
            pruned[r, np.argsort(score[r], kind="stable")[: int(W.shape[1] * sparsity)]] = True
        else:
            n, m = nm
            for g in range(0, W.shape[1], m):
                pruned[r, g + np.argsort(score[r, g:g + m], kind="stable")[: m - n]] = True
    return pruned


def obs_reference(W: np.ndarray, X: np.ndarray, sparsity: float, blocksize: int, nm: tuple[int, int] | None = None,
                  percdamp: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """SparseGPT's procedure written as plain optimal brain surgery, without Cholesky or lazy batches:
    the inverse Hessian of the columns still to come is ``inv(H[i:, i:])``, computed directly; a pruned
    weight ``w_p`` moves the later weights of its row by ``-w_p * Hinv[p, :] / Hinv[p, p]`` at once.
    Returns (new weights, pruned-mask). X: tokens x columns (all of one sample)."""
    W = W.astype(np.float64).copy()
    H = 2.0 * X.T @ X  # one sample: the running mean over samples is the sum itself
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H = H + percdamp * np.mean(np.diag(H)) * np.eye(H.shape[0])
    cols = W.shape[1]
    d = np.array([np.linalg.inv(H[j:, j:])[0, 0] for j in range(cols)])  # OBS denominators, in order
    pruned = np.zeros(W.shape, dtype=bool)
    for i in range(cols):
        if nm is None and i % blocksize == 0:
            i2 = min(i + blocksize, cols)
            sal = W[:, i:i2] ** 2 / d[None, i:i2]  # the OBS saliency w^2 / [H^-1]_pp
            flat = np.zeros(sal.size, dtype=bool)
            flat[np.argsort(sal.ravel(), kind="stable")[: int(sal.size * sparsity)]] = True
            pruned[:, i:i2] = flat.reshape(sal.shape)
        if nm is not None and i % nm[1] == 0:
            n, m = nm
            sal = W[:, i:i + m] ** 2 / d[None, i:i + m]
            for r in range(W.shape[0]):
                pruned[r, i + np.argsort(sal[r], kind="stable")[: m - n]] = True
        Hinv = np.linalg.inv(H[i:, i:])
        wp = np.where(pruned[:, i], W[:, i], 0.0)  # the part of column i removed
        W[:, i:] -= np.outer(wp / Hinv[0, 0], Hinv[0, :])
        W[pruned[:, i], i] = 0.0  # exact zero (the update above leaves it at rounding level)
    return W, pruned


def _layer(rows: int, cols: int, seed: int, dtype: torch.dtype = torch.float64) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(cols, rows, bias=False).to(dtype)


def _correlated(tokens: int, cols: int, seed: int, rank: int = 4, noise: float = 0.05) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(tokens, rank, generator=g, dtype=torch.float64)
    mix = torch.randn(rank, cols, generator=g, dtype=torch.float64)
    return latent @ mix + noise * torch.randn(tokens, cols, generator=g, dtype=torch.float64)


# -- Wanda on one layer -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", [0.5, 0.3])
def test_wanda_masks_match_the_formula_and_prune_the_same_count_in_every_row(sparsity: float) -> None:
    layer = _layer(6, 16, seed=1)
    batches = [torch.randn(2, 5, 16, dtype=torch.float64) for _ in range(3)]
    w = WandaPruner(layer, dtype=torch.float64)
    for b in batches:
        w.add_batch(b)
    X = torch.cat([b.reshape(-1, 16) for b in batches]).numpy()
    # the authors' running mean: sum of squares over every token, over the 6 samples (not tokens)
    np.testing.assert_allclose(w.scaler_row.numpy(), (X ** 2).sum(axis=0) / 6, rtol=1e-12)
    W0 = layer.weight.detach().numpy().copy()
    keep = w.prune(sparsity).numpy()
    expected = wanda_reference(W0, X, sparsity)
    np.testing.assert_array_equal(keep, ~expected)
    assert ((~keep).sum(axis=1) == int(16 * sparsity)).all()
    W1 = layer.weight.detach().numpy()
    assert (W1[~keep] == 0).all() and np.array_equal(W1[keep], W0[keep])  # no weight update


@pytest.mark.parametrize("nm", [(2, 4), (4, 8)])
def test_wanda_n_m_masks_match_the_formula_per_group(nm: tuple[int, int]) -> None:
    layer = _layer(5, 16, seed=2)
    x = torch.randn(3, 7, 16, dtype=torch.float64) * torch.linspace(0.1, 3, 16, dtype=torch.float64)
    w = WandaPruner(layer, dtype=torch.float64)
    w.add_batch(x)
    W0 = layer.weight.detach().numpy().copy()
    keep = w.prune(0.5, f"{nm[0]}:{nm[1]}")
    np.testing.assert_array_equal(keep.numpy(), ~wanda_reference(W0, x.reshape(-1, 16).numpy(), 0.5, nm))
    assert nm_holds(keep, *nm)


def test_wanda_uses_activations_not_only_magnitude() -> None:
    """A column with large inputs keeps its small weights: the masks differ from magnitude's."""
    layer = _layer(4, 8, seed=3)
    x = torch.ones(1, 10, 8, dtype=torch.float64)
    x[..., 0] = 1e4
    layer.weight.data[:, 0] = 1e-3  # the smallest magnitudes, on the loudest input
    w = WandaPruner(layer, dtype=torch.float64)
    w.add_batch(x)
    keep = w.prune(0.5)
    assert keep[:, 0].all()


# -- SparseGPT on one layer ---------------------------------------------------------------------------------
@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_sparsegpt_matches_a_plain_obs_implementation(nm: tuple[int, int] | None) -> None:
    rows, cols, blocksize = 6, 32, 8  # four column blocks: the lazy updates between blocks matter
    layer = _layer(rows, cols, seed=4)
    x = _correlated(40, cols, seed=5)
    x[:, 3] = 0  # a dead input column
    W0 = layer.weight.detach().clone()
    s = SparseGPTPruner(layer, dtype=torch.float64, blocksize=blocksize)
    s.add_batch(x.unsqueeze(0))  # one sample of 40 tokens
    keep = s.prune(0.5, None if nm is None else f"{nm[0]}:{nm[1]}")
    W_ref, pruned_ref = obs_reference(W0.numpy(), x.numpy(), 0.5, blocksize, nm)
    np.testing.assert_array_equal(keep.numpy(), ~pruned_ref)
    W1 = layer.weight.detach()
    assert (W1[~keep] == 0).all()
    err = torch.linalg.norm((W0 - W1) @ x.T).item()
    err_ref = np.linalg.norm((W0.numpy() - W_ref) @ x.numpy().T)
    assert err == pytest.approx(err_ref, rel=1e-6)
    np.testing.assert_allclose(W1.numpy(), W_ref, atol=1e-8)
    if nm is None:  # exactly int(rows * blocksize * s) pruned in every block of columns
        per_block = (~keep).reshape(rows, cols // blocksize, blocksize).sum(dim=(0, 2))
        assert per_block.tolist() == [rows * blocksize // 2] * (cols // blocksize)
    else:
        assert nm_holds(keep, *nm)
    assert not torch.equal(W1[keep], W0[keep])  # the kept weights were updated


def _magnitude_per_row(W: torch.Tensor, sparsity: float) -> torch.Tensor:
    order = torch.sort(W.abs(), dim=1, stable=True).indices[:, : int(W.shape[1] * sparsity)]
    return W.clone().scatter_(1, order, 0.0)


@pytest.mark.parametrize("pattern", [None, "2:4"])
def test_sparsegpt_reconstructs_correlated_inputs_better_than_magnitude(pattern: str | None) -> None:
    layer = _layer(16, 32, seed=6, dtype=torch.float32)
    x = _correlated(256, 32, seed=7).float()
    W0 = layer.weight.detach().clone()
    s = SparseGPTPruner(layer)
    s.add_batch(x.unsqueeze(0))
    s.prune(0.5, pattern)
    if pattern is None:
        W_mag = _magnitude_per_row(W0, 0.5)
    else:
        groups = W0.abs().reshape(16, 8, 4)
        drop = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.argsort(dim=2)[..., :2], True)
        W_mag = W0.masked_fill(drop.reshape(16, 32), 0.0)
    err_sparsegpt = torch.linalg.norm((W0 - layer.weight.detach()) @ x.T)
    err_magnitude = torch.linalg.norm((W0 - W_mag) @ x.T)
    assert err_sparsegpt < 0.5 * err_magnitude


# -- the driver --------------------------------------------------------------------------------------------
def tiny_llama(seed: int = 0, tie: bool = False):  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      tie_word_embeddings=tie)
    return transformers.LlamaForCausalLM(config)


def _ids(n: int = 4, length: int = 16, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 64, (1, length), generator=g) for _ in range(n)]


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", [None, "2:4"])
def test_tiny_llama_is_pruned_block_by_block_with_embeddings_and_head_untouched(method: str, pattern: str | None) -> None:
    model = tiny_llama(tie=pattern is not None)
    untouched = {n: p.detach().clone() for n, p in model.named_parameters() if "embed" in n or "lm_head" in n or "norm" in n}
    assert find_blocks(model) is model.model.layers
    pruner = sp.prune_oneshot(model, method, 0.5, _ids(), pattern=pattern, progress=False)
    assert pruner.finished and pruner.report()["method"] == method and pruner.sparsity() == 0.5
    assert all(".layers." in n for n in pruner.masks) and len(pruner.masks) == 14
    for n, p in model.named_parameters():
        if n in untouched:
            assert torch.equal(p, untouched[n]), n
    for n, mask in pruner.masks.items():
        w = dict(model.named_parameters())[n]
        assert (w[~mask] == 0).all()
        if pattern is not None:
            assert nm_holds(mask, 2, 4), n
        elif method == "wanda":
            assert ((~mask).sum(dim=1) == w.shape[1] // 2).all(), n
    assert pruner.config()["pattern"] == (pattern or "unstructured")
    assert model.training and torch.isfinite(model(_ids(1)[0]).logits).all()


def _uneven(model: nn.Module) -> dict[str, float]:
    """A sparsity per matrix that differs by kind and by layer (the weights are all narrower than 128)."""
    kinds = {"q_proj": 0.75, "k_proj": 0.25, "v_proj": 0.0, "o_proj": 0.5, "gate_proj": 0.625, "up_proj": 0.375,
             "down_proj": 0.5}
    return {n: kinds[n.split(".")[-2]] / (1 + int(n.split(".")[2])) for n in sp.find_prunable(model)}


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_a_sparsity_per_matrix_prunes_each_matrix_at_its_own_fraction(method: str) -> None:
    """{weight name: sparsity}: Wanda prunes int(columns * s) of every row of each matrix, SparseGPT int(n * s)
    of each (single, < 128 columns) block, with s that matrix's own; the pruner reports the overall fraction."""
    model = tiny_llama()
    wanted = _uneven(model)
    pruner = sp.prune_oneshot(model, method, wanted, _ids(), progress=False)
    params = dict(model.named_parameters())
    pruned_total = 0
    for name, s in wanted.items():
        mask, w = pruner.masks[name], params[name]
        assert w.shape[1] <= 128 and (w[~mask] == 0).all()
        if method == "wanda":
            assert ((~mask).sum(dim=1) == int(w.shape[1] * s)).all(), name
        else:
            assert int((~mask).sum()) == int(w.numel() * s), name
        pruned_total += int((~mask).sum())
    assert pruner.sparsity() == pytest.approx(pruned_total / sum(params[n].numel() for n in wanted))
    assert 0.2 < pruner.sparsity() < 0.4  # uneven: neither the largest nor the smallest fraction


def test_the_same_fraction_for_every_matrix_is_the_single_sparsity() -> None:
    """{every weight: 0.5} is sparsity=0.5: the same masks and the same updated weights (SparseGPT)."""
    a, b = tiny_llama(), tiny_llama()
    pa = sp.prune_oneshot(a, "sparsegpt", 0.5, _ids(), progress=False)
    pb = sp.prune_oneshot(b, "sparsegpt", {n: 0.5 for n in sp.find_prunable(b)}, _ids(), progress=False)
    assert all(torch.equal(pa.masks[n], pb.masks[n]) for n in pa.masks)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert pb.sparsity() == 0.5


@pytest.mark.parametrize(("change", "named"), [
    ("missing", "lacks the prunable weight"), ("unknown", "names no prunable weight: \\['nope.weight'\\]"),
    ("bad", "'model.layers.1.mlp.down_proj.weight'.*1.5"), ("pattern", "'2:4'")])
def test_a_bad_sparsity_per_matrix_is_named_before_anything_is_pruned(change: str, named: str) -> None:
    model = tiny_llama()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wanted: dict[str, float] = _uneven(model)
    pattern = None
    if change == "missing":
        wanted.pop("model.layers.0.self_attn.q_proj.weight")
    elif change == "unknown":
        wanted["nope.weight"] = 0.5
    elif change == "bad":
        wanted["model.layers.1.mlp.down_proj.weight"] = 1.5
    else:
        pattern = "2:4"
    with pytest.raises(ValueError, match=named):
        sp.prune_oneshot(model, "wanda", wanted, _ids(), pattern=pattern, progress=False)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_model_is_pruned_as_its_float32_copy_and_stays_in_its_dtype(method: str,
                                                                                      dtype: torch.dtype) -> None:
    """LMs are loaded in bf16/fp16: the statistics (Wanda's norms, SparseGPT's Hessian and its solve) are
    kept in float32, so the masks are those of a float32 copy of the same weights but for the few entries
    where the half-precision activations tip a near tie (measured: 0-0.02 % here), and the weights stay in
    their dtype, finite, zero where pruned."""
    model = tiny_llama().to(dtype)
    copy32 = tiny_llama().to(dtype).float()
    pruner = sp.prune_oneshot(model, method, 0.5, _ids(8, 32), progress=False)
    reference = sp.prune_oneshot(copy32, method, 0.5, _ids(8, 32), progress=False)
    same = sum(int((pruner.masks[n] == reference.masks[n]).sum()) for n in pruner.masks)
    assert same / sum(m.numel() for m in pruner.masks.values()) > 0.99
    weights = dict(model.named_parameters())
    for n, mask in pruner.masks.items():
        assert weights[n].dtype == dtype and torch.isfinite(weights[n]).all() and (weights[n][~mask] == 0).all(), n
    assert pruner.sparsity() == 0.5


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_gpt2_conv1d_weights_are_pruned_along_their_input_dimension(method: str) -> None:
    """GPT-2 stores its weights as (in, out): the groups of m run along dim 0."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4,
                                                                  n_positions=64))
    pruner = sp.prune_oneshot(model, method, None, _ids(), pattern="2:4", progress=False)
    assert len(pruner.masks) == 8 and pruner.sparsity() == 0.5
    for n, mask in pruner.masks.items():
        assert nm_holds(mask, 2, 4, transposed=True), n


def test_layers_outside_the_blocks_are_pruned_before_or_after_them() -> None:
    """OPT's project_in runs before the first block, project_out after the last: both are pruned, and
    project_in's statistics are its inputs, the token embeddings."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.OPTForCausalLM(transformers.OPTConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4,
        word_embed_proj_dim=16, max_position_embeddings=64))
    batches = _ids(2)
    with torch.no_grad():
        X = torch.cat([model.model.decoder.embed_tokens(b)[0] for b in batches])
    W0 = model.model.decoder.project_in.weight.detach().clone()
    pruner = sp.prune_oneshot(model, "wanda", 0.5, batches, progress=False)
    assert {"model.decoder.project_in.weight", "model.decoder.project_out.weight"} <= set(pruner.masks)
    np.testing.assert_array_equal(pruner.masks["model.decoder.project_in.weight"].numpy(),
                                  ~wanda_reference(W0.numpy(), X.numpy(), 0.5))
    assert pruner.sparsity() == 0.5


def test_the_second_block_sees_the_first_block_pruned() -> None:
    model = tiny_llama()
    batches = _ids(3)
    seen: list[torch.Tensor] = []
    first_call = model.model.layers[1].register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    sp.prune_oneshot(model, "wanda", 0.5, batches, progress=False)
    first_call.remove()
    during = seen[:3]  # block 1's statistics pass, one call per batch
    after: list[torch.Tensor] = []
    hook = model.model.layers[1].register_forward_pre_hook(lambda m, a: after.append(a[0].clone()))
    model.eval()
    with torch.no_grad():
        for b in batches:
            model(b)
    hook.remove()
    dense: list[torch.Tensor] = []
    model_dense = tiny_llama().eval()
    hook = model_dense.model.layers[1].register_forward_pre_hook(lambda m, a: dense.append(a[0].clone()))
    with torch.no_grad():
        for b in batches:
            model_dense(b)
    hook.remove()
    for d, a, x in zip(during, after, dense):
        torch.testing.assert_close(d, a)  # computed through the pruned block 0 ...
        assert not torch.allclose(d, x)  # ... not the dense one


def test_dict_batches_and_wanda_statistics_of_the_first_block() -> None:
    """Block 0's q_proj sees the input RMSNorm of the embeddings: its mask is the formula's on them."""
    model = tiny_llama()
    batches = [{"input_ids": ids, "attention_mask": torch.ones_like(ids)} for ids in _ids(2)]
    layer0 = model.model.layers[0]
    with torch.no_grad():
        X = torch.cat([layer0.input_layernorm(model.model.embed_tokens(b["input_ids"]))[0] for b in batches])
    W0 = layer0.self_attn.q_proj.weight.detach().clone()
    pruner = sp.prune_oneshot(model, "wanda", 0.5, batches, progress=False)
    expected = wanda_reference(W0.numpy(), X.numpy(), 0.5)
    np.testing.assert_array_equal(pruner.masks["model.layers.0.self_attn.q_proj.weight"].numpy(), ~expected)


def test_a_plain_sequential_is_one_block_with_a_tensor_input() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
    data = [torch.randn(5, 8) for _ in range(3)]
    # one block: every layer's statistics come from the dense model
    h = [torch.relu(model[0](x)).detach() for x in data]
    X0, X2 = torch.cat(data).numpy(), torch.cat(h).numpy()
    W0, W2 = model[0].weight.detach().numpy().copy(), model[2].weight.detach().numpy().copy()
    assert find_blocks(model) is None
    pruner = sp.prune_oneshot(model, "wanda", 0.5, data, progress=False)
    np.testing.assert_array_equal(pruner.masks["0.weight"].numpy(), ~wanda_reference(W0, X0, 0.5))
    np.testing.assert_array_equal(pruner.masks["2.weight"].numpy(), ~wanda_reference(W2, X2, 0.5))
    assert sp.prune_oneshot(nn.Sequential(nn.Linear(8, 8)), "sparsegpt", 0.25, data, progress=False).sparsity() == 0.25


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_the_pruner_saves_reloads_and_keeps_the_masks_while_fine_tuning(method: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_llama()
    pruner = sp.prune_oneshot(model, method, 0.5, _ids(), progress=False)
    sp.save_state(pruner, tmp_path / "state")
    other = tiny_llama(seed=1)
    other.load_state_dict(model.state_dict())
    restored = sp.load_state(tmp_path / "state", other)
    assert restored.config() == pruner.config()
    assert all(torch.equal(restored.masks[n], m) for n, m in pruner.masks.items())
    opt = torch.optim.AdamW(other.parameters(), lr=1e-2, weight_decay=0.1)
    restored.attach(opt)
    for ids in _ids(3, seed=1):
        loss = other(ids, labels=ids).loss
        loss.backward()
        opt.step()
        restored.step()
        opt.zero_grad()
    weights = dict(other.named_parameters())
    for n, m in pruner.masks.items():
        assert (weights[n][~m] == 0).all() and (weights[n][m] != 0).any()
    assert restored.sparsity() == 0.5


# -- bad input --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "error", "named"), [
    ({"method": "wandaa"}, ValueError, "'wandaa'"),
    ({"sparsity": 1.5}, ValueError, "1.5"),
    ({"calibration_batches": []}, ValueError, "empty"),
    ({"sparsity": 0.7, "pattern": "2:4"}, ValueError, "0.7"),
    ({"pattern": "heads"}, ValueError, "'heads'"),
    ({"method": "sparsegpt", "blocksize": 0}, ValueError, "blocksize"),
    ({"method": "sparsegpt", "percdamp": -1.0}, ValueError, "-1.0"),
    ({"method": "wanda", "blocksize": 64}, TypeError, "blocksize"),
    ({"calibration_batches": torch.zeros(2, 8)}, TypeError, "Tensor"),
])
def test_bad_input_names_the_value(kwargs: dict, error: type, named: str) -> None:  # type: ignore[type-arg]
    model = nn.Sequential(nn.Linear(8, 8))
    args = {"method": "wanda", "sparsity": 0.5, "calibration_batches": [torch.randn(2, 8)], **kwargs}
    with pytest.raises(error, match=named.replace("(", r"\(").replace(".", r"\.")):
        sp.prune_oneshot(model, args.pop("method"), args.pop("sparsity"), args.pop("calibration_batches"),
                         progress=False, **args)
    assert torch.count_nonzero(model[0].weight) == 64  # nothing pruned


def test_a_calibration_batch_on_another_device_is_named_before_anything_is_pruned() -> None:
    """The check walks nested batches: the second batch's dict entry on the meta device is named by its
    batch index and key, and no weight has been touched."""
    model = nn.Sequential(nn.Linear(8, 8))
    batches = [{"input": torch.randn(2, 8)}, {"input": torch.randn(2, 8, device="meta")}]
    with pytest.raises(ValueError, match=r"calibration batch 1: batch\['input'\] is on meta but the model's "
                                         r"prunable weights are on cpu"):
        sp.prune_oneshot(model, "wanda", 0.5, batches, progress=False)
    assert torch.count_nonzero(model[0].weight) == 64


@pytest.mark.parametrize(("batch", "example"), [
    (torch.randn(2, 8, device="meta"), "[b.to('cpu') for b in batches]"),
    ({"input": torch.randn(2, 8, device="meta")}, "[{k: v.to('cpu') for k, v in b.items()} for b in loader]"),
    ((torch.randn(2, 8, device="meta"),), "[tuple(t.to('cpu') for t in b) for b in loader]"),
])
def test_the_device_error_shows_how_to_move_batches_of_that_shape(batch: object, example: str) -> None:
    """Calibration batches are often bare tensors of input ids: the hint must not tell their user to call
    ``.items()``."""
    with pytest.raises(ValueError) as err:
        sp.prune_oneshot(nn.Sequential(nn.Linear(8, 8)), "wanda", 0.5, [batch], progress=False)
    assert str(err.value).endswith(f"(e.g. {example})")


def test_a_layer_the_forward_never_calls_is_named() -> None:
    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(ValueError, match="'unused.weight'"):
        sp.prune_oneshot(Skips(), "wanda", 0.5, [torch.randn(2, 4)], progress=False)
