
# No `from __future__ import annotations` in defs/: Dagster reads the type hints of asset functions.
