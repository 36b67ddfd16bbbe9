"""SparseGPT solver and the sparsegpt / sink_sgpt methods (method.md §5) against a float64 OBS
reference written here (explicit inverse-Hessian downdates, no Cholesky, no lazy batching)."""

import logging

import numpy as np
import pytest
import torch
from helpers import tiny_llada

from sinkprune.models import get_adapter
from sinkprune.pruning import CalibrationData, PruneSpec, SinkData, prune_model
from sinkprune.pruning.sparsegpt_solver import CholeskyError, sparsegpt_solve

torch.set_num_threads(1)


def layer(rows=16, cols=64, n=4, t=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, cols, generator=g)
    mix = torch.randn(cols, cols, generator=g) / cols**0.5 + torch.eye(cols)
    scale = torch.rand(cols, generator=g) * 3 + 0.1  # outlier-ish channel scales
    X = (torch.randn(n, t, cols, generator=g) @ mix) * scale  # correlated inputs
    H = sum(2 / n * x.double().T @ x.double() for x in X)  # (2/N) Σ XᵀX by hand
    return W, X, H


def obs_reference(W, H, percdamp, p=None, nm=None):
    """Column-by-column OBS in float64 on the inverse Hessian of the remaining columns."""
    W = W.double().numpy().copy()
    H = H.numpy().copy()
    cols = H.shape[0]
    H = H + percdamp * np.mean(np.diag(H)) * np.eye(cols)
    Hinv = np.linalg.inv(H)
    # the diagonal the unstructured mask uses: Hinv of the remaining columns at each step
    Hc, d = Hinv.copy(), np.zeros(cols)
    for i in range(cols):
        d[i] = Hc[i, i]
        Hc = Hc - np.outer(Hc[:, i], Hc[i, :]) / Hc[i, i]
    mask = np.zeros_like(W, dtype=bool)
    if nm is None:
        S = (W**2 / d[None]).ravel()
        mask.ravel()[np.argsort(S, kind="stable")[: int(S.size * p)]] = True
    for i in range(cols):
        if nm is not None and i % nm[1] == 0:
            S = W[:, i : i + nm[1]] ** 2 / d[None, i : i + nm[1]]
            for r in range(W.shape[0]):
                mask[r, i + np.argsort(S[r], kind="stable")[: nm[0]]] = True
        q = np.where(mask[:, i], 0.0, W[:, i])
        err = (W[:, i] - q) / Hinv[i, i]
        W[:, i:] -= np.outer(err, Hinv[i, i:])
        W[:, i] = q
        Hinv = Hinv - np.outer(Hinv[:, i], Hinv[i, :]) / Hinv[i, i]
    return W, mask


def test_unstructured_matches_reference_single_block():
    W, _, H = layer()
    Wn, mask, info = sparsegpt_solve(W, H.float(), 0.5, blocksize=64, percdamp=0.01)
    Wr, mr = obs_reference(W, H, 0.01, p=0.5)
    np.testing.assert_array_equal(mask.numpy(), mr)
    np.testing.assert_allclose(Wn.numpy(), Wr, atol=2e-4)
    assert info.retries == 0 and info.dead_inputs == 0


@pytest.mark.parametrize("blocksize", [8, 64, 128])
@pytest.mark.parametrize("nm", [(2, 4), (4, 8)])
def test_nm_matches_reference_for_any_blocksize(nm, blocksize):
    """Lazy batch updates: within-block columns are always up to date, so N:M is blocksize-free."""
    W, _, H = layer()
    Wn, mask, _ = sparsegpt_solve(W, H.float(), 0.5, nm=nm, blocksize=blocksize)
    Wr, mr = obs_reference(W, H, 0.01, nm=nm)
    np.testing.assert_array_equal(mask.numpy(), mr)
    np.testing.assert_allclose(Wn.numpy(), Wr, atol=2e-4)
    assert (mask.view(16, -1, nm[1]).sum(-1) == nm[0]).all()


@pytest.mark.parametrize("p", [0.5, 0.75])
def test_masked_zero_exact_sparsity_and_lower_error_than_magnitude_wanda(p):
    W, X, H = layer(rows=32, cols=96)
    Wn, mask, _ = sparsegpt_solve(W, H.float(), p, blocksize=32)
    assert (Wn[mask] == 0).all()
    assert mask.sum().item() == 3 * int(32 * 32 * p)  # ⌊p·numel⌋ in each 32-column block
    Xf = X.reshape(-1, 96).double()

    def err(What):
        return torch.linalg.norm(Xf @ W.double().T - Xf @ What.double().T).item()

    k = int(W.numel() * p)
    mag = W.clone().reshape(-1)
    mag[torch.argsort(W.abs().reshape(-1))[:k]] = 0
    r = (X**2).sum(1).mean(0)
    S = W.abs() * r.sqrt()
    wanda = W.clone()
    rows = torch.arange(32)[:, None]
    wanda[rows, torch.argsort(S, dim=1)[:, : int(96 * p)]] = 0
    e = err(Wn)
    assert e < err(mag.view_as(W)) and e < err(wanda)


def test_dead_inputs_are_zeroed():
    W, _, H = layer()
    H[:, 3] = 0
    H[3, :] = 0
    Wn, _, info = sparsegpt_solve(W, H.float(), 0.5)
    assert info.dead_inputs == 1 and (Wn[:, 3] == 0).all()


def test_cholesky_retries_then_succeeds(caplog):
    H = torch.tensor([[1.0, 1.05], [1.05, 1.0]])  # eigenvalue −0.05: PD only from damping 0.1
    with caplog.at_level(logging.WARNING):
        _, _, info = sparsegpt_solve(torch.randn(3, 2), H, 0.5, name="toy")
    assert info.retries == 1 and info.damp == pytest.approx(0.1)
    assert "Cholesky failed" in caplog.text


def test_damping_is_computed_in_float32_as_the_release():
    """λ = percdamp · mean(diag H) as a float32 tensor op, added to the diagonal in place
    (`damp = percdamp * torch.mean(torch.diag(H)); H[diag, diag] += damp`): for a Hessian where
    that differs from the float64 product rounded once, the factor is the release's."""
    from sinkprune.pruning.sparsegpt_solver import inverse_cholesky

    for seed in range(200):  # a Hessian whose fp32 and fp64 λ differ in the last bit
        _, _, H = layer(cols=32, seed=seed)
        H = H.float()
        lam32 = 0.01 * torch.mean(torch.diag(H))
        lam64 = torch.tensor(0.01 * float(torch.mean(torch.diag(H))), dtype=torch.float32)
        if lam32 != lam64:
            break
    else:
        pytest.fail("no Hessian with differing fp32 / fp64 damping found")
    U, damp, retries = inverse_cholesky(H, 0.01)
    assert retries == 0 and damp == float(lam32) != float(lam64)
    release = H.clone()
    idx = torch.arange(H.shape[0])
    release[idx, idx] += lam32
    L = torch.linalg.cholesky(release)
    want = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    assert torch.equal(U, want)


def test_cholesky_gives_up_with_clear_error(caplog):
    H = torch.tensor([[1.0, 100.0], [100.0, 1.0]])  # eigenvalue −99: no damping up to 10 helps
    with caplog.at_level(logging.WARNING), pytest.raises(CholeskyError, match="percdamp"):
        sparsegpt_solve(torch.randn(3, 2), H, 0.5, name="block 0 q_proj")
    assert caplog.text.count("Cholesky failed") == 4  # first try + 3 retries


def calib(mean_omega=None):
    toks = torch.randint(0, 39, (4, 16), generator=torch.Generator().manual_seed(1))
    sinks = None
    if mean_omega is not None:
        sinks = SinkData(toks, torch.ones(toks.shape), [], mean_omega)
    return CalibrationData(list(range(4)), toks, sinks)


@pytest.mark.parametrize("stype", ["unstructured", "2:4"])
def test_sink_sgpt_with_unit_omega_equals_sparsegpt_bitwise(stype):
    a, b = tiny_llada(), tiny_llada()
    ra = prune_model(get_adapter(a), calib(), PruneSpec("sparsegpt", 0.5, stype, blocksize=16))
    rb = prune_model(
        get_adapter(b), calib(torch.ones(4, 16)), PruneSpec("sink_sgpt", 0.5, stype, blocksize=16)
    )
    assert ra.digests == rb.digests
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb), na


def test_sink_sgpt_weights_change_result():
    a, b = tiny_llada(), tiny_llada()
    w = torch.rand(4, 16, generator=torch.Generator().manual_seed(3))
    ra = prune_model(get_adapter(a), calib(), PruneSpec("sparsegpt", 0.5, blocksize=16))
    rb = prune_model(get_adapter(b), calib(w), PruneSpec("sink_sgpt", 0.5, blocksize=16))
    assert ra.digests != rb.digests


def test_sparsegpt_model_masks_zero_and_exact():
    model = tiny_llada()
    ad = get_adapter(model)
    res = prune_model(ad, calib(), PruneSpec("sparsegpt", 0.5, blocksize=16))
    for i in range(ad.n_layers):
        for n, lin in ad.linears(i).items():
            mask = res.masks[f"{i}.{n}"]
            assert (lin.weight[mask] == 0).all()
            assert mask.sum().item() == mask.numel() // 2
    assert res.overall_sparsity() == 0.5


@pytest.mark.parametrize("nm", [None, (2, 4), (4, 8)])
def test_solver_is_bit_identical_to_textbook_lazy_batch_sparsegpt(nm):
    """The solver walks each block as contiguous rows (speed); weights and masks must equal the
    textbook column-major loop (sinkprune.bench.sparsegpt_solve.reference_solve) bit for bit."""
    from sinkprune.bench.sparsegpt_solve import reference_solve

    W, _, H = layer(rows=24, cols=96, n=6)
    H = H.float()
    H[:, 5] = 0
    H[5, :] = 0  # a dead input
    Wn, mask, _ = sparsegpt_solve(W, H, 0.5, nm=nm, blocksize=32)
    Wr, mr = reference_solve(W, H, 0.5, nm=nm, blocksize=32)
    assert torch.equal(mask, mr)
    assert torch.equal(Wn, Wr)
