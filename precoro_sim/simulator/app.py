"""The simulator's HTTP application: Precoro's API plus the `/_sim/` control API (WSGI, werkzeug).

Every Precoro request goes through the same steps, in Precoro's order: route, authenticate, count
against the rate limits (429), apply faults on demand, answer, record statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from werkzeug.wrappers import Request, Response

from .control import ControlApi
from .http import JsonAnswer
from .state import SIM_EMAIL, SimulatorConfig, token_for_seed

__all__ = ["SIM_EMAIL", "SimulatorApp", "SimulatorConfig", "token_for_seed"]


class SimulatorApp(ControlApi):
    """Precoro's API over one simulated company, with rate limits, faults and a control API.

    Its concerns, one module each: state.py (the company and what requests change), http.py (plumbing),
    api.py and writes.py (Precoro's API), control.py (the `/_sim/` control API).
    """

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sim"):
            response: Response | JsonAnswer = self.control(request)
        else:
            response = self.precoro(request, environ)
        return response(environ, start_response)
