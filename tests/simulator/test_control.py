"""The simulator as a whole: the company lives (`/_sim/tick`), `/_sim/reset` restores the seed's company,
the same seed gives the same company, and the CLI serves it on 127.0.0.1 only."""

from __future__ import annotations

import gc
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import weakref
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from precoro_sim.simulator import start_simulator
from tests.simulator.sim_harness import (
    RESOURCES,
    Api,
    amount,
    interrupt,
    key_of,
    modified_since_text,
    moment,
    new_simulator_app,
    whole_second_now,
)

# ---- the company lives --------------------------------------------------------------------------------


def test_ticks_create_edit_approve_and_pay_and_every_change_shows_up_with_modified_since(api):
    since = whole_second_now()
    before = {resource: api.exported(resource) for resource in ("purchaseorders", "invoices", "payments")}

    changes = api.tick(40)

    assert {"created", "updated", "approved", "paid"} <= {change["action"] for change in changes}
    modified = [("modifiedSince", modified_since_text(since))]
    for resource in {change["resource"] for change in changes}:
        listed = {str(row[key_of(resource)]) for row in api.walk_every(resource, params=modified)}
        changed = {str(change["key"]) for change in changes if change["resource"] == resource}
        assert changed <= listed, resource
        assert listed <= changed, f"{resource}: only what changed is listed as modified"
    for change in changes:
        record = api.detail(change["resource"], change["key"]) if change["resource"] in (
            "purchaseorders", "invoices", "purchaserequisitions", "payments", "suppliers") else None
        if record is None:
            continue
        assert since <= moment(record["updateDate"]) <= datetime.now(UTC), "modified now, not in the future"
        if record.get("approvalDate"):
            assert moment(record["approvalDate"]) <= datetime.now(UTC)
        if change["action"] == "created":
            assert str(change["key"]) not in before.get(change["resource"], {})
            assert moment(record["createDate"]) >= since
        if change["action"] == "approved":
            assert record["status"] == 2 and moment(record["approvalDate"]) >= since
        if change["action"] == "paid":
            earlier = before["invoices"].get(str(change["key"]))  # none: created and paid in this very tick
            assert record["status"] in (4, 5) and amount(record["sumPaid"]) > amount(
                earlier["sumPaid"] if earlier else "0")


def test_ticks_also_work_on_records_created_through_the_api(api):
    for n in range(10):
        assert api.http.post("/suppliers", data={"name": f"Bare supplier {n}"}).status_code == 200
    for n in range(5):
        assert api.http.post("/items", data={"name": f"Bare item {n}"}).status_code == 200

    changes = api.tick(300)

    assert len(changes) >= 300
    touched = {change["key"] for change in changes if change["resource"] == "suppliers"}
    assert touched & {str(s["id"]) for s in api.export("suppliers") if s["name"].startswith("Bare supplier")}


def test_reset_restores_the_seeds_company_and_clears_stats_and_faults(api):
    pristine = {resource: api.export(resource) for resource in RESOURCES}
    supplier = pristine["suppliers"][0]
    api.http.patch(f"/suppliers/{supplier['id']}", data={"externalId": "CHANGED"})
    api.http.post("/suppliers", data={"name": "Temporary GmbH"})
    api.tick(20)
    api.fault(kind="error", path="/invoices", count=None)
    assert api.get("/invoices").status_code == 500
    assert api.exported("suppliers")[str(supplier["id"])]["externalId"] == "CHANGED"

    api.reset()

    assert {resource: api.export(resource) for resource in RESOURCES} == pristine
    assert api.faults() == []
    assert api.stats()["total"] == 0 and api.requests() == []
    assert api.get("/invoices").status_code == 200


def test_after_a_reset_the_company_lives_the_same_life_again(api):
    first = api.tick(25)
    api.reset()
    api.tick(0)
    api.reset()

    again = api.tick(25)

    assert again == first


# ---- the same seed, the same company ---------------------------------------------------------------------


def _everything(client: Api) -> dict:
    return {resource: client.export(resource) for resource in [*RESOURCES, "attachments"]}


def _company_of(seed: int) -> dict:
    client = Api.in_process(new_simulator_app(seed=seed, days=60, documents=400, limits="off"))
    try:
        return _everything(client)
    finally:
        client.close()


def test_the_same_seed_gives_the_same_company_and_another_seed_another():
    for _ in range(2):  # a company is dated back from today: retry once if midnight (UTC) fell in between
        day = datetime.now(UTC).date()
        first, second, other = _company_of(3), _company_of(3), _company_of(4)
        if datetime.now(UTC).date() == day:
            break

    assert first == second
    assert first["invoices"] and first["attachments"]
    for resource in ("suppliers", "invoices", "purchaseorders", "attachments"):
        assert first[resource] != other[resource], resource


# ---- resources ------------------------------------------------------------------------------------------


@pytest.mark.e2e  # about the server: its stop, its connection threads, a dropped connection
def test_a_stopped_simulator_frees_its_company_without_waiting_for_the_garbage_collector():
    """Tests start many simulators; one that stays in memory until a full collection makes every later
    collection walk its records."""
    running = start_simulator(seed=5, days=30, documents=200, limits="off", port=0)
    client = Api.over_socket(running)
    assert client.get("/invoices").status_code == 200
    client.fault(kind="reset", path="/taxes")
    with pytest.raises(httpx.TransportError):
        client.get("/taxes")
    client.stats()
    company = weakref.ref(running.app.company)
    client.close()
    running.stop()
    del client, running

    gc.disable()
    try:
        for _ in range(200):  # the server's handler threads finish their connections in the background
            if company() is None:
                break
            time.sleep(0.05)
        assert company() is None
    finally:
        gc.enable()


# ---- the command line ------------------------------------------------------------------------------------


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("precoro-assets")
    return [str(script)] if script.exists() else [sys.executable, "-m", "precoro_sim.cli"]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (Linux /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, port_hex = local.rsplit(":", 1)
                if state == "0A" and int(port_hex, 16) == port:
                    found.add(address)
    return found


def _other_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one (nothing is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.254.254.254", 1))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


@pytest.mark.e2e  # a child process serving on a socket
def test_the_cli_starts_prints_how_to_connect_and_listens_on_localhost_only():
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to see which address the socket is bound to")
    command = [*_cli(), "simulator", "--port", "0", "--seed", "5", "--days", "30", "--documents", "300",
               "--limits", "off"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        printed: dict[str, str] = {}
        while "PRECORO_EMAIL" not in printed:
            line = lines.get(timeout=30)  # the announcement arrives through a pipe: it must be flushed
            name, _, value = line.strip().partition("=")
            if name.startswith("PRECORO_"):
                printed[name] = value
        url, token, email = printed["PRECORO_BASE_URL"], printed["PRECORO_API_TOKEN"], printed["PRECORO_EMAIL"]

        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else
        other = _other_address()
        if other is not None:
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()
        info = httpx.get(f"{url}/_sim/info", timeout=10).json()
        assert (info["url"], info["token"], info["email"], info["seed"]) == (url, token, email, 5)
        response = httpx.get(f"{url}/invoices", headers={"X-AUTH-TOKEN": token, "email": email}, timeout=10)
        assert response.status_code == 200 and response.json()["data"]
        # the process serves the same company as an in-process simulator with the same seed
        served = httpx.get(f"{url}/_sim/export/invoices", timeout=30).json()["data"]
        with start_simulator(seed=5, days=30, documents=300, limits="off", port=0) as running:
            in_process = httpx.get(f"{running.url}/_sim/export/invoices", timeout=30).json()["data"]
        assert {str(r[key_of("invoices")]): r for r in served} == {str(r["idn"]): r for r in in_process}
    finally:
        interrupt(process)


@pytest.mark.e2e  # a child process
def test_the_cli_refuses_bad_limits():
    result = subprocess.run([*_cli(), "simulator", "--port", "0", "--limits", "sometimes"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode != 0 and "--limits" in result.stderr
