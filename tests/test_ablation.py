"""The ablation ladders (issue #18): each rung's switch does what it says, against computations
written here, and adjacent rungs differ in exactly one property."""

import copy

import numpy as np
import pytest
import torch
from helpers import VOCAB, tiny_llada
from test_pruning_wanda import capture_inputs, row_mask, tokens

from sinkprune.config import SPARSEGPT_LADDER, WANDA_LADDER
from sinkprune.models import LLaDAConfig, LLaDAModelLM, get_adapter
from sinkprune.pruning import CalibrationData, PruneSpec, SinkData, prune_model

torch.set_num_threads(1)
MASK = VOCAB - 1


def noised_calib(n=3, seed=5):
    toks = tokens(n=n)
    g = torch.Generator().manual_seed(seed)
    noised = torch.cat([toks.masked_fill(torch.rand(toks.shape, generator=g) < t, MASK)
                        for t in (0.3, 0.8)])  # fmt: skip
    omega = torch.rand(noised.shape, generator=g)  # a real ω: the switch must ignore it
    mean_omega = torch.rand(toks.shape, generator=g)
    keys = [(s, st) for st in (5, 10) for s in range(n)]
    return CalibrationData(list(range(n)), toks, SinkData(noised, omega, keys, mean_omega))


def one_shot_reference(model, noised, p, statistic):
    """Wanda-style scores on the *dense* model's inputs over all noised x_t, one pass:
    `summed` a_c = Σ_x ‖X_c‖₂, `rms` sqrt(mean_x ‖X_c‖₂²); S = |W|·norm, ⌊p·d_in⌋ per row."""
    ad = get_adapter(model)
    masks = {}
    for i in range(ad.n_layers):
        X = capture_inputs(model, i, noised)  # plain forwards of the unpruned model
        for name, lin in ad.linears(i).items():
            sq = (X[name] ** 2).sum(axis=1)  # (inputs, d_in): ‖X_c‖² per input
            norm = np.sqrt(sq).sum(axis=0) if statistic == "summed" else np.sqrt(sq.mean(axis=0))
            S = np.abs(lin.weight.detach().double().numpy()) * norm[None]
            masks[f"{i}.{name}"] = row_mask(S, p)
    return masks


@pytest.mark.parametrize("norm", ["summed", "rms"])
def test_unweighted_sink_is_a_one_shot_wanda_over_the_noised_inputs(norm):
    calib = noised_calib()
    ref = one_shot_reference(tiny_llada(), calib.sinks.tokens, 0.5, norm)
    spec = PruneSpec("sink", 0.5, weighting="none", norm=norm, batch_size=4)
    got = prune_model(get_adapter(tiny_llada()), calib, spec).masks
    for key, mask in ref.items():
        np.testing.assert_array_equal(got[key].numpy(), mask, err_msg=key)
    weighted = prune_model(get_adapter(tiny_llada()), calib, PruneSpec("sink", 0.5)).masks
    assert any(not torch.equal(weighted[k], got[k]) for k in got)  # ω matters here


def test_summed_and_rms_statistics_rank_differently():
    """Σ‖X_c‖ (L1 over inputs) and sqrt(mean ‖X_c‖²) (L2) are not a rescaling of each other."""
    calib = noised_calib()
    summed = one_shot_reference(tiny_llada(), calib.sinks.tokens, 0.5, "summed")
    rms = one_shot_reference(tiny_llada(), calib.sinks.tokens, 0.5, "rms")
    assert any((summed[k] != rms[k]).any() for k in summed)


def test_sink_sgpt_without_weighting_is_sparsegpt():
    """The SparseGPT ladder's ω ≡ 1 rung: same clean inputs, same sequential pass, same solver."""
    calib = noised_calib()
    models = [tiny_llada(), tiny_llada()]
    base = prune_model(get_adapter(models[0]), calib, PruneSpec("sparsegpt", 0.5, batch_size=2))
    spec = PruneSpec("sink_sgpt", 0.5, weighting="none", batch_size=2)
    unweighted = prune_model(get_adapter(models[1]), calib, spec)
    for key in base.masks:
        assert torch.equal(base.masks[key], unweighted.masks[key]), key
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)
    weighted = prune_model(get_adapter(tiny_llada()), calib, PruneSpec("sink_sgpt", 0.5))
    assert any(not torch.equal(weighted.masks[k], base.masks[k]) for k in base.masks)


def test_sequential_equals_one_shot_on_a_single_block():
    """dwanda-grid → sink-unweighted-rms changes only sequential → one-shot: with one block the
    two passes see the same inputs, so the masks agree."""
    torch.manual_seed(0)
    cfg = LLaDAConfig(d_model=32, n_layers=1, n_heads=4, mlp_hidden_size=64, vocab_size=VOCAB,
                      max_sequence_length=16, mask_token_id=MASK)  # fmt: skip
    model = LLaDAModelLM(cfg).eval()
    calib = noised_calib()
    grid_spec = PruneSpec("dwanda", 0.5, noise="grid", grid=((5, 0.3), (10, 0.8)), batch_size=4)
    # dwanda regenerates its grid x_t itself: give sink the very same inputs
    from sinkprune.pruning.dwanda import dwanda_inputs

    x = dwanda_inputs(get_adapter(model), calib, grid_spec)
    calib.sinks = SinkData(x, torch.ones(x.shape), [], calib.sinks.mean_omega)
    seq = prune_model(get_adapter(copy.deepcopy(model)), calib, grid_spec).masks
    spec = PruneSpec("sink", 0.5, weighting="none", norm="rms", batch_size=4)
    one = prune_model(get_adapter(copy.deepcopy(model)), calib, spec).masks
    for key in seq:
        assert torch.equal(seq[key], one[key]), key


def test_every_rung_changes_one_property():
    from sinkprune.ablation import rung_properties

    for ladder in (WANDA_LADDER, SPARSEGPT_LADDER):
        props = [rung_properties(m, o) for m, o in ladder]
        for below, above in zip(props, props[1:], strict=False):
            changed = [k for k in below if below[k] != above[k]]
            assert len(changed) == 1, (below, above)
    first, last = (rung_properties(*WANDA_LADDER[i]) for i in (0, -1))
    assert all(first[k] != last[k] for k in first)  # wanda → sink changes all four


# ------------------------------------------------------------------ the table ---
def write_ladder_results(results, ladder_names):
    """Rung k (0-based) of the Wanda ladder: 40 of 100 items + 5·k right (nested: every item
    right at rung k is right above it), held-out CE per masked token 5.0 − 0.1·k in every window;
    the SparseGPT ladder: sink_sgpt one item more than sparsegpt, CE 0.2 lower."""
    from helpers import write_heldout_json, write_task_json

    wanda, sgpt = ladder_names
    for k, name in enumerate(wanda):
        write_task_json(results, "m", name, "task_a", [1.0] * (40 + 5 * k) + [0.0] * (60 - 5 * k))
        ce = 5.0 - 0.1 * k
        write_heldout_json(results, "m", name, 0.5, [ce * 10, ce * 20, ce * 30], [10, 20, 30],
                           [30.0 - k] * 3)  # fmt: skip
    for k, name in enumerate(sgpt):
        write_task_json(results, "m", name, "task_a", [1.0] * (50 + k) + [0.0] * (50 - k))
        ce = 4.5 - 0.2 * k
        write_heldout_json(results, "m", name, 0.5, [ce * 10, ce * 20, ce * 30], [10, 20, 30],
                           [25.0] * 3)  # fmt: skip


def test_ladder_table_deltas_by_hand(tmp_path):
    import csv

    from sinkprune.ablation import build_ladder_table
    from sinkprune.config import ladder_variants

    names = [[v.name for v in ladder_variants(lad, "unstructured", 0.75)]
             for lad in ("wanda", "sparsegpt")]  # fmt: skip
    assert names[0] == [
        "wanda_unstructured_0.75",
        "dwanda_unstructured_0.75",
        "dwanda-grid_unstructured_0.75",
        "sink-unweighted-rms_unstructured_0.75",
        "sink-unweighted_unstructured_0.75",
        "sink_unstructured_0.75",
    ]
    results = tmp_path / "results"
    write_ladder_results(results, names)
    files = sorted(results.rglob("*.json"))
    md, out_csv = tmp_path / "ladder.md", tmp_path / "ladder.csv"
    build_ladder_table(files, md, out_csv, ["m"], [{"sparsity_type": "unstructured",
                       "sparsities": [0.75]}], {"task_a": {"metric": "acc"}})  # fmt: skip
    rows = list(csv.DictReader(out_csv.open()))
    got = {(r["ladder"], r["rung"], r["metric"]): r for r in rows}
    # every Wanda rung adds 5 items of 100 (5 points; nested, so each item's Δ is 0 or 1)
    for k in range(2, 7):
        r = got[("wanda", str(k), "task_a")]
        assert float(r["delta"]) == pytest.approx(5.0)
        assert float(r["delta_lo"]) <= 5.0 <= float(r["delta_hi"]) and float(r["delta_lo"]) > 0
        ce = got[("wanda", str(k), "ce_t0.5")]  # −0.1 nats in every window: a degenerate CI
        assert (float(ce["delta"]), float(ce["delta_lo"]), float(ce["delta_hi"])) == (
            pytest.approx(-0.1),
            pytest.approx(-0.1),
            pytest.approx(-0.1),
        )
    assert got[("wanda", "1", "task_a")]["delta"] == ""  # the bottom rung has no Δ
    assert got[("wanda", "4", "task_a")]["change"] == "pass: sequential → one-shot"
    assert got[("wanda", "6", "task_a")]["change"] == "weighting: ω ≡ 1 → ω"
    total = got[("wanda", "total", "task_a")]
    assert float(total["delta"]) == pytest.approx(25.0)  # 5 rungs × 5 points
    assert float(got[("sparsegpt", "2", "ce_t0.5")]["delta"]) == pytest.approx(-0.2)
    assert float(got[("sparsegpt", "2", "task_a")]["delta"]) == pytest.approx(1.0)
    text = md.read_text()
    assert "## m: Wanda → sink-aware Wanda, 75%" in text
    assert "| 6 | Sink-aware Wanda | weighting: ω ≡ 1 → ω |" in text
    assert "Δ -0.100 [-0.100, -0.100]*" in text


def test_ladder_table_shows_missing_rungs_as_missing(tmp_path):
    from sinkprune.ablation import build_ladder_table
    from sinkprune.config import ladder_variants

    names = [[v.name for v in ladder_variants(lad, "unstructured", 0.75)]
             for lad in ("wanda", "sparsegpt")]  # fmt: skip
    results = tmp_path / "results"
    write_ladder_results(results, names)
    for f in (results / "m" / "eval" / names[0][2]).iterdir():  # dwanda-grid not evaluated
        f.unlink()
    md, out_csv = tmp_path / "ladder.md", tmp_path / "ladder.csv"
    records = build_ladder_table(sorted(results.rglob("*.json")), md, out_csv, ["m"],
                                 [{"sparsity_type": "unstructured", "sparsities": [0.75]}],
                                 {"task_a": {"metric": "acc"}})  # fmt: skip
    missing = [r for r in records if r["ladder"] == "wanda" and r["rung"] in ("3", "4")]
    assert missing and all(np.isnan(r["delta"]) for r in missing)
    assert "| 3 | DWANDA (t grid) | inputs: random t → t grid | — |" in md.read_text()
