"""Precoro's webhooks, as the simulator sends them: a POST of `{"id", "type", "action", "idn"}` to each
configured URL whenever a document or a supplier is created or updated (Precoro signs nothing).

Deliveries go out from a background thread, never under the company's lock, and may be lost or duplicated on
purpose (`lose`, `duplicate`: probabilities, drawn from their own seeded random stream so that they never
move the company's), so tests can show a receiver misses nothing once the polling safety net has run.
"""

from __future__ import annotations

import queue
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

import httpx

# Precoro's webhook `type` per resource (warehouse requests 0, RFPs 4, stock transfers 8, budgets 9: not simulated).
WEBHOOK_TYPES: dict[str, int] = {
    "purchaserequisitions": 1, "purchaseorders": 2, "invoices": 3, "receipts": 5, "expenses": 6, "suppliers": 7,
    "documentcustomfields": 10, "itemcustomfields": 11,
}
CREATED, UPDATED = 0, 1  # Precoro's `action`


@dataclass
class WebhookSender:
    """Configured by `POST /_sim/webhooks`; `event` is called by the company on every change."""

    urls: list[str] = field(default_factory=list)
    lose: float = 0.0
    duplicate: float = 0.0
    counts: Counter = field(default_factory=Counter)
    _rng: random.Random = field(default_factory=lambda: random.Random(97))
    _queue: queue.Queue = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None

    def configure(self, urls: list[str], lose: float = 0.0, duplicate: float = 0.0, seed: int = 97) -> None:
        if not all(isinstance(url, str) and url.startswith(("http://", "https://")) for url in urls):
            raise ValueError("urls must be a list of http(s) URLs")
        if not (0 <= lose <= 1 and 0 <= duplicate <= 1):
            raise ValueError("lose and duplicate are probabilities between 0 and 1")
        self.urls, self.lose, self.duplicate = list(urls)[:5], lose, duplicate  # Precoro allows 5 URLs
        self._rng = random.Random(seed)
        if self.urls and self._thread is None:
            self._thread = threading.Thread(target=self._deliver, name="precoro-simulator-webhooks", daemon=True)
            self._thread.start()

    def record_changed(self, record, action: int) -> None:
        """The company's `on_change`: a record was created (0) or modified (1)."""
        idn = record.data.get("idn")  # a webhook names it as a number (Precoro's documented example)
        self.event(record.resource, record.id, int(idn) if isinstance(idn, str) and idn.isdigit() else idn, action)

    def event(self, resource: str, record_id: int, idn: object, action: int) -> None:
        """A record changed: queue its webhook (called under the company's lock: no I/O here)."""
        kind = WEBHOOK_TYPES.get(resource)
        if kind is None or not self.urls:
            return
        body = {"id": record_id, "type": kind, "action": action, "idn": idn}
        for url in self.urls:
            if self._rng.random() < self.lose:
                self.counts["lost"] += 1
                continue
            copies = 2 if self._rng.random() < self.duplicate else 1
            self.counts["duplicated"] += copies - 1
            for _ in range(copies):
                self.counts["queued"] += 1
                self._queue.put((url, body))

    def state(self) -> dict:
        return {"urls": self.urls, "lose": self.lose, "duplicate": self.duplicate,
                "pending": self._queue.unfinished_tasks, **{k: self.counts[k] for k in
                                                            ("queued", "delivered", "failed", "lost", "duplicated")}}

    def _deliver(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                url, body = self._queue.get()
                try:
                    answer = client.post(url, json=body)
                    self.counts["delivered" if answer.status_code < 300 else "failed"] += 1
                except httpx.HTTPError:
                    self.counts["failed"] += 1  # Precoro doesn't retry either (none is documented)
                finally:
                    self._queue.task_done()
