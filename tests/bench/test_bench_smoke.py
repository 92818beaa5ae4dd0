"""The benchmark runner works end to end on a tiny company, and its figures make sense.

Not a performance test: it guards the runner (simulator process, workers, request accounting, report),
so that `make bench` still works when the product changes.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import report
from bench.__main__ import parse, run


def test_quick_bench_writes_a_sane_table(tmp_path: Path) -> None:
    args = parse(["--quick", "--parts", "efficiency", "--out", str(tmp_path), "--workdir", str(tmp_path / "work")])
    results = run(args)
    md, js = report.write(results, tmp_path, "smoke")

    rows = results["efficiency"]["rows"]
    assert {(r["sync"], r["tool"]) for r in rows} >= {("initial", "ours"), ("incremental", "ours"),
                                                      ("initial", "dlt"), ("incremental", "dlt")}
    for row in rows:
        assert row["minimum"] > 0
        if row["ok"]:
            # Nobody can copy the documents with fewer requests than the list pages plus one detail each.
            assert row["requests"] >= row["minimum"], row
            assert row["details"] >= row["min_details"], row
    for row in (r for r in rows if r["tool"] == "ours"):
        assert row["ok"], row
        assert row["rate_limited"] == 0, row  # paced by the shared quota guard: never a 429 at Precoro's limits
        assert row["duplicate_details"] == 0, row

    text = md.read_text()
    assert "| initial | precoro-assets |" in text and "| initial | dlt rest_api |" in text
    assert json.loads(js.read_text())["efficiency"]["rows"] == rows
