"""Mask selection and the score-only methods (method.md §5): exact per-row sparsity, exact n-of-m
per group, magnitude's per-matrix threshold — each against a numpy computation in the test."""

import numpy as np
import pytest
import torch
from helpers import tiny_llada

from sinkprune.models import get_adapter
from sinkprune.pruning import CalibrationData, PruneSpec, prune_model
from sinkprune.pruning.select import (
    lowest_k,
    lowest_k_sorted,
    nm_mask,
    per_matrix_mask,
    per_row_mask,
    select_mask,
)

torch.set_num_threads(1)


def reference_row_mask(S: np.ndarray, p: float) -> np.ndarray:
    k = int(S.shape[1] * p)
    mask = np.zeros_like(S, dtype=bool)
    for r, row in enumerate(S):
        mask[r, np.argsort(row, kind="stable")[:k]] = True
    return mask


@pytest.mark.parametrize("p", [0.3, 0.5, 0.75])
def test_per_row_exact_and_lowest(p):
    S = torch.rand(7, 48, generator=torch.Generator().manual_seed(1))
    mask = per_row_mask(S, p)
    assert (mask.sum(1) == int(48 * p)).all()
    np.testing.assert_array_equal(mask.numpy(), reference_row_mask(S.numpy(), p))


def test_per_row_ties_break_by_column():
    S = torch.ones(2, 8)
    mask = per_row_mask(S, 0.5)
    assert mask[:, :4].all() and not mask[:, 4:].any()


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8)])
def test_nm_exact_per_group(n, m):
    S = torch.randn(5, 32, generator=torch.Generator().manual_seed(2))
    mask = nm_mask(S, n, m)
    groups = mask.view(5, 32 // m, m)
    assert (groups.sum(-1) == n).all()
    s = S.numpy().reshape(5, 32 // m, m)
    for r in range(5):
        for g in range(32 // m):
            order = np.argsort(s[r, g], kind="stable")
            assert set(np.flatnonzero(groups[r, g].numpy())) == set(order[:n])


def test_nm_rejects_bad_width():
    with pytest.raises(ValueError, match="multiple of 4"):
        nm_mask(torch.rand(2, 6), 2, 4)


def test_per_matrix_threshold():
    S = torch.rand(6, 20, generator=torch.Generator().manual_seed(3))
    mask = per_matrix_mask(S, 0.5)
    assert mask.sum() == 60
    assert S[mask].max() < S[~mask].min()
    flat = S.numpy().ravel()
    ref = np.zeros(flat.size, dtype=bool)
    ref[np.argsort(flat, kind="stable")[:60]] = True
    np.testing.assert_array_equal(mask.numpy().ravel(), ref)


def test_unknown_type_names_key():
    with pytest.raises(ValueError, match="sparsity_type"):
        select_mask(torch.rand(2, 4), 0.5, "3:7")


@pytest.mark.parametrize("stype", ["unstructured", "2:4", "4:8"])
def test_magnitude_model(stype):
    model = tiny_llada()
    ad = get_adapter(model)
    dense = {
        f"{i}.{n}": lin.weight.detach().clone()
        for i in range(ad.n_layers)
        for n, lin in ad.linears(i).items()
    }
    calib = CalibrationData([0], torch.zeros(1, 16, dtype=torch.long))
    res = prune_model(ad, calib, PruneSpec("magnitude", 0.5, stype))
    for i in range(ad.n_layers):
        for n, lin in ad.linears(i).items():
            key = f"{i}.{n}"
            W, mask = dense[key].abs().numpy(), res.masks[key].numpy()
            if stype == "unstructured":  # one threshold over the whole matrix
                assert mask.sum() == W.size // 2
                assert W[mask].max() <= W[~mask].min()
            else:
                nn_, m = (2, 4) if stype == "2:4" else (4, 8)
                g = mask.reshape(W.shape[0], -1, m)
                assert (g.sum(-1) == nn_).all()
                wg = W.reshape(W.shape[0], -1, m)
                assert (np.where(g, wg, -np.inf).max(-1) <= np.where(g, np.inf, wg).min(-1)).all()
            assert (lin.weight[res.masks[key]] == 0).all()
            kept = ~res.masks[key]
            assert torch.equal(lin.weight[kept], dense[key][kept])
    assert res.overall_sparsity() == pytest.approx(0.5)
    # embeddings and the LM head are never pruned
    assert (model.model.transformer.wte.weight != 0).all()
    assert (model.model.transformer.ff_out.weight != 0).all()


# ------------------------------------------- fast selection = stable sort ---
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("kind", ["random", "ties", "constant", "nan", "signed_zero"])
def test_lowest_k_equals_stable_sort(kind, dim):
    """The partition path on CPU gives exactly the stable sort's first k, ties and NaN included."""
    g = torch.Generator().manual_seed(4)
    S = torch.rand(9, 40, generator=g)
    if kind == "ties":
        S = (S * 4).round()  # many ties at every threshold
    elif kind == "constant":
        S = torch.full((9, 40), 0.5)
    elif kind == "nan":
        S[torch.rand(9, 40, generator=g) < 0.3] = float("nan")
    elif kind == "signed_zero":
        S = torch.where(torch.rand(9, 40, generator=g) < 0.5, -0.0, 0.0) * (S < 0.6)
    for k in (0, 1, 5, S.shape[dim] // 2, S.shape[dim] - 1, S.shape[dim]):
        got = lowest_k(S, k, dim)
        idx = np.argsort(S.numpy(), axis=dim, kind="stable")  # NaN sorts last, as in torch
        ref = np.zeros(S.shape, dtype=bool)
        np.put_along_axis(ref, np.take(idx, np.arange(k), axis=dim), True, axis=dim)
        np.testing.assert_array_equal(got.numpy(), ref, err_msg=f"{kind} k={k}")
        assert torch.equal(got, lowest_k_sorted(S, k, dim))
