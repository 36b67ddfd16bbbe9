"""Tables and figures from a fixture directory of small lm-eval JSONs written here.

Golden values are computed by hand in the comments; nothing is compared against the builder
itself.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from sinkprune import report

TASKS = {
    "arc_challenge": {"metric": "acc_norm"},
    "piqa": {"metric": "acc"},
}
PRUNING = {
    "models": ["m"],
    "grid": [
        {"sparsity_type": "unstructured", "methods": ["wanda", "sink"], "sparsities": [0.5]},
        {"sparsity_type": "structured", "methods": ["wanda_sp", "sink_sp"], "sparsities": [0.3]},
    ],
}
MODELS = {
    "m": {"family": "llada", "kind": "dlm", "source": "hub", "hub_id": "x/m", "paper_name": "P-8B"}
}
EVALUATION = {"models": ["m"], "tasks": TASKS}

# fractions as lm-eval writes them; (variant, task) -> value. sink_unstructured_0.5/piqa is missing.
SCORES = {
    ("dense", "arc_challenge"): 0.4300,
    ("dense", "piqa"): 0.7410,
    ("wanda_unstructured_0.5", "arc_challenge"): 0.3908,
    ("wanda_unstructured_0.5", "piqa"): 0.7263,
    ("sink_unstructured_0.5", "arc_challenge"): 0.4138,
    ("wanda_sp_structured_0.3", "arc_challenge"): 0.3780,
    ("wanda_sp_structured_0.3", "piqa"): 0.6834,
    ("sink_sp_structured_0.3", "arc_challenge"): 0.3820,
    ("sink_sp_structured_0.3", "piqa"): 0.6955,
}
N_ITEMS = 10_000  # every 4-decimal score is a whole number of items
# variant -> per-window CE sums at t=0.15 and t=0.5 over 4 windows with 5 / 15 masked tokens each
# (so CE = sum / 20 and sum / 60) and ELBO nats per window (seqlen 8). sink is wanda - 0.5 nats
# per masked token in every window at t=0.5 (a degenerate paired CI), wanda's t=0.15 is dense's.
HELDOUT = {
    "dense": ([1.0, 2.0, 3.0, 4.0], [10.0, 15.0, 20.0, 25.0], [20.0, 22.0, 24.0, 26.0]),
    "wanda_unstructured_0.5": (
        [1.0, 2.0, 3.0, 4.0],
        [20.0, 15.0, 25.0, 25.0],
        [30.0, 30.0, 30.0, 30.0],
    ),
    "sink_unstructured_0.5": (
        [2.0, 2.0, 2.0, 2.0],
        [12.5, 7.5, 17.5, 17.5],
        [29.0, 29.0, 29.0, 29.0],
    ),
}

PUBLISHED = """table,model,pruning,sparsity,method,benchmark,value,unit,source
unstructured,P-8B,unstructured,0.0,dense,piqa,74.00,percent,x
unstructured,P-8B,unstructured,0.5,wanda,arc_challenge,39.00,percent,x
unstructured,P-8B,unstructured,0.5,sink,piqa,73.18,percent,x
unstructured,P-8B,unstructured,0.5,sink,gsm8k,55.88,percent,x
structured,P-8B,structured,0.3,sink_sp,piqa,69.55,percent,x
unstructured,Other,unstructured,0.5,wanda,piqa,10.00,percent,x
"""


def items(task: str, value: float) -> dict:
    """N_ITEMS per-item 0/1 values: the first round(value·N) are 1 (the score is their mean)."""
    k = round(value * N_ITEMS)
    return {
        "ids": [f"{task}/{i}" for i in range(N_ITEMS)],
        "values": [1.0 if i < k else 0.0 for i in range(N_ITEMS)],
    }


def write_fixture(root: Path) -> Path:
    results = root / "results"
    for (variant, task), value in SCORES.items():
        metric = report.metric_key(TASKS[task]["metric"])
        payload = {
            "results": {
                task: {
                    "alias": task,
                    metric: value,
                    metric.replace(",", "_stderr,"): 0.01,
                    "acc,none" if metric != "acc,none" else "acc_norm,none": 0.0,
                }
            },
            "config": {"model": "sinkprune_dlm"},
            "items": {"metric": metric, **items(task, value)},
        }
        path = results / "m" / "eval" / variant / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload))
    for variant, (s15, s50, nats) in HELDOUT.items():
        payload = {
            "seqlen": 8,
            "windows": [3, 5, 8, 13],
            "masked": [
                {"t": 0.15, "ce_nats": sum(s15) / 20, "ce_nats_stderr": 0.1,
                 "ce_sum_per_window": s15, "n_masked_per_window": [5] * 4},
                {"t": 0.5, "ce_nats": sum(s50) / 60, "ce_nats_stderr": 0.2,
                 "ce_sum_per_window": s50, "n_masked_per_window": [15] * 4},
            ],
            "next_token": None,
            "elbo": {"bits_per_token": sum(nats) / 32 / math.log(2), "bits_per_token_stderr": 0.05,
                     "nats_per_window": nats},
            "bits_per_token": sum(nats) / 32 / math.log(2),
        }  # fmt: skip
        (results / "m" / "eval" / variant / "heldout.json").write_text(json.dumps(payload))
    (root / "paper.csv").write_text(PUBLISHED)
    return results


@pytest.fixture
def built(tmp_path):
    results = write_fixture(tmp_path)
    out = tmp_path / "tables"
    files = report.build_tables(
        report.find_eval_files(results),
        out,
        MODELS,
        EVALUATION,
        PRUNING,
        published_csv=tmp_path / "paper.csv",
        calibration={"nsamples": 4, "seqlen": 32},
        diffusion={"steps": 10, "sample_interval": 5},
        claims_path=tmp_path / "claims.md",
    )
    return out, files


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_expected_files(built):
    out, files = built
    names = sorted(str(p.relative_to(out)) for p in files if p.name != "claims.md")
    stems = ["unstructured", "unstructured_delta", "unstructured_vs_paper"]
    stems += ["structured", "structured_delta", "structured_vs_paper", "heldout"]
    assert names == sorted(f"m/{s}.{ext}" for s in stems for ext in ("md", "csv", "tex"))
    assert not (out / "m" / "nm.md").exists()  # no N:M in the grid
    assert (out.parent / "claims.md") in files


def test_unstructured_csv_golden(built):
    out, _ = built
    rows = read_csv(out / "m" / "unstructured.csv")
    assert [r["method"] for r in rows] == ["dense", "wanda", "sink"]
    # dense: (43.00 + 74.10) / 2 = 58.55, stderr sqrt(1² + 1²) / 2 = 0.707; held-out
    # CE t=0.15 = 10 / 20 = 0.50, t=0.5 = 70 / 60 = 1.1667, bits = 92 / (4·8) / ln 2 = 4.1477
    assert rows[0] == {
        "sparsity_type": "dense",
        "sparsity": "0.00",
        "method": "dense",
        "arc_challenge": "43.00",
        "arc_challenge_stderr": "1.00",
        "piqa": "74.10",
        "piqa_stderr": "1.00",
        "avg": "58.55",
        "avg_stderr": "0.71",
        "delta_avg": "",
        "delta_avg_lo": "",
        "delta_avg_hi": "",
        "delta_avg_sig": "",
        "ce_t0.15": "0.500",
        "ce_t0.15_stderr": "0.100",
        "ce_t0.5": "1.167",
        "ce_t0.5_stderr": "0.200",
        "bits_per_token": "4.148",
        "bits_per_token_stderr": "0.050",
    }
    # wanda: (39.08 + 72.63) / 2 = 55.855 -> 55.85 or 55.86
    assert rows[1]["arc_challenge"] == "39.08" and rows[1]["piqa"] == "72.63"
    assert rows[1]["avg"] in {"55.85", "55.86"}  # 55.855 in binary floating point
    # sink: piqa missing -> piqa and avg missing (never filled), delta missing
    assert rows[2]["arc_challenge"] == "41.38"
    assert rows[2]["piqa"] == "" and rows[2]["avg"] == "" and rows[2]["delta_avg"] == ""


def test_structured_markdown_golden(built):
    out, _ = built
    md = (out / "m" / "structured.md").read_text()
    lines = md.strip().splitlines()
    assert lines[0].startswith("### Structured pruning: m (x/m)")
    assert lines[2] == (
        "| Sparsity | Method | ARC-C | PIQA | Avg | Δ Avg | CE t=0.15 | CE t=0.5 | bits/token |"
    )
    assert lines[3] == "|:---|:---|---:|---:|---:|---:|---:|---:|---:|"
    assert lines[4] == (
        "| 0% | Dense | 43.00 ± 1.00 | 74.10 ± 1.00 | 58.55 ± 0.71 |  | 0.500 ± 0.100 | "
        "1.167 ± 0.200 | 4.148 ± 0.050 |"
    )
    # wanda_sp avg (37.80 + 68.34) / 2 = 53.07; sink_sp (38.20 + 69.55) / 2 = 53.875 -> 53.88.
    # Δ Avg = ((3820 − 3780) + (6955 − 6834)) / 2 / 100 = +0.805 points; every item difference
    # is 0 or +1, so the whole CI is above 0: marked. No heldout.json for these variants.
    assert (
        lines[5]
        == "| ratio 0.3 | Wanda-sp | 37.80 ± 1.00 | 68.34 ± 1.00 | 53.07 ± 0.71 |  | — | — | — |"
    )
    assert re.fullmatch(
        r"\| ratio 0\.3 \| Sink-aware Wanda-sp \| \*\*38\.20 ± 1\.00\*\* \| "
        r"\*\*69\.55 ± 1\.00\*\* \| \*\*53\.88 ± 0\.71\*\* \| "
        r"\+0\.8[01] \[\+0\.\d\d, \+0\.\d\d\]\* \| — \| — \| — \|",
        lines[6],
    ), lines[6]
    assert "* marks a CI that excludes 0" in md


def test_missing_shown_as_missing_and_bold_only_when_comparable(built):
    out, _ = built
    md = (out / "m" / "unstructured.md").read_text().splitlines()
    sink = next(line for line in md if "Sink-aware Wanda |" in line)
    # arc: 41.38 > 39.08 -> bold; piqa and Avg missing; Δ Avg missing (sink avg missing);
    # held-out: sink's CE t=0.5 (55 / 60 = 0.917) beats wanda's (85 / 60 = 1.417) -> bold
    assert sink.startswith("| 50% | Sink-aware Wanda | **41.38 ± 1.00** | — | — | — | ")
    assert "**0.917 ± 0.200**" in sink
    wanda = next(line for line in md if "| Wanda |" in line)
    assert "**72.63" not in wanda  # only one value present in the piqa column of the block


def test_delta_table(built):
    out, _ = built
    rows = read_csv(out / "m" / "structured_delta.csv")
    assert len(rows) == 1 and rows[0]["method"] == "sink_sp" and rows[0]["baseline"] == "wanda_sp"
    # 38.20 - 37.80 = 0.40; 69.55 - 68.34 = 1.21; every item difference >= 0
    assert rows[0]["arc_challenge"] == "0.40" and rows[0]["piqa"] == "1.21"
    assert float(rows[0]["piqa_lo"]) > 0 and rows[0]["piqa_sig"] == "True"
    assert float(rows[0]["piqa_lo"]) <= 1.21 <= float(rows[0]["piqa_hi"])
    assert rows[0]["ce_t0.5"] == ""  # no held-out results for the structured variants
    rows = read_csv(out / "m" / "unstructured_delta.csv")
    (r,) = rows
    # held-out, paired over windows: sink − wanda at t=0.5 is −0.5 nats in every window, so the
    # CI is the point; at t=0.15 the sums differ by (+1, 0, −1, −2) over 20 tokens = −0.10
    assert (r["ce_t0.5"], r["ce_t0.5_lo"], r["ce_t0.5_hi"], r["ce_t0.5_sig"]) == (
        "-0.500",
        "-0.500",
        "-0.500",
        "True",
    )
    assert r["ce_t0.15"] == "-0.100" and r["ce_t0.15_sig"] == "False"
    # bits: −1 nat per window over 8 tokens = −0.125 / ln 2 = −0.180 bits
    assert r["bits_per_token"] == "-0.180" and r["bits_per_token_sig"] == "True"
    # arc: +230 items of 10 000 = +2.30 points
    assert r["arc_challenge"] == "2.30" and r["piqa"] == "" and r["avg"] == ""
    md = (out / "m" / "unstructured_delta.md").read_text()
    assert "-0.500 [-0.500, -0.500]*" in md


def test_claims(built):
    out, _ = built
    claims = (out.parent / "claims.md").read_text()
    lines = claims.splitlines()
    row = next(x for x in lines if "Wanda-sp | ratio 0.3 | accuracy, average" in x)
    assert row.endswith("| reproduced |")
    row = next(x for x in lines if "| 50% | held-out CE t=0.5 " in x)
    assert "-0.500 | [-0.500, -0.500] | reproduced" in row
    row = next(x for x in lines if "| 50% | held-out CE t=0.15 " in x)
    assert row.endswith("| not resolved |")
    row = next(x for x in lines if "| 50% | accuracy, average" in x)
    assert row.endswith("| missing |")  # sink has no piqa result
    assert report.verdict(-1.0, -2.0, -0.5, higher_is_better=True) == "contradicted"


def test_published_values_join(built):
    out, _ = built
    rows = read_csv(out / "m" / "unstructured_vs_paper.csv")
    got = {
        (r["method"], r["sparsity"], r["task"]): (r["ours"], r["paper"], r["diff"]) for r in rows
    }
    # only P-8B rows of the unstructured table (4), not "Other", not the structured one
    assert len(rows) == 4
    assert got[("dense", "0.00", "piqa")] == ("74.10", "74.00", "0.10")
    assert got[("wanda", "0.50", "arc_challenge")] == ("39.08", "39.00", "0.08")
    assert got[("sink", "0.50", "piqa")] == ("", "73.18", "")  # ours missing
    assert got[("sink", "0.50", "gsm8k")] == ("", "55.88", "")  # task not evaluated
    srows = read_csv(out / "m" / "structured_vs_paper.csv")
    assert [(r["method"], r["ours"], r["paper"], r["diff"]) for r in srows] == [
        ("sink_sp", "69.55", "69.55", "0.00")
    ]
    md = (out / "m" / "unstructured_vs_paper.md").read_text()
    assert "| 50% | Sink-aware Wanda | GSM8K | — | 55.88 | — |" in md


def test_heldout_table(built):
    out, _ = built
    rows = read_csv(out / "m" / "heldout.csv")
    assert list(rows[0]) == [
        "sparsity_type",
        "sparsity",
        "method",
        "ce_t0.15",
        "ce_t0.15_stderr",
        "ce_t0.5",
        "ce_t0.5_stderr",
        "bits_per_token",
        "bits_per_token_stderr",
    ]
    by = {r["method"]: r for r in rows}
    # wanda bits: 120 / 32 / ln 2 = 5.410
    assert by["dense"]["ce_t0.15"] == "0.500" and by["wanda"]["bits_per_token"] == "5.410"
    assert by["sink_sp"]["ce_t0.5"] == ""  # no heldout.json for this variant
    md = (out / "m" / "heldout.md").read_text()
    assert "| CE t=0.15 | CE t=0.5 | bits/token |" in md


def _check_latex(tex: str) -> None:
    depth = 0
    body = tex.replace("\\{", "").replace("\\}", "")
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "closing brace before opening"
    assert depth == 0, "unbalanced braces"
    begins = re.findall(r"\\begin\{(\w+)\}", tex)
    ends = re.findall(r"\\end\{(\w+)\}", tex)
    assert begins == ["table", "tabular"] and ends == ["tabular", "table"]
    lines = [line for line in tex.splitlines() if not line.startswith("%")]
    for line in lines:
        # every %, & that is text (not a column separator) and every _ is escaped
        assert not re.search(r"(?<!\\)[%_]", line), line
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\midrule" in tex
    rows = [line for line in lines if line.endswith("\\\\")]
    n_cols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    for row in rows:
        assert len(re.split(r"(?<!\\)&", row)) == n_cols, row


def test_latex_structurally_valid(built):
    out, _ = built
    for tex in sorted(out.glob("*/*.tex")):
        _check_latex(tex.read_text())
    tex = (out / "m" / "unstructured.tex").read_text()
    assert "50\\%" in tex and "\\textbf{41.38 $\\pm$ 1.00}" in tex and "$\\Delta$ Avg" in tex
    assert "-- & " in tex  # missing cells


def test_latex_escape():
    assert report.latex_escape("a_b 50% R&D #1 {x} $") == r"a\_b 50\% R\&D \#1 \{x\} \$"


def test_wrong_metric_names_the_config_key(tmp_path):
    results = write_fixture(tmp_path)
    bad = {**EVALUATION, "tasks": {"piqa": {"metric": "f1"}}}
    with pytest.raises(report.ReportError, match=r"evaluation\.tasks\.piqa\.metric"):
        report.build_tables(report.find_eval_files(results), tmp_path / "t", MODELS, bad, PRUNING)


def test_metric_with_filter_is_used_as_is(tmp_path):
    path = tmp_path / "gsm8k.json"
    path.write_text(json.dumps({"results": {"gsm8k": {"exact_match,flexible-extract": 0.5}}}))
    assert report.read_task_score(path, "gsm8k", "exact_match,flexible-extract") == 50.0
    assert report.read_task_score(tmp_path / "none.json", "gsm8k", "acc") is None


def test_figures(tmp_path):
    results = write_fixture(tmp_path)
    eval_files = sorted(results.glob("*/eval/*/*.json"))  # a list of paths, as the rule passes
    files = report.build_figures(eval_files, tmp_path / "fig", MODELS, EVALUATION, PRUNING)
    names = sorted(str(p.relative_to(tmp_path / "fig")) for p in files)
    stems = ["accuracy_vs_unstructured", "heldout_vs_unstructured", "accuracy_vs_structured"]
    stems += ["heldout_vs_structured", "deltas"]
    assert names == sorted(f"m/{s}.{e}" for s in stems for e in ("png", "pdf"))
    for p in files:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else head.startswith(b"%PDF")


def test_same_results_give_the_same_bytes(tmp_path):
    """Tables, claims and figures (PNG and PDF: no creation date) are byte-reproducible."""
    results = write_fixture(tmp_path)
    files = report.find_eval_files(results)
    out = []
    for name in ("a", "b"):
        root = tmp_path / name
        written = report.build_tables(
            files, root / "t", MODELS, EVALUATION, PRUNING, claims_path=root / "claims.md"
        )
        written += report.build_figures(files, root / "f", MODELS, EVALUATION, PRUNING)
        out.append({str(p.relative_to(root)): p.read_bytes() for p in written})
    assert out[0].keys() == out[1].keys() and len(out[0]) > 10
    assert [k for k in out[0] if out[0][k] != out[1][k]] == []
    # the builds may fall in the same second: check that no date is written at all
    pdfs = [v for k, v in out[0].items() if k.endswith(".pdf")]
    assert pdfs and not any(b"CreationDate" in v or b"ModDate" in v for v in pdfs)


def test_causal_heldout_is_read_per_window(tmp_path):
    path = tmp_path / "heldout.json"
    sums = [31.0, 62.0]  # seqlen 32: 31 predicted tokens per window -> CE 1.0 and 2.0
    payload = {
        "seqlen": 32, "windows": [0, 4], "masked": [], "elbo": None,
        "next_token": {"ce_nats": 1.5, "ce_nats_stderr": 0.5, "ce_sum_per_window": sums},
        "bits_per_token": 1.5 / math.log(2),
    }  # fmt: skip
    path.write_text(json.dumps(payload))
    h = report.read_heldout(path)
    assert h.values == {"ce_next_token": 1.5, "bits_per_token": pytest.approx(2.164, abs=1e-3)}
    assert h.windows["ce_next_token"] == ({0: 1.0, 4: 2.0}, None)
    assert h.windows["bits_per_token"][0][4] == pytest.approx(2.0 / math.log(2))
    old = {k: v for k, v in payload.items() if k != "windows"}
    path.write_text(json.dumps(old))
    with pytest.raises(report.ReportError, match="per-window"):
        report.read_heldout(path)


def test_task_file_without_items_names_the_fix(tmp_path):
    path = tmp_path / "piqa.json"
    path.write_text(json.dumps({"results": {"piqa": {"acc,none": 0.5}}}))
    with pytest.raises(report.ReportError, match="forcerun evaluate"):
        report.read_task_result(path, "piqa", "acc")
    items = {"metric": "acc_norm,none", "ids": ["piqa/0"], "values": [1.0]}
    path.write_text(json.dumps({"results": {"piqa": {"acc,none": 0.5}}, "items": items}))
    with pytest.raises(report.ReportError, match=r"evaluation\.tasks\.piqa\.metric"):
        report.read_task_result(path, "piqa", "acc")


def write_ppl(results: Path, variant: str, log_ppls: list[float], se: float = 0.05) -> None:
    """A ppl.json as sinkprune.evaluation.ppl writes it (chunks at 64, 128, ...)."""
    mean = sum(log_ppls) / len(log_ppls)
    payload = {
        "ppl": math.exp(mean),
        "log_ppl": mean,
        "log_ppl_stderr": se,
        "ppl_stderr": math.exp(mean) * se,
        "n_chunks": len(log_ppls),
        "chunks": [
            {"start": 64 * (i + 1), "prompt_tokens": 64, "log_ppl": v, "draws": 8}
            for i, v in enumerate(log_ppls)
        ],
    }
    path = results / "m" / "eval" / variant / "ppl.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def test_ppl_column_and_its_paired_log_delta(tmp_path):
    """PPL (± its delta-method stderr) next to the accuracies; sink − wanda compared on log PPL
    over the same chunks; a variant without ppl.json shows —."""
    results = write_fixture(tmp_path)
    write_ppl(results, "dense", [2.0, 2.2, 2.4, 2.6])  # mean 2.3: PPL e^2.3 = 9.974
    write_ppl(results, "wanda_unstructured_0.5", [2.5, 2.6, 2.9, 3.0])  # mean 2.75: 15.643
    write_ppl(results, "sink_unstructured_0.5", [2.4, 2.5, 2.8, 2.9], se=0.04)  # −0.1 per chunk
    out = tmp_path / "tables"
    report.build_tables(
        report.find_eval_files(results), out, MODELS, EVALUATION, PRUNING,
        calibration={"nsamples": 4, "seqlen": 32}, diffusion={"steps": 10, "sample_interval": 5},
    )  # fmt: skip
    rows = read_csv(out / "m" / "unstructured.csv")
    assert [r["ppl"] for r in rows] == ["9.974", "15.643", "14.154"]  # e^2.65 = 14.154
    assert rows[0]["ppl_stderr"] == f"{math.exp(2.3) * 0.05:.3f}"
    assert "log_ppl" not in rows[0]
    md = (out / "m" / "unstructured.md").read_text().splitlines()
    assert md[2].endswith("| bits/token | PPL |")
    assert md[-3].endswith("| **14.154 ± 0.566** |")  # sink beats wanda in its block: bold
    (delta,) = read_csv(out / "m" / "unstructured_delta.csv")
    # log(14.154 / 15.643) = −0.1 in every chunk: the paired CI is the point
    assert (delta["log_ppl"], delta["log_ppl_lo"], delta["log_ppl_hi"]) == ("-0.100",) * 3
    assert delta["log_ppl_sig"] == "True" and "ppl" not in delta
    struct = read_csv(out / "m" / "structured.csv")
    assert all(r["ppl"] == "" for r in struct[1:])  # no ppl.json for the structured variants
    held = read_csv(out / "m" / "heldout.csv")
    assert [r["ppl"] for r in held][:3] == ["9.974", "15.643", "14.154"]
    claims = report.claims_markdown(
        {"m": report.delta_table(report.load_results(report.find_eval_files(results), "m",
         report.variants({"pruning": PRUNING}, "m"), TASKS),
         report.variants({"pruning": PRUNING}, "m"), ["log_ppl"])}, list(TASKS),
    )  # fmt: skip
    assert "log PPL (lower is better) | -0.100 | [-0.100, -0.100] | reproduced |" in claims


def test_dream_heldout_bits_use_the_scored_tokens(tmp_path):
    """A Dream heldout.json scores seqlen − 1 tokens per window (position 0 is context)."""
    payload = {"seqlen": 8, "windows": [0, 1], "masked": [], "next_token": None,
               "elbo": {"bits_per_token": 1.0, "bits_per_token_stderr": 0.1,
                        "nats_per_window": [7.0, 14.0], "tokens_per_window": 7},
               "bits_per_token": 1.0}  # fmt: skip
    path = tmp_path / "heldout.json"
    path.write_text(json.dumps(payload))
    bits, _ = report.read_heldout(path).windows["bits_per_token"]
    assert bits == {0: pytest.approx(1 / math.log(2)), 1: pytest.approx(2 / math.log(2))}


OFFICIAL = """model,benchmark,task,setting,num_fewshot,cfg,mc_num,gen_length,steps,block_length,value,unit,eval_type,source,settings_source
P-8B,arc_challenge,arc_challenge,no_cfg,0,0.0,128,,,,45.9,percent,ppl,x,x
P-8B,arc_challenge,arc_challenge,cfg,0,0.5,128,,,,47.9,percent,ppl,x,x
P-8B,piqa,piqa,no_cfg,0,0.0,128,,,,73.6,percent,ppl,x,x
P-8B,piqa,piqa,cfg,0,0.5,128,,,,74.4,percent,ppl,x,x
P-8B,gsm8k,gsm8k,gen_len256_steps256_block256,,0.0,,256,256,256,70.0,percent,gen,x,x
"""


def test_vs_paper_shows_the_llada_authors_reference(tmp_path):
    """Dense rows get the LLaDA authors' number measured with the config's settings (here cfg 0,
    0-shot, mc_num 128: the no_cfg rows), and a dense row for a task the paper does not publish."""
    results = write_fixture(tmp_path)
    (tmp_path / "official.csv").write_text(OFFICIAL)
    out = tmp_path / "tables"
    report.build_tables(
        report.find_eval_files(results), out, MODELS, EVALUATION, PRUNING,
        published_csv=tmp_path / "paper.csv", official_csv=tmp_path / "official.csv",
    )  # fmt: skip
    rows = read_csv(out / "m" / "unstructured_vs_paper.csv")
    dense = {r["task"]: r for r in rows if r["method"] == "dense"}
    # piqa: published 74.00 and the authors' no_cfg 73.6; ours 74.10
    assert (dense["piqa"]["paper"], dense["piqa"]["llada"], dense["piqa"]["diff_llada"]) == (
        "74.00",
        "73.60",
        "0.50",
    )
    # arc_challenge: not in the pruning paper's dense row; the authors' 45.9 vs ours 43.00
    arc = dense["arc_challenge"]
    assert (arc["paper"], arc["llada"], arc["diff_llada"]) == ("", "45.90", "-2.90")
    assert all(r["llada"] == "" for r in rows if r["method"] != "dense")
    # with cfg 0.5 the cfg rows are the reference; other shots: none
    tcfg = {"num_fewshot": 0, "cfg": 0.5, "mc_num": 128}
    official = report._read_official(tmp_path / "official.csv")
    assert report.official_reference(official, "P-8B", "piqa", tcfg) == 74.4
    assert math.isnan(
        report.official_reference(official, "P-8B", "piqa", {**tcfg, "num_fewshot": 5})
    )
    gen = {"gen_length": 256, "steps": 256, "block_length": 256}
    assert report.official_reference(official, "P-8B", "gsm8k", gen) == 70.0
    assert "LLaDA authors" in (out / "m" / "unstructured_vs_paper.md").read_text()


def test_variant_options_get_their_own_rows_and_labels():
    assert report.variant_label("sink") == "Sink-aware Wanda"
    assert report.variant_label("sink-unweighted-rms") == "Sink-aware Wanda (ω ≡ 1, √mean‖X‖²)"
    assert report.variant_label("wanda-owl") == "Wanda (OWL)"
    from sinkprune.config import parse_variant

    vs = [parse_variant(n) for n in ("dense", "sink-owl_unstructured_0.5", "wanda_unstructured_0.5",
                                     "sink_unstructured_0.5", "wanda-owl_unstructured_0.5")]  # fmt: skip
    names = [v.name for v in report.ordered_variants(vs, ("unstructured",))]
    assert names == ["dense", "wanda_unstructured_0.5", "sink_unstructured_0.5",
                     "wanda-owl_unstructured_0.5", "sink-owl_unstructured_0.5"]  # fmt: skip
    # the paper's Δ pairs plain variants only; sink-owl is compared in the allocation report
    assert report.baseline_variant(vs[1], vs) is None
    assert report.baseline_variant(vs[3], vs) == vs[2]
