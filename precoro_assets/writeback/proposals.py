"""The write-back vocabulary: a `Proposal` is one write to Precoro that a flow wants made, keyed so that a
re-run never queues it twice. Reconciliation (reconcile/) and the master-data sync (master_data/) propose; the
outbox (outbox.py) keeps them; the executor (executor.py) sends them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

# What a proposal does (its `kind`): reconciliation's writes
CREATE_PAYMENT = "create_payment"
SET_EXTERNAL_ID = "set_external_id"
SET_LOG = "set_integration_log"
CLEAR_LOG = "clear_integration_log"
EXPORT = "export_document"
# The master-data sync's writes (master_data/plan.py): a record created from the accounting side's (POST), or the
# fields it owns brought in step (PUT with only what differs)
CREATE_RECORD = "create_record"
UPDATE_RECORD = "update_record"
# ... and the other way: a Precoro supplier the accounting side lacks, offered to it, then linked by externalId
EXPORT_SUPPLIER = "export_supplier"


@dataclass(frozen=True)
class Proposal:
    """One write-back a flow proposes (reconciliation, the master-data sync); its idempotency key is derived
    from what and why."""

    kind: str
    resource: str  # "invoices", "payments", "purchaseorders"; the master-data sync's: "suppliers", "items", ...
    target_key: str  # the idn Precoro addresses the record by (a create: the accounting side's id)
    target_id: int | None
    payload: dict[str, Any]  # JSON-safe: amounts as strings
    reason: str
    ledger_ref: str | None = None

    @property
    def idempotency_key(self) -> str:
        """Same proposal, same key, in every run: a re-run never queues it twice.

        A payment is keyed by the ledger payment it records (not by amounts or Precoro's state, which change
        as payments land); a PATCH by the values it sets; an export by the document.
        """
        if self.kind == CREATE_PAYMENT:
            basis: list[Any] = [self.kind, self.resource, self.target_key, self.ledger_ref]
        elif self.kind in (EXPORT, CREATE_RECORD, EXPORT_SUPPLIER):  # one row per record, whatever it carries
            basis = [self.kind, self.resource, self.target_key]
        else:
            basis = [self.kind, self.resource, self.target_key, self.payload.get("fields")]
        return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:32]
