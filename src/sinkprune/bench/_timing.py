"""Side-by-side timing for the benchmarks: interleaved pairs, ratio per pair, spread over pairs.

On a shared machine absolute times drift with the load; a ratio of two runs made back to back
(A B, A B, …) is far steadier. Each figure is the median ratio over the pairs with its min–max.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def seconds(fn: Callable[[], object]) -> tuple[float, object]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def paired(ours: Callable[[], object], reference: Callable[[], object], pairs: int) -> dict:
    """Run reference, ours, reference, ours, …; speed-up = t_reference / t_ours per pair.

    Returns times (s), the per-pair speed-ups, their median / min / max, and the last results.
    """
    t_ours, t_ref, ratios = [], [], []
    out_ours = out_ref = None
    for _ in range(pairs):
        tr, out_ref = seconds(reference)
        to, out_ours = seconds(ours)
        t_ref.append(tr)
        t_ours.append(to)
        ratios.append(tr / to)
    return {
        "seconds_ours": [round(t, 4) for t in t_ours],
        "seconds_reference": [round(t, 4) for t in t_ref],
        "speedup": [round(r, 3) for r in ratios],
        "speedup_median": round(statistics.median(ratios), 3),
        "speedup_min": round(min(ratios), 3),
        "speedup_max": round(max(ratios), 3),
        "result_ours": out_ours,
        "result_reference": out_ref,
    }


def spread(stats: dict, key: str = "speedup") -> str:
    """'1.52× (1.40–1.61, 3 pairs)' from a `paired` result."""
    n = len(stats[key])
    return (
        f"{stats[key + '_median']:.2f}× ({stats[key + '_min']:.2f}–{stats[key + '_max']:.2f}, "
        f"{n} pair{'s' if n > 1 else ''})"
    )


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
