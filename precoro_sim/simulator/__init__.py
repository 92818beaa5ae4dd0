"""A Precoro simulator serving Precoro's API on localhost: the embedded default for the demo and every test.

See docs/simulator.md (its guarantees, the Python and HTTP interface, the control API, the fault rules).
"""

from .limits import Limits
from .server import RunningSimulator, start_simulator

__all__ = ["Limits", "RunningSimulator", "start_simulator"]
