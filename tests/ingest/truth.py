"""The tests compare the warehouse with Precoro through precoro_assets.verify (also used by the soak report)."""

from precoro_assets.verify import differences, exact

__all__ = ["differences", "exact"]
