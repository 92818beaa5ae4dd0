"""The benchmark runner works end to end on a tiny company, and its figures make sense.

Not a performance test: it guards the runner (simulator process, workers, request accounting, report),
so that `make bench` still works when the product changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import report
from bench.__main__ import parse, run


@pytest.mark.e2e
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
        if row["ok"] and row["sync"] == "initial":
            # Every document the simulator holds (expenses and credit notes included) was loaded, and no more:
            # the minimum counts what the tools are asked to sync.
            assert row["loaded_documents"] == results["efficiency"]["documents"], row
    for row in (r for r in rows if r["tool"] == "ours"):
        assert row["ok"], row
        assert row["rate_limited"] == 0, row  # paced by the shared quota guard: never a 429 at Precoro's limits
        assert row["duplicate_details"] == 0, row
        # Exactly the minimum: every list walk (credit notes apart, as Precoro lists them) and one detail per new
        # or changed document, nothing more.
        assert row["requests"] == row["minimum"], row

    text = md.read_text()
    assert "| initial | precoro-assets |" in text and "| initial | dlt rest_api |" in text
    assert json.loads(js.read_text())["efficiency"]["rows"] == rows


def test_throughput_reports_the_median_run_and_the_highest_memory() -> None:
    from bench.runner import _median_run

    def run(seconds: float, rss: int, ok: bool = True) -> dict:
        return {"seconds": seconds, "peak_rss_mb": rss, "ok": ok, "documents": 10, "tool": "ours"}

    row = _median_run([run(12.0, 500), run(9.0, 610), run(10.0, 480)])
    assert row["seconds"] == 10.0 and row["runs_seconds"] == [12.0, 9.0, 10.0]
    assert row["peak_rss_mb"] == 610 and row["all_ok"]
    # A failed run counts as the slowest, however fast it stopped, and the row says not every run completed.
    failed = _median_run([run(1.0, 100, ok=False), run(9.0, 400), run(10.0, 400)])
    assert failed["seconds"] == 10.0 and not failed["all_ok"]
    assert report._runs(row) == "12 / 9 / 10"  # every run, in the order they ran


@pytest.mark.e2e
@pytest.mark.timeout(900)  # two simulators and two syncs: minutes on a loaded 2-core machine
def test_an_ab_run_compares_this_checkout_with_an_earlier_commit(tmp_path: Path) -> None:
    """`--ab COMMIT`: our sync at that commit (a git worktree of it) takes turns with this checkout's, and the
    table and the targets say how the two compare; the worktree is gone afterwards."""
    import subprocess

    from bench.runner import ROOT

    args = parse(["--quick", "--parts", "throughput", "--ab", "HEAD", "--out", str(tmp_path),
                  "--workdir", str(tmp_path / "work")])
    results = run(args)
    rows = {row["tool"]: row for row in results["throughput"]["rows"]}
    label = results["throughput"]["ab_label"]
    assert set(rows) == {"ours", label} and label.startswith("ours@"), rows
    for row in rows.values():
        assert row["ok"] and row["loaded_documents"] == row["documents"], row
        assert row["load_average"] is not None
    assert any(check["target"].startswith(f"documents/s >= 0.85 x those of {label}") for check in report.targets(results))
    md, _ = report.write(results, tmp_path, "ab")
    assert f"| {label} |" in md.read_text()
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in worktrees


@pytest.mark.e2e
def test_ab_names_what_is_wrong_with_its_arguments(tmp_path: Path) -> None:
    from bench.__main__ import settings_from

    with pytest.raises(SystemExit, match="--ab compares the throughput part"):
        settings_from(parse(["--ab", "HEAD", "--parts", "efficiency"]), tmp_path)
    with pytest.raises(SystemExit, match="no-such-commit: git knows no such commit"):
        run(parse(["--parts", "throughput", "--ab", "no-such-commit", "--workdir", str(tmp_path)]))
