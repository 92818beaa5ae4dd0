"""The tests compare the warehouse with Precoro through precoro_sim.ground_truth (also used by the soak report)."""

from precoro_sim.ground_truth import differences, exact

__all__ = ["differences", "exact"]
