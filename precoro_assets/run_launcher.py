"""The run launcher where deployed dagster.yaml files name it (`module: precoro_assets.run_launcher`,
`class: LocalRunLauncher`). It lives in precoro_assets.runtime.run_launcher; new files name that module."""

from precoro_assets.runtime.run_launcher import LocalRunLauncher

__all__ = ["LocalRunLauncher"]
