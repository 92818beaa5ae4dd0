"""Security: Precoro data never becomes SQL, local services listen on loopback only, and the API token never
reaches Dagster's storage, the warehouse, exceptions or output, even when Precoro's error text contains it.

(The whole soak's DAGSTER_HOME, PRECORO_HOME and output are grepped for the token in test_soak.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import precoro_assets
import precoro_sim
from precoro_assets.ingest.sync import partition_day
from precoro_sim.simulator import start_simulator
from tests.ingest.test_bad_input import busiest_day, metadata
from tests.reliability.reliability_support import (
    AWKWARD_NAME,
    SQL_INJECTION,
    files_containing,
    listening_sockets,
    persistent_instance,
)
from tests.reliability.sql_audit import audit_package, audit_source

PACKAGE = Path(precoro_assets.__file__).resolve().parent
HARNESS = Path(precoro_sim.__file__).resolve().parent  # the soak and the ground truth query the warehouse too


@pytest.mark.e2e
def test_sql_looking_text_from_precoro_is_stored_verbatim_and_every_table_survives(env):
    day = busiest_day(env)
    listed = sorted(str(r["idn"]) for r in env.export("invoices") if partition_day(r).isoformat() == day)
    # Precoro's details carry an invoice number that is an SQL statement and a supplier name full of quotes
    env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/invoices/{idn}", "count": None,
                                        "fields": {"invoiceNumber": SQL_INJECTION,
                                                   "supplier": {"id": 1, "name": AWKWARD_NAME},
                                                   "description": f"{AWKWARD_NAME} {SQL_INJECTION}"}})
    result = env.materialize("precoro/invoices", partition=day)
    assert result.success
    assert metadata(result)["new"] == len(listed)

    rows = env.query("SELECT idn, invoice_number, supplier_name, raw FROM precoro.invoices "
                     "WHERE partition_day = ? ORDER BY idn", [day])
    assert sorted(idn for idn, *_ in rows) == listed  # the table is still there, with every invoice
    for _, number, supplier, raw in rows:
        assert number == SQL_INJECTION and supplier == AWKWARD_NAME  # verbatim, byte for byte
        assert json.loads(raw)["description"] == f"{AWKWARD_NAME} {SQL_INJECTION}"
    # the statement was data: nothing was dropped, and the child tables are intact too
    assert env.query("SELECT count(*) FROM precoro.invoice_items WHERE partition_day = ?", [day])[0][0] > 0
    assert env.query("SELECT count(*) FROM precoro.invoices WHERE invoice_number = ?", [SQL_INJECTION]) \
        == [(len(listed),)]

    # and a second sync of the day (which deletes and rewrites changed rows by key) treats it as data as well
    env.control("DELETE", "faults")
    env.control("POST", "faults", json={"kind": "unknown_fields", "path": "/invoices", "count": None,
                                        "fields": {"updateDate": "2099-01-01T00:00:00+00:00"}})
    assert env.materialize("precoro/invoices", partition=day).success
    assert sorted(idn for (idn,) in env.query("SELECT idn FROM precoro.invoices WHERE partition_day = ?", [day])) \
        == listed


def test_the_package_interpolates_only_quoted_identifiers_and_reviewed_text_into_sql():
    # the audit does find data formatted into a statement (so an empty result below means something)
    sample = (
        "def store(con, record):\n"
        "    name = record['supplier']['name']\n"
        "    con.execute(f\"INSERT INTO precoro.x VALUES ('{name}')\")\n"
        "    sql = 'DELETE FROM precoro.x WHERE idn = ' + record['idn']\n"
        "    con.execute(sql)\n"
        "    con.execute(f'SELECT {ident(\"a\")} FROM {qualified(\"x\")} WHERE b = ?', [name])\n"
    )
    assert [(f.line, f.expression) for f in audit_source(sample, "sample.py")] == [
        (3, "record['supplier']['name']"), (5, "record['idn']")]

    findings = audit_package(PACKAGE) + audit_package(HARNESS)
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.e2e
def test_the_simulator_listens_on_loopback_only():
    with start_simulator(seed=3, days=2, documents=10, limits="off", port=0) as sim:
        port = int(sim.url.rsplit(":", 1)[1])
        assert sim.url.startswith("http://127.0.0.1:")
        sockets = [(address, p) for address, p, _ in listening_sockets() if p == port]
        assert sockets, f"no listening socket on port {port} in /proc/net/tcp"
        assert all(address.is_loopback for address, _ in sockets), sockets
        # and from another address of this machine it is not reachable (if the machine has one)
        others = {str(a) for a, _, _ in listening_sockets() if not a.is_loopback and not a.is_unspecified}
        for other in others:
            try:
                httpx.get(f"http://{other}:{port}/_sim/info", timeout=2)
            except httpx.TransportError:
                continue
            raise AssertionError(f"the simulator answered on {other}")


@pytest.mark.e2e
def test_precoro_echoing_the_token_in_an_error_leaks_it_nowhere(env, tmp_path):
    token = env.sim.token
    env.instance = persistent_instance(tmp_path / "dagster")
    day = busiest_day(env)
    # a server error and a validation error whose text quotes the token back (as a careless proxy might)
    env.control("POST", "faults", json={"kind": "error", "status": 502, "path": "/invoices/{idn}", "count": None,
                                        "message": f"upstream rejected X-AUTH-TOKEN {token}"})
    env.control("POST", "faults", json={"kind": "error", "status": 400, "path": "/payments", "count": None,
                                        "message": f"bad token {token} for this filter"})
    invoices = env.materialize("precoro/invoices", partition=day)
    payments = env.materialize("precoro/payments", partition=day)
    assert not invoices.success and not payments.success
    messages = [str(event.step_failure_data.error) for result in (invoices, payments)
                for event in result.get_step_failure_events()]
    assert len(messages) == 2
    assert "HTTP 502" in messages[0] and "upstream rejected X-AUTH-TOKEN ***" in messages[0]  # a clear message
    assert "bad token *** for this filter" in messages[1]
    assert all(token not in message for message in messages)
    logs = [str(record.user_message) + json.dumps(str(record.dagster_event))
            for run in env.instance.get_runs() for record in env.instance.all_logs(run.run_id)]
    assert logs and not [line for line in logs if token in line]
    assert files_containing(tmp_path, token.encode()) == []  # Dagster's storage, the warehouse, the ledger
