"""Sensitive fields (suppliers' bank details) masked before anything is stored: typed columns, `raw`, rejected rows.

Masking keeps the last 4 characters, enough to tell two accounts apart or to check one against a remittance,
and nothing an attacker could pay into. PRECORO_KEEP_BANK_DETAILS=1 stores them as Precoro sends them: the
settings read it, and the sync passes it here as `keep`.
"""

from __future__ import annotations

from typing import TypeVar, cast

from ..catalogue import Entity

MASK = "****"
T = TypeVar("T")


def masked(value: object) -> object:
    """`****1234` for a value of more than 4 characters; `****` for a shorter one; empty stays empty."""
    if value is None or value == "":
        return value
    text = str(value)
    return MASK + text[-4:] if len(text) > 4 else MASK


def protect(entity: Entity, record: T, keep: bool = False) -> T:
    """The record with the entity's sensitive fields masked wherever they occur (nested too); as is when the
    entity has none or they are to be kept. The record passed in is not changed."""
    if not entity.sensitive or keep:
        return record
    return cast(T, _masked_copy(record, frozenset(entity.sensitive)))  # the same shape, masked


def _masked_copy(node: object, fields: frozenset[str]) -> object:
    if isinstance(node, dict):
        return {k: masked(v) if k in fields and not isinstance(v, (dict, list)) else _masked_copy(v, fields)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_masked_copy(v, fields) for v in node]
    return node
