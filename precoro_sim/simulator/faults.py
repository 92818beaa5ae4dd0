"""Faults on demand: rules posted to `/_sim/faults` that make chosen requests misbehave.

A rule matches requests by method, path (literal or template) and query values; it lets the first
`after` matches pass and then faults the next `count` (or every one, with count null); with `every` N, only
each Nth match after those is faulted (a steady fault rate, as a flaky gateway gives).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime

# Faults that replace the normal answer (at most one applies to a request).
TRANSPORT_KINDS = {"error", "reset", "slow", "lost_response", "malformed_json", "rate_limit"}
# Faults that alter the records served (any number apply together).
CONTENT_KINDS = {"missing_fields", "unknown_fields", "renamed_fields", "shift_rows", "legacy_pagination",
                 "date_offsets", "vanish", "renamed_values"}
KINDS = TRANSPORT_KINDS | CONTENT_KINDS


def _page(query: dict[str, list[str]]) -> int:
    try:
        return int(query.get("page", ["1"])[0])
    except ValueError:
        return 1


def _is_offset(text: object) -> bool:
    try:
        return isinstance(text, str) and datetime.fromisoformat(f"2000-01-01T00:00:00{text}").tzinfo is not None
    except ValueError:
        return False


class BadRule(ValueError):
    """A fault rule the control API refuses, with the reason."""


@dataclass
class FaultRule:
    id: int
    kind: str
    method: str | None = None
    path: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    after: int = 0
    count: int | None = 1
    every: int = 1
    options: dict = field(default_factory=dict)
    seen: int = 0
    applied: int = 0

    @classmethod
    def from_json(cls, rule_id: int, body: dict) -> FaultRule:
        if not isinstance(body, dict):
            raise BadRule("a fault rule is a JSON object")
        kind = body.get("kind")
        if kind not in KINDS:
            raise BadRule(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
        known = {"kind", "method", "path", "query", "after", "count", "every"}
        count = body.get("count", 1)
        if count is not None and (not isinstance(count, int) or count < 0):
            raise BadRule("count must be a whole number >= 0, or null for 'until cleared'")
        after = body.get("after", 0)
        if not isinstance(after, int) or after < 0:
            raise BadRule("after must be a whole number >= 0")
        every = body.get("every", 1)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise BadRule("every must be a whole number >= 1 (1: every matching request)")
        query = body.get("query") or {}
        if not isinstance(query, dict):
            raise BadRule("query must be an object of parameter -> value")
        if kind == "shift_rows" and body.get("mode", "insert") not in ("insert", "delete"):
            raise BadRule("shift_rows mode must be 'insert' or 'delete'")
        if kind == "shift_rows" and body.get("on", "filter") not in ("filter", "now"):
            raise BadRule("shift_rows on must be 'filter' (the newest day the list asks for) or 'now'")
        if kind == "date_offsets":
            offsets = body.get("offsets")
            if not isinstance(offsets, list) or not offsets or not all(_is_offset(o) for o in offsets):
                raise BadRule("date_offsets needs offsets: a list like [\"+02:00\", \"-05:00\"]")
        return cls(
            id=rule_id,
            kind=kind,
            method=(body.get("method") or "").upper() or None,
            path=body.get("path"),
            query={str(k): str(v) for k, v in query.items()},
            after=after,
            count=count,
            every=every,
            options={k: v for k, v in body.items() if k not in known},
        )

    def matches(self, method: str, path: str, template: str, query: dict[str, list[str]]) -> bool:
        if self.method and self.method != method:
            return False
        if self.path and self.path not in (path, template):
            return False
        if self.kind == "shift_rows" and not (method == "GET" and _page(query) >= 2):
            return False  # rows shift *between* pages: before page 2, 3, ... of a walk
        return all(value in query.get(name, []) for name, value in self.query.items())

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.applied >= self.count

    def as_dict(self) -> dict:
        remaining = None if self.count is None else self.count - self.applied
        return {"id": self.id, "kind": self.kind, "method": self.method, "path": self.path, "query": self.query,
                "after": self.after, "count": self.count, "every": self.every, "remaining": remaining, "applied": self.applied,
                **self.options}


class FaultBook:
    """The active fault rules."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self.injected: dict[str, int] = {}

    def add(self, body: dict) -> FaultRule:
        rule = FaultRule.from_json(next(self._ids), body)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def due(self, method: str, path: str, template: str, query: dict[str, list[str]]) -> list[FaultRule]:
        """The rules that fire for this request (each counts it as seen)."""
        firing = []
        transport_taken = False
        for rule in self.rules:
            if rule.exhausted or not rule.matches(method, path, template, query):
                continue
            rule.seen += 1
            if rule.seen <= rule.after or (rule.seen - rule.after) % rule.every:
                continue
            if rule.kind in TRANSPORT_KINDS:
                if transport_taken:
                    rule.seen -= 1  # not its turn: keep it for the next request
                    continue
                transport_taken = True
            rule.applied += 1
            self.injected[rule.kind] = self.injected.get(rule.kind, 0) + 1
            firing.append(rule)
        self.rules = [r for r in self.rules if not r.exhausted]
        return firing
