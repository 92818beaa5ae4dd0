"""`precoro-assets sync` prints what the sync cost, failed assets included."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from precoro_assets.simulator import start_simulator


def test_the_summary_counts_the_requests_of_assets_that_failed_too(tmp_path: Path):
    with start_simulator(seed=5, days=10, documents=120, limits="off", port=0) as sim:
        # every document asset fails after its list pages and retries were spent: no document materialization
        # reports what its run sent
        for path in ("/purchaserequisitions/{idn}", "/purchaseorders/{idn}", "/receipts/{idn}", "/invoices/{idn}",
                     "/payments"):
            httpx.post(f"{sim.url}/_sim/faults", json={"kind": "error", "status": 500, "path": path,
                                                       "count": None}).raise_for_status()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PRECORO_", "DAGSTER_"))}
        env.update(PRECORO_API_TOKEN=sim.token, PRECORO_EMAIL=sim.email, PRECORO_BASE_URL=sim.url,
                   PRECORO_HOME=str(tmp_path / "var"), PRECORO_TIME_SCALE="1000",
                   PRECORO_START_DATE=(datetime.now(UTC).date() - timedelta(days=10)).isoformat())
        start = (datetime.now(UTC).date() - timedelta(days=5)).isoformat()

        done = subprocess.run([sys.executable, "-m", "precoro_assets.cli", "sync", "--start", start],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)

        assert done.returncode == 1, done.stderr[-2000:]
        assert re.search(r"precoro/invoices\s+NO", done.stdout) and re.search(r"precoro/suppliers\s+yes", done.stdout)
        sent = httpx.get(f"{sim.url}/_sim/stats").json()["total"]
        [spent] = re.findall(r"requests spent: (\d+)", done.stdout)
        assert int(spent) == sent and sent > 20
