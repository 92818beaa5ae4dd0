"""A large company: 100,000 documents start and are served like a small one.

In-process (no socket needed), but building the company takes most of a minute: marked `slow`, so the fast tier
(`pytest --fast`) leaves it out and `make test` still runs it."""

from __future__ import annotations

import pytest

from tests.simulator.sim_harness import Api, check_envelope, new_simulator_app


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_company_of_100000_documents_starts_and_serves_pages_of_200_invoices():
    api = Api.in_process(new_simulator_app(seed=7, days=365, documents=100_000, limits="off"))
    try:
        first = api.page("invoices", 1, 200)
        check_envelope(first, 1, 200)
        total = first["meta"]["pagination"]["total"]
        assert total >= 25_000 and len(first["data"]) == 200

        last_page = first["meta"]["pagination"]["total_pages"]
        last = api.page("invoices", last_page, 200)
        check_envelope(last, last_page, 200)
        assert len(first["data"]) * (last_page - 1) + len(last["data"]) == total

        newest, oldest = first["data"][0], last["data"][-1]
        assert api.detail("invoices", newest["idn"])["id"] == newest["id"]
        assert api.detail("invoices", oldest["idn"])["id"] == oldest["id"]
        unpaid = api.page("invoices", 1, 200, [("status[]", 2), ("status[]", 4)])
        assert unpaid["data"] and {row["status"] for row in unpaid["data"]} <= {2, 4}
    finally:
        api.close()
