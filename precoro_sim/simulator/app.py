"""The simulator's HTTP application: Precoro's API plus the `/_sim/` control API (WSGI, werkzeug), for one or more
simulated companies on one port.

Every Precoro request goes through the same steps, in Precoro's order: route, authenticate, count
against the rate limits (429), apply faults on demand, answer, record statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from werkzeug.wrappers import Request, Response

from .company import Company
from .control import ControlApi, control_error
from .http import JsonAnswer
from .state import SIM_EMAIL, CompanyIdentity, SimulatorConfig, token_for_seed

__all__ = ["SIM_EMAIL", "CompanyIdentity", "CompanySimulator", "SimulatorApp", "SimulatorConfig", "token_for_seed"]

COMPANY_PARAMETER = "company"  # `/_sim/...?company=N`: which company a control request is for (1 without it)


class CompanySimulator(ControlApi):
    """Precoro's API over one simulated company, with its own token, data, rate limits, faults, statistics, request
    log and control API.

    Its concerns, one module each: state.py (the company and what requests change), http.py (plumbing),
    api.py and writes.py (Precoro's API), control.py (the `/_sim/` control API).
    """


class SimulatorApp:
    """The simulator: `config.companies` simulated companies served on one port, as Precoro issues one API token
    per company.

    A Precoro request goes to the company whose token its X-AUTH-TOKEN header carries; with any other token it
    goes to company 1, which answers 401 as Precoro does. A control request (`/_sim/...`) goes to the company its
    `?company=N` query parameter names, company 1 without it; an unknown N is a 404. So a simulator of one company
    answers exactly as before there could be several.

    `company`, `token`, `email` and `tick` are company 1's (`companies[0]`), for the callers of one company.
    Nothing refers back to this object (no reference cycle): a stopped simulator's companies are freed at once.
    """

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time):
        self.config = config
        self.companies = tuple(CompanySimulator(config, clock, number) for number in range(1, config.companies + 1))
        self._by_token = {simulated.token: simulated for simulated in self.companies}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sim"):
            response: Response | JsonAnswer = self.control(request)
        else:
            simulated = self._by_token.get(request.headers.get("X-AUTH-TOKEN", ""), self.companies[0])
            response = simulated.precoro(request, environ)
        return response(environ, start_response)

    def control(self, request: Request) -> Response:
        number = request.args.get(COMPANY_PARAMETER, "1")
        if not number.isdigit() or not 1 <= int(number) <= len(self.companies):
            return control_error(404, f"no company {number!r}: this simulator serves companies 1 to "
                                      f"{len(self.companies)} (?{COMPANY_PARAMETER}=N; see GET /_sim/info)")
        return self.companies[int(number) - 1].control(request)

    # ---- company 1, for the callers of one company ---------------------------------------------------

    @property
    def company(self) -> Company:
        return self.companies[0].company

    @property
    def token(self) -> str:
        return self.companies[0].token

    @property
    def email(self) -> str:
        return self.companies[0].email

    def tick(self, events: int) -> list[dict]:
        return self.companies[0].tick(events)

    @property
    def base_url(self) -> str:
        """Where the simulator serves (set by the server once the port is known): every company's."""
        return self.companies[0].base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        for simulated in self.companies:
            simulated.base_url = url
