"""A Precoro simulator serving Precoro's API on localhost: the embedded default for the demo and every test.

See `INTERFACE.md` beside this file and the README section "The Precoro simulator".
"""

from .limits import Limits
from .server import RunningSimulator, start_simulator

__all__ = ["Limits", "RunningSimulator", "start_simulator"]
