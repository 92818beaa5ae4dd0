"""Small helpers the reconcile tests share (a module of its own: `from conftest import` breaks when pytest
collects several test folders that each have a conftest)."""

from decimal import Decimal

SEND = {"ops": {"write_back": {"config": {"send": True}}}}  # run config that switches sending on


def money(value: object) -> Decimal:
    return Decimal(str(value))
