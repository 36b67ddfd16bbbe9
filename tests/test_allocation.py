"""Layer-wise sparsity allocation (uniform, owl, deeper, earlier): the achieved parameter-weighted
sparsity is the target for every method, OWL's ratios and layer sparsities equal a computation
by hand, the schedules are the linear ramps, and the counts are exact."""

import copy

import numpy as np
import pytest
import torch
from helpers import VOCAB
from test_pruning_wanda import capture_inputs, tokens

from sinkprune.models import LLaDAConfig, LLaDAModelLM, get_adapter
from sinkprune.pruning import CalibrationData, PruneSpec, SinkData, prune_model
from sinkprune.pruning.allocation import block_counts, exact_counts
from sinkprune.pruning.select import per_row_count_mask, per_row_mask

torch.set_num_threads(1)
MASK, L = VOCAB - 1, 4


@pytest.fixture(scope="module")
def model():
    """A random 4-block LLaDA (d 32, MLP 48: linears of 32 and 48 inputs)."""
    torch.manual_seed(3)
    cfg = LLaDAConfig(d_model=32, n_layers=L, n_heads=4, mlp_hidden_size=48, vocab_size=VOCAB,
                      max_sequence_length=16, mask_token_id=MASK)  # fmt: skip
    m = LLaDAModelLM(cfg).eval()
    with torch.no_grad():  # uneven layers, so that OWL has outliers to rank
        for i, block in enumerate(get_adapter(m).blocks):
            block.ff_out.weight[:, : 4 * i + 1] *= 8.0
    return m


def calib():
    toks = tokens(n=4)
    g = torch.Generator().manual_seed(2)
    noised = torch.cat([toks.masked_fill(torch.rand(toks.shape, generator=g) < t, MASK)
                        for t in (0.4, 0.9)])  # fmt: skip
    sinks = SinkData(noised, torch.rand(noised.shape, generator=g), [],
                     torch.rand(toks.shape, generator=g))  # fmt: skip
    return CalibrationData(list(range(4)), toks, sinks)


METHODS = ["magnitude", "wanda", "dwanda", "sparsegpt", "sink", "sink_sgpt"]


def run(model, method, allocation, p, **kw):
    m = copy.deepcopy(model)
    ad = get_adapter(m)
    spec = PruneSpec(method, p, allocation=allocation, batch_size=4, mask_repeats=2, **kw)
    return prune_model(ad, calib(), spec), ad


def achieved(ad) -> float:
    """Parameter-weighted share of zero weights over every block linear, counted here."""
    zeros = total = 0
    for i in range(ad.n_layers):
        for lin in ad.linears(i).values():
            zeros += int((lin.weight == 0).sum())
            total += lin.weight.numel()
    return zeros / total


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "allocation,p",
    [("uniform", 0.5), ("uniform", 0.75), ("owl", 0.5), ("owl", 0.375), ("owl", 0.3),
     ("deeper", 0.625), ("earlier", 0.4375)],
)  # fmt: skip
def test_achieved_sparsity_is_the_target(model, method, allocation, p):
    """Uniform keeps each method's own rule (exact where p·d_in is an integer: 0.5, 0.75 here);
    the other allocations prune exactly round(p·Σ numel) weights at any p: the target itself
    where p·Σ numel is an integer (Σ numel = 34 816 here: all but 0.3), else within 1/(2·Σ numel)
    (≤ 1e-6 for any model of 500 000 linear weights or more, see the next test)."""
    res, ad = run(model, method, allocation, p)
    total = sum(res.numel.values())
    tol = 1e-6 if float(p * total).is_integer() else 0.5 / total + 1e-12
    assert abs(sum(res.pruned.values()) / total - p) <= tol
    assert abs(achieved(ad) - p) <= tol  # the weights themselves (no dead inputs here)
    layer = res.layer_sparsity()
    if allocation != "uniform":
        assert res.allocation["kind"] == allocation
        allocated = list(res.allocation["layer_sparsity"].values())
        assert len(set(np.round(allocated, 9))) > 1  # not uniform
        sizes = [sum(n for k, n in res.numel.items() if k.startswith(f"{i}.")) for i in range(L)]
        assert abs(np.dot(sizes, allocated) / sum(sizes) - p) < 1e-12
        # each block's achieved sparsity is its allocation up to the integer counts
        for i in range(L):
            assert abs(layer[str(i)] - allocated[i]) < 2 / sizes[i] * 7


@pytest.mark.parametrize("method,allocation", [("magnitude", "owl"), ("wanda", "owl"),
                                               ("sink", "earlier")])  # fmt: skip
def test_any_target_within_1e6_at_the_embedded_size(method, allocation):
    """tiny-dlm's shape (802 816 linear weights): 0.3 · Σ numel is not an integer, and the
    achieved sparsity is still the target within 1e-6."""
    torch.manual_seed(0)
    cfg = LLaDAConfig(d_model=128, n_layers=4, n_heads=4, mlp_hidden_size=352, vocab_size=VOCAB,
                      max_sequence_length=16, mask_token_id=MASK)  # fmt: skip
    big = LLaDAModelLM(cfg).eval()
    res, ad = run(big, method, allocation, 0.3)
    total = sum(res.numel.values())
    assert total == 802816 and not float(0.3 * total).is_integer()
    assert abs(sum(res.pruned.values()) / total - 0.3) <= 1e-6
    assert abs(achieved(ad) - 0.3) <= 1e-6


def test_uniform_allocation_keeps_the_release_masks(model):
    plain = prune_model(get_adapter(copy.deepcopy(model)), calib(), PruneSpec("wanda", 0.3))
    uni, _ = run(model, "wanda", "uniform", 0.3)
    for key in plain.masks:
        assert torch.equal(plain.masks[key], uni.masks[key])
    # ⌊0.3·32⌋ = 9 and ⌊0.3·48⌋ = 14 per row: below the target, as in the release
    assert sum(uni.pruned.values()) / sum(uni.numel.values()) < 0.3


def owl_by_hand(scores_per_block, p, m=5.0, lam=0.08):
    """OWL (arXiv 2310.05175) as its reference code reads: D = % of the block's scores > M·mean,
    min-max normalised to [0, 2λ], minus their mean, plus 1 − p = keep ratio."""
    D = []
    for scores in scores_per_block:
        flat = np.concatenate([s.ravel() for s in scores])
        D.append(100.0 * np.count_nonzero(flat > m * flat.mean()) / flat.size)
    D = np.array(D)
    keep = (D - D.min()) / (D.max() - D.min()) * lam * 2
    keep = keep - keep.mean() + (1 - p)
    return D / 100.0, 1 - keep


def test_owl_on_magnitude_scores_by_hand(model):
    ad = get_adapter(model)
    scores = [
        [np.abs(lin.weight.detach().double().numpy()) for lin in ad.linears(i).values()]
        for i in range(L)
    ]
    D, p_layer = owl_by_hand(scores, 0.5)
    res, _ = run(model, "magnitude", "owl", 0.5)
    np.testing.assert_allclose(list(res.allocation["outlier_ratio"].values()), D, atol=1e-12)
    np.testing.assert_allclose(list(res.allocation["layer_sparsity"].values()), p_layer, atol=1e-9)
    assert D.max() > D.min()


def test_owl_on_wanda_scores_of_the_dense_model_by_hand(model):
    """Wanda's OWL scores |W|·sqrt(mean ‖X_c‖²) with X from the dense model (a plain forward):
    OWL needs every layer's scores before block 0 is pruned."""
    ad = get_adapter(model)
    toks = calib().tokens
    scores = []
    for i in range(L):
        X = capture_inputs(model, i, toks)
        block = []
        for name, lin in ad.linears(i).items():
            r = (X[name] ** 2).sum(axis=1).mean(axis=0)
            block.append(np.abs(lin.weight.detach().double().numpy()) * np.sqrt(r)[None])
        scores.append(block)
    D, p_layer = owl_by_hand(scores, 0.6, m=3.0, lam=0.1)
    res, _ = run(model, "wanda", "owl", 0.6, owl_m=3.0, owl_lambda=0.1)
    np.testing.assert_allclose(list(res.allocation["outlier_ratio"].values()), D, atol=1e-9)
    np.testing.assert_allclose(list(res.allocation["layer_sparsity"].values()), p_layer, atol=1e-6)


def test_owl_on_sink_scores_uses_the_variant_statistic(model):
    """sink's OWL scores are |W|·a with the variant's own a (here ω-weighted, summed)."""
    c = calib()
    ad = get_adapter(model)
    scores = []
    for i in range(L):
        X = capture_inputs(model, i, c.sinks.tokens)
        w = c.sinks.omega.double().numpy()[:, :, None]
        block = []
        for name, lin in ad.linears(i).items():
            a = np.sqrt(((X[name] * w) ** 2).sum(axis=1)).sum(axis=0)
            block.append(np.abs(lin.weight.detach().double().numpy()) * a[None])
        scores.append(block)
    D, p_layer = owl_by_hand(scores, 0.5)
    res, _ = run(model, "sink", "owl", 0.5)
    np.testing.assert_allclose(list(res.allocation["outlier_ratio"].values()), D, atol=1e-9)
    np.testing.assert_allclose(list(res.allocation["layer_sparsity"].values()), p_layer, atol=1e-6)


@pytest.mark.parametrize("kind,sign", [("deeper", 1.0), ("earlier", -1.0)])
def test_depth_schedules_are_linear_ramps(model, kind, sign):
    res, _ = run(model, "magnitude", kind, 0.5, schedule_epsilon=0.1)
    ramp = 0.5 + sign * 0.1 * (2 * np.arange(L) / (L - 1) - 1)  # p − ε … p + ε
    np.testing.assert_allclose(list(res.allocation["layer_sparsity"].values()), ramp, atol=1e-12)


def test_allocation_refuses_nm_and_out_of_range(model):
    with pytest.raises(ValueError, match="unstructured"):
        run(model, "wanda", "owl", 0.5, sparsity_type="2:4")
    with pytest.raises(ValueError, match="pruning.schedule.epsilon"):
        run(model, "magnitude", "deeper", 0.95, schedule_epsilon=0.1)


def test_exact_counts_sum_to_the_target():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n_layers = int(rng.integers(1, 6))
        numel = {f"{i}.{k}": int(rng.integers(1, 500)) for i in range(n_layers) for k in "abc"}
        p = float(rng.uniform(0.05, 0.9))
        layer = np.clip(p + rng.normal(0, 0.05, n_layers), 0, 1)
        sizes = np.array([sum(v for k, v in numel.items() if k[0] == str(i))
                          for i in range(n_layers)])  # fmt: skip
        layer = layer - np.dot(sizes, layer) / sizes.sum() + p  # weighted mean p
        if (layer < 0).any() or (layer > 1).any():
            continue
        counts = exact_counts(layer.tolist(), numel, p)
        total = sum(numel.values())
        assert sum(counts.values()) == int(np.floor(p * total + 0.5))
        for k, c in counts.items():  # each linear within one weight of its ideal count
            assert abs(c - layer[int(k[0])] * numel[k]) < 1 + 1e-9


def test_row_counts_spread_evenly_and_match_the_row_rule():
    S = torch.rand(6, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(per_row_count_mask(S, 30), per_row_mask(S, 0.5))  # 5 per row
    mask = per_row_count_mask(S, 33)
    per_row = mask.sum(dim=1)
    assert mask.sum() == 33 and set(per_row.tolist()) == {5, 6}
    # the 3 extra weights go to the rows whose 6th-lowest score is smallest
    sixth = torch.sort(S, dim=1).values[:, 5]
    assert set(torch.nonzero(per_row == 6).ravel().tolist()) == set(
        torch.argsort(sixth)[:3].tolist()
    )
    assert (mask == (S <= torch.sort(S, dim=1).values[:, [4]]) | mask).all()


def test_block_counts_split_a_count_over_column_blocks():
    for count, cols, rows in [(100, 300, 4), (37, 260, 3), (0, 128, 2), (512, 256, 2)]:
        got = block_counts(count, cols, rows, 128)
        widths = [min(128, cols - i) for i in range(0, cols, 128)]
        assert sum(got) == count
        assert all(abs(c - count * w / cols) < 1 for c, w in zip(got, widths, strict=True))


# ------------------------------------------------------------------ the report ---
def test_allocation_report_by_hand(tmp_path):
    """sink-owl is compared with sink (uniform) and with wanda-owl; wanda-owl with wanda. Items:
    100, nested, so Δ accuracy is exact; held-out CE per masked token differs by a constant."""
    import csv
    import json

    from helpers import write_heldout_json, write_task_json

    from sinkprune.allocation_report import build_allocation_report

    right = {"wanda": 40, "sink": 50, "wanda-owl": 45, "sink-owl": 58}
    ce = {"wanda": 5.0, "sink": 4.6, "wanda-owl": 4.9, "sink-owl": 4.5}
    results, reports, names = tmp_path / "results", [], []
    for label, k in right.items():
        name = f"{label}_unstructured_0.75"
        names.append(name)
        write_task_json(results, "m", name, "task_a", [1.0] * k + [0.0] * (100 - k))
        c = ce[label]
        write_heldout_json(results, "m", name, 0.5, [c * 10, c * 20], [10, 20], [30.0, 30.0])
        owl = label.endswith("owl")
        per_layer = [0.65, 0.85] if owl else [0.75, 0.75]
        report = {"variant": name, "target_sparsity": 0.75,
                  "sparsity": {"overall": 0.75, "per_layer": {"0": per_layer[0], "1": per_layer[1]}},
                  "allocation": ({"kind": "owl", "layer_sparsity": {"0": 0.65, "1": 0.85},
                                  "outlier_ratio": {"0": 0.04, "1": 0.03}} if owl
                                 else {"kind": "uniform"})}  # fmt: skip
        path = tmp_path / "pruned" / name / "prune_report.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(report))
        reports.append(path)
    md, out_csv = tmp_path / "a.md", tmp_path / "a.csv"
    pngs = (tmp_path / "a.png", tmp_path / "a.pdf")
    build_allocation_report(reports, sorted(results.rglob("*.json")), "m", names,
                            {"task_a": {"metric": "acc"}}, (md, out_csv), pngs)  # fmt: skip
    rows = list(csv.DictReader(out_csv.open()))
    deltas = {(r["variant"], r["reference"], r["metric"]): r for r in rows if r["reference"]}
    assert set((v, r) for v, r, _ in deltas) == {
        ("wanda-owl_unstructured_0.75", "wanda_unstructured_0.75"),
        ("sink-owl_unstructured_0.75", "sink_unstructured_0.75"),
        ("sink-owl_unstructured_0.75", "wanda-owl_unstructured_0.75"),
    }
    d = deltas[("sink-owl_unstructured_0.75", "wanda-owl_unstructured_0.75", "task_a")]
    assert float(d["delta"]) == pytest.approx(13.0)
    d = deltas[("sink-owl_unstructured_0.75", "sink_unstructured_0.75", "ce_t0.5")]
    assert float(d["delta"]) == pytest.approx(-0.1) and float(d["delta_hi"]) == pytest.approx(-0.1)
    values = {(r["variant"], r["metric"]): r["value"] for r in rows if not r["reference"]}
    assert values[("sink-owl_unstructured_0.75", "sparsity_block0")] == "0.650000"
    text = md.read_text()
    assert "| Sink-aware Wanda (OWL) | 0.7500 | 0.650 / 0.850 |" in text
    assert "| Sink-aware Wanda (OWL) | Wanda (OWL) | 58.00 ± " not in text  # Δ rows show Δ only
    assert all(p.stat().st_size > 1000 for p in pngs)
