"""A simulator serves several Precoro companies on one port, as Precoro issues one API token per company ("If you
have multiple companies within your account, you have to set up a separate API token for each company").

Each company has its own token, its own data, its own rate limits (Precoro's limits are per token), its own writes
and its own control API (`/_sim/...?company=N`, company 1 without the parameter); `GET /_sim/info` lists them all.
Company 1 is the company a single-company simulator serves, unchanged.

Over a real localhost socket, as a deployment with several companies would reach it. Every number is the
simulator's own ground truth (`/_sim/export`, `/_sim/stats`, `/_sim/requests`), never a constant.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest

from precoro_sim.simulator import start_simulator
from tests.simulator.sim_harness import RESOURCES, Api, amount, interrupt, key_of, list_row
from tests.simulator.test_control import _cli

pytestmark = pytest.mark.e2e

SEED = 7
SIZE = {"days": 30, "documents": 150}  # small companies: what is tested is who sees what


@pytest.fixture(scope="module")
def two_companies() -> Iterator[object]:
    """A simulator of two companies, without rate limits."""
    with start_simulator(seed=SEED, limits="off", port=0, companies=2, **SIZE) as running:
        yield running


def company(running, number: int) -> Iterator[Api]:
    """Company `number` of a simulator, reset: its token and its control API."""
    client = Api.over_socket(running, company=number)
    client.reset()
    yield client
    client.close()


@pytest.fixture
def first(two_companies) -> Iterator[Api]:
    yield from company(two_companies, 1)


@pytest.fixture
def second(two_companies) -> Iterator[Api]:
    yield from company(two_companies, 2)


def served(api: Api, resource: str) -> dict[str, dict]:
    """Every list row the company's token is served, by key."""
    return {str(row[key_of(resource)]): row for row in api.walk_every(resource)}


def ground_truth(api: Api, resource: str) -> dict[str, dict]:
    """The company's export, as its lists should show it, by key."""
    return {key: list_row(resource, record) for key, record in api.exported(resource).items()}


def info(api: Api) -> dict:
    response = api.control.get("/_sim/info")
    assert response.status_code == 200, response.text
    return response.json()


# ---- who the companies are -------------------------------------------------------------------------------


def test_info_lists_every_company_with_its_name_token_email_and_seed(first, second):
    listed = info(first)["companies"]

    assert [company["number"] for company in listed] == [1, 2]
    for company in listed:
        assert {"number", "name", "token", "email", "seed"} <= set(company)
    assert len({company["token"] for company in listed}) == 2
    assert len({company["seed"] for company in listed}) == 2
    assert len({company["name"] for company in listed}) == 2
    # the top-level keys are the company the control request is for: company 1 without `?company=`
    for api, company in ((first, listed[0]), (second, listed[1])):
        own = info(api)
        assert (own["token"], own["email"], own["seed"]) == (company["token"], company["email"], company["seed"])
        assert own["companies"] == listed
        assert (api.token, api.email) == (company["token"], company["email"])


def test_the_two_companies_have_different_data(first, second):
    for resource in ("suppliers", "invoices", "purchaseorders", "payments"):
        assert first.export(resource) != second.export(resource), resource
    # the documents name their own company
    for api, company in zip((first, second), info(first)["companies"], strict=True):
        assert {(invoice["company"]["id"], invoice["company"]["name"]) for invoice in api.export("invoices")} == {
            (company["number"], company["name"])}


def test_each_token_is_served_its_own_companys_records_and_no_others(first, second):
    for resource in RESOURCES:
        truth = {1: ground_truth(first, resource), 2: ground_truth(second, resource)}

        rows = {1: served(first, resource), 2: served(second, resource)}

        assert rows == truth, resource
        if truth[1] != truth[2]:  # (reference data both companies have alike, e.g. the taxes, proves nothing)
            assert rows[1] != truth[2] and rows[2] != truth[1], resource


def test_an_unknown_token_is_refused_and_logged_by_company_1(first, second):
    with first.client(headers={"X-AUTH-TOKEN": "simtok_" + "0" * 40, "email": first.email}) as stranger:
        assert stranger.get("/invoices").status_code == 401
    with first.client(headers={"X-AUTH-TOKEN": second.token, "email": "someone@else.example"}) as wrong_email:
        assert wrong_email.get("/invoices").status_code == 401

    assert [entry["status"] for entry in first.requests()] == [401]
    assert [entry["status"] for entry in second.requests()] == [401]  # company 2's token, so company 2's log


# ---- what each company keeps to itself ---------------------------------------------------------------------


def test_a_payment_posted_to_company_2_appears_in_company_2_only(first, second):
    invoice = next(i for i in second.export("invoices")  # approved or partly paid, with 1.00 still to pay
                   if i["status"] in (2, 4) and i["logicType"] == 0 and amount(i["sum"]) - amount(i["sumPaid"]) >= 1)
    company_1_before = {resource: first.export(resource) for resource in ("payments", "invoices")}
    payments_before = second.exported("payments")

    posted = second.http.post("/payments", data={"invoice[id]": str(invoice["id"]), "sumPaid": "1.00"})

    assert posted.status_code == 200, posted.text
    payment = posted.json()
    assert set(second.exported("payments")) == set(payments_before) | {str(payment["idn"])}
    assert second.detail("invoices", invoice["idn"])["sumPaid"] != invoice["sumPaid"]
    # company 1 (whose ids run in the same ranges: its invoice with that id is another invoice) is untouched
    assert {resource: first.export(resource) for resource in ("payments", "invoices")} == company_1_before
    assert first.stats()["total"] == 0
    assert [(e["method"], e["path"]) for e in second.requests() if e["method"] == "POST"] == [("POST", "/payments")]


def test_the_control_api_addresses_one_company_at_a_time(first, second):
    """Faults, records deleted in the UI, shapes, webhooks, statistics and the request log are one company's."""
    defaults = first.control.get("/_sim/shapes").json()
    assert second.control.post("/_sim/shapes", json={"numbers_as_text": True}).status_code == 200
    assert second.control.post("/_sim/webhooks", json={"urls": ["http://127.0.0.1:9/precoro"]}).status_code == 200
    assert first.control.get("/_sim/shapes").json() == defaults
    assert second.control.get("/_sim/shapes").json() == {**defaults, "numbers_as_text": True}
    assert first.control.get("/_sim/webhooks").json()["urls"] == []
    assert second.control.get("/_sim/webhooks").json()["urls"] == ["http://127.0.0.1:9/precoro"]
    # a supplier id both companies have (their ids run in the same ranges): two different suppliers
    supplier = next(key for key in first.exported("suppliers") if key in second.exported("suppliers"))
    assert second.fault(kind="error", status=503, path="/taxes", count=None)
    deleted = first.control.delete(f"/_sim/records/suppliers/{supplier}")
    assert deleted.status_code == 200, deleted.text

    assert first.get("/taxes").status_code == 200
    assert second.get("/taxes").status_code == 503
    assert first.get(f"/suppliers/{supplier}").status_code == 404
    assert second.get(f"/suppliers/{supplier}").status_code == 200
    assert first.faults() == [] and len(second.faults()) == 1
    assert first.stats()["faults_injected"] == {} and second.stats()["faults_injected"] == {"error": 1}
    assert [(e["path"], e["status"]) for e in first.requests()] == [("/taxes", 200), ("/suppliers/{id}", 404)]
    assert [(e["path"], e["status"]) for e in second.requests()] == [("/taxes", 503), ("/suppliers/{id}", 200)]
    # a reset is one company's too
    second.reset()
    assert second.faults() == [] and second.stats()["total"] == 0
    assert first.stats()["total"] == 2 and supplier not in first.exported("suppliers")


def test_a_company_the_simulator_does_not_serve_is_a_404_on_the_control_api(first):
    with first.client() as control:
        for number in ("0", "3", "two"):
            answer = control.get("/_sim/stats", params={"company": number})
            assert answer.status_code == 404 and "company" in answer.json()["error"], number


def test_a_budget_spent_on_one_companys_token_leaves_the_other_companys_untouched():
    """Precoro's limits are per token: company 1 blocked by a 429 does not hold company 2 back."""
    with start_simulator(seed=SEED, limits="real", port=0, companies=2, **SIZE) as running:
        first, second = (Api.over_socket(running, company=number) for number in (1, 2))
        try:
            assert first.get("/taxes").status_code == 200
            refused = first.get("/taxes")  # the same GET again at once: refused (identical GET, second limiter)
            assert refused.status_code == 429, refused.text

            answered = second.get("/taxes")  # the very same request, at once, on company 2's token

            assert answered.status_code == 200, answered.text
            blocked, free = first.stats(), second.stats()
            assert blocked["quota"]["blocked_by"] == refused.json()["RateLimit-Type"]
            assert sum(blocked["rate_limited"].values()) == 1 and blocked["quota"]["minute"] == 2
            assert free["quota"]["blocked_by"] is None and free["rate_limited"] == {}
            assert free["quota"]["minute"] == 1
            # company 2's own limits still hold: its own identical GET is refused
            assert second.get("/taxes").status_code == 429
        finally:
            first.close()
            second.close()


# ---- one company, as before -------------------------------------------------------------------------------


def test_a_single_company_simulator_is_company_1_of_a_simulator_of_several(first):
    """Nothing changes for a caller who asks for one company: the same token, info and data as company 1."""
    with start_simulator(seed=SEED, limits="off", port=0, **SIZE) as running:
        alone = Api.over_socket(running)
        try:
            single = info(alone)
            several = info(first)
            assert {k: v for k, v in single.items() if k not in ("url", "companies")} == {
                k: v for k, v in several.items() if k not in ("url", "companies")}
            assert single["companies"] == several["companies"][:1]
            assert (single["token"], single["email"], single["seed"]) == (
                running.token, running.email, SEED)
            assert single["companies"][0]["number"] == 1
            for resource in [*RESOURCES, "attachments"]:
                assert alone.export(resource) == first.export(resource), resource
            assert alone.control.get("/_sim/stats", params={"company": 2}).status_code == 404
        finally:
            alone.close()


# ---- the command line ------------------------------------------------------------------------------------


def test_the_cli_serves_several_companies_and_prints_each_token():
    command = [*_cli(), "simulator", "--port", "0", "--seed", "5", "--days", "10", "--documents", "60",
               "--limits", "off", "--companies", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = threading.Timer(60, process.kill)  # a simulator that never announces itself fails the test
    deadline.start()
    try:
        printed = []
        for line in process.stdout or []:  # the announcement ends with the limits line
            printed.append(line)
            if line.strip().startswith("limits:"):
                break
        text = "".join(printed)
        url = re.search(r"PRECORO_BASE_URL=(\S+)", text)
        assert url is not None, text
        tokens = {1: re.search(r"^  PRECORO_API_TOKEN=(\S+)", text, re.MULTILINE),
                  2: re.search(r"company 2 .*PRECORO_API_TOKEN=(\S+)", text)}
        assert all(tokens.values()), text

        listed = httpx.get(f"{url[1]}/_sim/info", timeout=10).json()["companies"]

        assert [(c["number"], c["token"], c["seed"]) for c in listed] == [
            (1, tokens[1][1], 5), (2, tokens[2][1], 6)]
    finally:
        deadline.cancel()
        interrupt(process)


def test_the_cli_refuses_fewer_than_one_company():
    result = subprocess.run([*_cli(), "simulator", "--port", "0", "--companies", "0"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode != 0 and "--companies" in result.stderr
