"""`dwanda` (DWANDA): Wanda on noised calibration copies. With no masking it is Wanda bit for bit;
its copies follow the seeded definition written out here; it equals a sequential Wanda reference
run on the same noised inputs; `noise: grid` gives exactly the sink stage's x_t."""

import numpy as np
import pytest
import torch
from helpers import VOCAB, tiny_llada
from test_pruning_wanda import tokens, wanda_reference

from sinkprune.calibration import (
    NoiseSpec,
    copy_generator,
    grid_copies,
    noise_generator,
    random_t_copies,
)
from sinkprune.models import get_adapter
from sinkprune.pruning import CalibrationData, PruneSpec, prune_model

torch.set_num_threads(1)
N, MASK = 5, VOCAB - 1
SPEC = NoiseSpec(eps=1e-3, mask_id=MASK, seed=7)


def masks_of(model, calib, spec):
    return prune_model(get_adapter(model), calib, spec).masks


@pytest.mark.parametrize("stype", ["unstructured", "2:4"])
def test_no_masking_gives_wanda_bit_for_bit(stype):
    """t ≡ 0 and ε = 0: every copy is the clean window, so dwanda is wanda."""
    toks = tokens(n=N)
    calib = CalibrationData(list(range(N)), toks)
    common = dict(sparsity=0.5, sparsity_type=stype, batch_size=2)
    wanda = masks_of(tiny_llada(), calib, PruneSpec("wanda", **common))
    dwanda = masks_of(
        tiny_llada(),
        calib,
        PruneSpec("dwanda", **common, mask_repeats=1, t_min=0.0, t_max=0.0, eps=0.0),
    )
    assert wanda.keys() == dwanda.keys()
    for key in wanda:
        assert torch.equal(wanda[key], dwanda[key]), key


def test_copies_follow_the_seeded_definition():
    """Copy c of sample s: t = t_min + (t_max − t_min)·u, u the first float64 draw of
    SeedSequence([seed, s, c, tag]); position j masked iff its float32 draw < (1 − ε)·t + ε."""
    toks = tokens(n=3)
    ids = [4, 9, 11]
    x, t = random_t_copies(ids, toks, 4, 0.2, 0.9, SPEC)
    assert x.shape == (12, toks.shape[1]) and t.shape == (12,)
    for r, (s, c) in enumerate((s, c) for s in range(3) for c in range(4)):
        g = copy_generator(SPEC.seed, ids[s], c)
        t_ref = 0.2 + 0.7 * torch.rand((), generator=g, dtype=torch.float64).item()
        masked = torch.rand(toks.shape[1], generator=g) < (1 - SPEC.eps) * t_ref + SPEC.eps
        assert t[r].item() == pytest.approx(t_ref, abs=0)
        assert torch.equal(x[r], toks[s].masked_fill(masked, MASK)), (s, c)
    # a copy depends on (sample, copy) only: sample 9 alone gives the same copies
    alone, _ = random_t_copies([9], toks[1:2], 4, 0.2, 0.9, SPEC)
    assert torch.equal(alone, x[4:8])
    # the stream differs from the diffusion grid's (seed, sample, step) stream
    assert not torch.equal(
        torch.rand(8, generator=copy_generator(7, 4, 5)),
        torch.rand(8, generator=noise_generator(7, 4, 5)),
    )


def test_t_is_uniform_and_masking_follows_t():
    toks = torch.zeros(200, 64, dtype=torch.long)
    x, t = random_t_copies(list(range(200)), toks, 5, 0.0, 1.0, SPEC)
    assert 0.0 <= t.min() and t.max() < 1.0
    assert abs(t.mean().item() - 0.5) < 0.03  # 1000 draws of U[0, 1]: sd of the mean 0.009
    share = (x == MASK).double().mean(dim=1)
    expected = (1 - SPEC.eps) * t + SPEC.eps
    assert (share - expected).abs().mean() < 0.06  # 64 positions per copy


def test_dwanda_is_sequential_wanda_on_the_noised_copies():
    """Reference: test_pruning_wanda's sequential Wanda by hand, run on the same copies."""
    toks = tokens(n=N)
    spec = PruneSpec(
        "dwanda", 0.5, batch_size=3, mask_repeats=3, t_min=0.0, t_max=1.0, noise_seed=7
    )
    noised, _ = random_t_copies(list(range(N)), toks, 3, 0.0, 1.0, SPEC)
    assert (noised == MASK).any()
    ref = wanda_reference(tiny_llada(), noised, 0.5)
    got = masks_of(tiny_llada(), CalibrationData(list(range(N)), toks), spec)
    for key, mask in ref.items():
        np.testing.assert_array_equal(got[key].numpy(), mask, err_msg=key)
    clean = masks_of(tiny_llada(), CalibrationData(list(range(N)), toks), PruneSpec("wanda", 0.5))
    assert any(not torch.equal(clean[k], got[k]) for k in got)  # the noise changes the masks


def test_grid_noise_is_the_sink_stage_x_t():
    """`noise: grid` runs on exactly load_sink_data's x_t (step-major), as rule sink_norms."""
    from sinkprune.calibration import noised_batch

    toks = tokens(n=3)
    grid = [(5, 0.5), (10, 1.0)]
    x = grid_copies([0, 1, 2], toks, grid, SPEC)
    ref = torch.cat([noised_batch([0, 1, 2], toks, s, t, SPEC)[0] for s, t in grid])
    assert torch.equal(x, ref) and (x[3:] == MASK).all()  # t = 1 masks everything
    spec = PruneSpec("dwanda", 0.5, noise="grid", grid=tuple(grid), noise_seed=7)
    got = masks_of(tiny_llada(), CalibrationData([0, 1, 2], toks), spec)
    ref_masks = wanda_reference(tiny_llada(), x, 0.5)
    for key, mask in ref_masks.items():
        np.testing.assert_array_equal(got[key].numpy(), mask, err_msg=key)


def test_dwanda_report_and_params(tmp_path):
    """prune_checkpoint records dwanda's noise in prune_report.json's calibration block."""
    from sinkprune.calibration import write_samples
    from sinkprune.pruning.io import prune_checkpoint

    model = tiny_llada()
    model.save_pretrained(tmp_path / "base")
    write_samples(tokens(n=3).numpy().astype(np.int32), tmp_path / "samples.parquet")
    report = prune_checkpoint(
        tmp_path / "base", tmp_path / "samples.parquet", tmp_path / "out",
        "dwanda_unstructured_0.5", mask_repeats=2, t_min=0.1, t_max=0.6, noise_seed=3,
    )  # fmt: skip
    cal = report["calibration"]
    assert (cal["noise"], cal["mask_repeats"], cal["t_min"], cal["t_max"]) == (
        "random",
        2,
        0.1,
        0.6,
    )
    assert cal["noised_inputs"] == 6 and report["sparsity"]["overall"] == 0.5
