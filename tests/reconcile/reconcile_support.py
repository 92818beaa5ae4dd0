"""Small helpers the reconcile tests share (a module of its own: `from conftest import` breaks when pytest
collects several test folders that each have a conftest)."""

from decimal import Decimal

SEND = {"ops": {"write_back": {"config": {"send": True}}}}  # run config that switches sending on


def money(value: object) -> Decimal:
    return Decimal(str(value))


def checks_of(result) -> dict:
    """A run's asset check evaluations by check name, and by (check name, asset) too."""
    found = {}
    for evaluation in result.get_asset_check_evaluations():
        found[evaluation.check_name] = evaluation
        found[(evaluation.check_name, evaluation.asset_key.to_user_string())] = evaluation
    return found
