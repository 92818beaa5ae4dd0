"""Is the warehouse equal to Precoro? Compares each table with the simulator's ground truth (`/_sim/export`).

Used by the tests and by `precoro-assets reliability`. `env` is anything with `export(resource) -> list[dict]`
(the simulator's export) and `query(sql, params=None) -> list[tuple]` (on the warehouse).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from precoro_assets import settings
from precoro_assets.catalogue import Entity
from precoro_assets.warehouse.rows import list_or_empty, value_at
from precoro_assets.warehouse.sensitive import protect
from precoro_assets.warehouse.tables import ident, qualified


def exact(record: object) -> Any:
    """A record with every number as Decimal, so 1.5 and 1.50 compare equal and nothing is rounded."""
    return json.loads(json.dumps(record), parse_float=Decimal)


def differences(env, entity: Entity, in_range=None) -> list[str]:
    """Everything on which precoro.<entity> and its child tables disagree with the simulator's export."""
    # what the warehouse may hold of Precoro's records: bank details masked unless the company keeps them
    keep = settings.load_state().keep_bank_details
    truth = {str(r[entity.key]): exact(protect(entity, r, keep)) for r in env.export(entity.path)}
    if in_range is not None:
        truth = {k: r for k, r in truth.items() if in_range(r)}
    problems = []
    stored = env.query(f"SELECT CAST({ident(entity.key)} AS VARCHAR), raw FROM {qualified(entity.name)}")
    keys = [k for k, _ in stored]
    if len(keys) != len(set(keys)):
        problems.append(f"{entity.name}: duplicate keys")
    stored_records = {k: json.loads(raw, parse_float=Decimal) for k, raw in stored}
    missing = set(truth) - set(stored_records)
    extra = set(stored_records) - set(truth)
    if missing:
        problems.append(f"{entity.name}: missing {sorted(missing)[:10]} ({len(missing)})")
    if extra:
        problems.append(f"{entity.name}: not in Precoro {sorted(extra)[:10]} ({len(extra)})")
    for key in set(truth) & set(stored_records):
        expected = truth[key]
        if not entity.fetch_detail and entity.partitioned:
            expected = {k: v for k, v in expected.items() if not isinstance(v, dict) or "data" not in v}
        if stored_records[key] != expected:
            changed = sorted(f for f in set(expected) | set(stored_records[key])
                             if expected.get(f) != stored_records[key].get(f))
            problems.append(f"{entity.name} {key}: fields differ: {changed[:8]}")
    for child in entity.children:
        counts = dict(env.query(f"SELECT CAST({ident(entity.parent_column)} AS VARCHAR), count(*) "
                                f"FROM {qualified(child.name)} GROUP BY 1"))
        for key, record in truth.items():
            if ".*." in child.collection:
                outer, inner = child.collection.split(".*.")
                expected_count = sum(len(list_or_empty(value_at(line, inner))) for line in list_or_empty(value_at(record, outer)))
            else:  # under whichever of its names Precoro sent it
                expected_count = max(len(list_or_empty(value_at(record, name))) for name in child.collections)
            if counts.get(key, 0) != expected_count:
                problems.append(f"{child.name} of {key}: {counts.get(key, 0)} rows, Precoro has {expected_count}")
    return problems
