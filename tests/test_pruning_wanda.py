"""Wanda (sequential, clean) and sink (one-shot, ω-weighted, noised) against reference
computations written here: torch hooks capture each linear's input, numpy scores and selects."""

import copy

import numpy as np
import pytest
import torch
from helpers import tiny_llada

from sinkprune.models import get_adapter
from sinkprune.pruning import CalibrationData, PruneSpec, SinkData, prune_model
from sinkprune.pruning.driver import sequential
from sinkprune.pruning.stats import MeanSquaredNorm

torch.set_num_threads(1)
N, T, V = 5, 16, 40


def tokens(seed=1, n=N):
    return torch.randint(0, V - 1, (n, T), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def capture_inputs(model, block, toks):
    """{linear name: X (n, T, d_in) numpy} of one block, from a plain forward with hooks."""
    ad = get_adapter(model)
    got, handles = {}, []
    for name, lin in ad.linears(block).items():
        handles.append(
            lin.register_forward_hook(
                lambda m, i, o, name=name: got.setdefault(name, []).append(i[0].double().numpy())
            )
        )
    for row in toks:  # one sample at a time: batching is not part of the reference
        model(row[None])
    for h in handles:
        h.remove()
    return {n: np.concatenate(v) for n, v in got.items()}


def row_mask(S, p):
    k = int(S.shape[1] * p)
    mask = np.zeros_like(S, dtype=bool)
    for r, row in enumerate(S):
        mask[r, np.argsort(row, kind="stable")[:k]] = True
    return mask


def nm_ref(S, n, m):
    mask = np.zeros_like(S, dtype=bool)
    for r in range(S.shape[0]):
        for g in range(0, S.shape[1], m):
            mask[r, g + np.argsort(S[r, g : g + m], kind="stable")[:n]] = True
    return mask


def wanda_reference(model, toks, p):
    """Sequential Wanda by hand: r_c = mean_s Σ_t X², S = |W|·sqrt(r), prune block, go on."""
    model = copy.deepcopy(model)
    ad = get_adapter(model)
    masks = {}
    for i in range(ad.n_layers):
        X = capture_inputs(model, i, toks)  # block i sees the already-pruned blocks < i
        for name, lin in ad.linears(i).items():
            r = (X[name] ** 2).sum(axis=1).mean(axis=0)
            S = np.abs(lin.weight.detach().double().numpy()) * np.sqrt(r)[None]
            masks[f"{i}.{name}"] = row_mask(S, p)
        for name, lin in ad.linears(i).items():
            lin.weight.data[torch.from_numpy(masks[f"{i}.{name}"])] = 0
    return masks


@pytest.mark.parametrize("p", [0.5, 0.75])
def test_wanda_matches_sequential_reference(p):
    model, toks = tiny_llada(), tokens()
    ref = wanda_reference(model, toks, p)
    ad = get_adapter(model)
    res = prune_model(
        ad, CalibrationData(list(range(N)), toks), PruneSpec("wanda", p, batch_size=2)
    )
    for key, mask in ref.items():
        np.testing.assert_array_equal(res.masks[key].numpy(), mask, err_msg=key)
        assert res.pruned[key] == mask.shape[0] * int(mask.shape[1] * p)  # exact per row
        i, name = key.split(".", 1)
        assert (ad.linears(int(i))[name].weight[res.masks[key]] == 0).all()


def test_wanda_is_sequential_not_one_shot():
    """Block 1's masks must come from block 0's *pruned* outputs: one-shot dense masks differ."""
    model, toks = tiny_llada(), tokens()
    dense_X = capture_inputs(model, 1, toks)
    ad = get_adapter(copy.deepcopy(model))
    res = prune_model(ad, CalibrationData(list(range(N)), toks), PruneSpec("wanda", 0.5))
    differs = 0
    for name, lin in get_adapter(model).linears(1).items():
        r = (dense_X[name] ** 2).sum(axis=1).mean(axis=0)
        one_shot = row_mask(np.abs(lin.weight.detach().double().numpy()) * np.sqrt(r)[None], 0.5)
        differs += int((one_shot != res.masks[f"1.{name}"].numpy()).sum())
    assert differs > 0


def test_driver_feeds_pruned_outputs_forward():
    """Zeroing every linear of block 0 makes it the identity (residual only): block 1 must then
    see attn_norm(embeddings) as q_proj input, which the driver's statistics must reflect."""
    model, toks = tiny_llada(), tokens()
    ad = get_adapter(model)
    seen = {}

    def on_block(i, stats):
        seen[i] = stats["q_proj"].value.clone()
        if i == 0:
            for lin in ad.linears(0).values():
                lin.weight.data.zero_()

    sequential(ad, toks, lambda lin: MeanSquaredNorm(lin.in_features), on_block, batch_size=2)
    with torch.no_grad():
        x = ad.blocks[1].attn_norm(ad.embed(toks)).double().numpy()
    np.testing.assert_allclose(seen[1].numpy(), (x**2).sum(1).mean(0), rtol=1e-5)


def test_wanda_nm():
    model, toks = tiny_llada(), tokens()
    ad = get_adapter(model)
    res = prune_model(ad, CalibrationData(list(range(N)), toks), PruneSpec("wanda", 0.5, "4:8"))
    for mask in res.masks.values():
        assert (mask.view(mask.shape[0], -1, 8).sum(-1) == 4).all()


def sink_reference(model, noised, omega, p, nm=None):
    """One-shot on the dense model: a_c = Σ_(sample,step) ‖(ωX)_c‖₂, S = |W|·a, per row."""
    ad = get_adapter(model)
    masks = {}
    for i in range(ad.n_layers):
        X = capture_inputs(model, i, noised)
        for name, lin in ad.linears(i).items():
            wx = X[name] * omega.double().numpy()[:, :, None]
            a = np.sqrt((wx**2).sum(axis=1)).sum(axis=0)
            S = np.abs(lin.weight.detach().double().numpy()) * a[None]
            masks[f"{i}.{name}"] = row_mask(S, p) if nm is None else nm_ref(S, *nm)
    return masks


def sink_calib(omega_kind):
    toks = tokens(n=3)
    noised = torch.cat([toks.masked_fill(torch.rand(toks.shape) < t, V - 1) for t in (0.3, 0.8)])
    if omega_kind == "ones":
        omega = torch.ones(noised.shape)
    else:
        omega = torch.rand(noised.shape, generator=torch.Generator().manual_seed(5))
    keys = [(s, st) for st in (5, 10) for s in range(3)]
    sinks = SinkData(noised, omega, keys, torch.ones(toks.shape))
    return CalibrationData([0, 1, 2], toks, sinks), noised, omega


@pytest.mark.parametrize(
    "omega_kind,stype", [("ones", "unstructured"), ("random", "unstructured"), ("random", "2:4")]
)
def test_sink_matches_reference(omega_kind, stype):
    """ω ≡ 1: sink = Wanda with summed unsquared norms on the dense model; random ω weights rows."""
    torch.manual_seed(0)
    calib, noised, omega = sink_calib(omega_kind)
    model = tiny_llada()
    nm = (2, 4) if stype == "2:4" else None
    ref = sink_reference(model, noised, omega, 0.5, nm)
    res = prune_model(get_adapter(model), calib, PruneSpec("sink", 0.5, stype, batch_size=4))
    for key, mask in ref.items():
        np.testing.assert_array_equal(res.masks[key].numpy(), mask, err_msg=key)


def test_sink_needs_scores():
    model, toks = tiny_llada(), tokens()
    with pytest.raises(ValueError, match="sink scores"):
        prune_model(
            get_adapter(model), CalibrationData(list(range(N)), toks), PruneSpec("sink", 0.5)
        )
