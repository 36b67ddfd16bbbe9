"""Tables and figures from a fixture directory of small lm-eval JSONs written here.

Golden values are computed by hand in the comments; nothing is compared against the builder
itself.
"""

from __future__ import annotations

import csv
import json
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
HELDOUT = {"dense": (2.0, 3.0, 4.5), "wanda_unstructured_0.5": (2.5, 3.25, 5.0)}

PUBLISHED = """table,model,pruning,sparsity,method,benchmark,value,unit,source
unstructured,P-8B,unstructured,0.0,dense,piqa,74.00,percent,x
unstructured,P-8B,unstructured,0.5,wanda,arc_challenge,39.00,percent,x
unstructured,P-8B,unstructured,0.5,sink,piqa,73.18,percent,x
unstructured,P-8B,unstructured,0.5,sink,gsm8k,55.88,percent,x
structured,P-8B,structured,0.3,sink_sp,piqa,69.55,percent,x
unstructured,Other,unstructured,0.5,wanda,piqa,10.00,percent,x
"""


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
        }
        path = results / "m" / "eval" / variant / f"{task}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload))
    for variant, (a, b, bits) in HELDOUT.items():
        payload = {
            "masked": [
                {"t": 0.15, "ce_nats": a, "accuracy": 0.5, "n_masked": 10},
                {"t": 0.5, "ce_nats": b, "accuracy": 0.4, "n_masked": 30},
            ],
            "next_token": None,
            "elbo": {"bits_per_token": bits},
            "bits_per_token": bits,
        }
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
    )
    return out, files


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_expected_files(built):
    out, files = built
    names = sorted(str(p.relative_to(out)) for p in files)
    stems = ["unstructured", "unstructured_delta", "unstructured_vs_paper"]
    stems += ["structured", "structured_delta", "structured_vs_paper", "heldout"]
    assert names == sorted(f"m/{s}.{ext}" for s in stems for ext in ("md", "csv", "tex"))
    assert not (out / "m" / "nm.md").exists()  # no N:M in the grid


def test_unstructured_csv_golden(built):
    out, _ = built
    rows = read_csv(out / "m" / "unstructured.csv")
    assert [r["method"] for r in rows] == ["dense", "wanda", "sink"]
    # dense: (43.00 + 74.10) / 2 = 58.55; wanda: (39.08 + 72.63) / 2 = 55.855 -> 55.85 or 55.86
    assert rows[0] == {
        "sparsity_type": "dense",
        "sparsity": "0.00",
        "method": "dense",
        "arc_challenge": "43.00",
        "piqa": "74.10",
        "avg": "58.55",
        "delta_avg": "",
    }
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
    assert lines[2] == "| Sparsity | Method | ARC-C | PIQA | Avg | Δ Avg |"
    assert lines[3] == "|:---|:---|---:|---:|---:|---:|"
    assert lines[4] == "| 0% | Dense | 43.00 | 74.10 | 58.55 |  |"
    # wanda_sp avg (37.80 + 68.34) / 2 = 53.07; sink_sp (38.20 + 69.55) / 2 = 53.875 -> 53.88
    # (53.875 is exact in binary; %.2f rounds half to even -> 53.88). Δ = 53.875 - 53.07 = +0.805
    assert lines[5] == "| ratio 0.3 | Wanda-sp | 37.80 | 68.34 | 53.07 |  |"
    assert re.fullmatch(
        r"\| ratio 0\.3 \| Sink-aware Wanda-sp \| \*\*38\.20\*\* \| \*\*69\.55\*\* \| "
        r"\*\*53\.88\*\* \| \+0\.8[01] \|",
        lines[6],
    ), lines[6]


def test_missing_shown_as_missing_and_bold_only_when_comparable(built):
    out, _ = built
    md = (out / "m" / "unstructured.md").read_text().splitlines()
    sink = next(line for line in md if "Sink-aware Wanda |" in line)
    # arc: 41.38 > 39.08 -> bold; piqa and Avg missing; Δ Avg missing (sink avg missing)
    assert sink == "| 50% | Sink-aware Wanda | **41.38** | — | — | — |"
    wanda = next(line for line in md if "| Wanda |" in line)
    assert "**72.63**" not in wanda  # only one value present in the piqa column of the block


def test_delta_table(built):
    out, _ = built
    rows = read_csv(out / "m" / "structured_delta.csv")
    assert len(rows) == 1 and rows[0]["method"] == "sink_sp" and rows[0]["baseline"] == "wanda_sp"
    # 38.20 - 37.80 = 0.40; 69.55 - 68.34 = 1.21
    assert rows[0]["arc_challenge"] == "0.40" and rows[0]["piqa"] == "1.21"


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
        "ce_t0.5",
        "bits_per_token",
    ]
    by = {r["method"]: r for r in rows}
    assert by["dense"]["ce_t0.15"] == "2.00" and by["wanda"]["bits_per_token"] == "5.00"
    assert by["sink"]["ce_t0.5"] == ""  # no heldout.json for this variant
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
    assert "50\\%" in tex and "\\textbf{41.38}" in tex and "$\\Delta$ Avg" in tex
    assert "-- \\\\" in tex  # missing cells


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
