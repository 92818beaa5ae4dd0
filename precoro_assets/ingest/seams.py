"""What a sync needs of its two collaborators, as typed seams: the client that reads Precoro and the store that
holds the warehouse.

`api.client.PrecoroClient` and `warehouse.store.Warehouse` are the real ones (mypy checks that they fit where the
code location passes them); a test may pass anything with these methods. Written as Protocols rather than base
classes so that neither side imports the other's flow: the client knows nothing of syncs, the store nothing of
Precoro.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import duckdb

from ..api.quota import QuotaGuard

T = TypeVar("T")


class PrecoroReads(Protocol):
    """The reads a sync sends to Precoro, paced by the shared request budget (`quota`)."""

    @property
    def quota(self) -> QuotaGuard: ...

    @property
    def concurrent_requests(self) -> int:
        """How many requests may be in flight at once from threads (the budget paces them together)."""
        ...

    def iter_rows(self, path: str, *, key: str = "id", per_page: int = 200,
                  params: Sequence[tuple[str, str]] = (), also: Sequence[Sequence[tuple[str, str]]] = (),
                  **filters: Any) -> Iterator[dict[str, Any]]:
        """Every row of a list, each exactly once."""
        ...

    def get_detail_with_text(self, resource: str, key: str | int,
                             retry_failures: bool = True) -> tuple[dict[str, Any], str | None]:
        """A record's detail, and its JSON text as received (None when it came wrapped)."""
        ...

    def retry_at(self, path: str, params: Sequence[tuple[str, str]] = ()) -> float:
        """When a failed GET of this path may be sent again (Precoro's identical-GET rule), as a time.time()."""
        ...

    def seconds_for(self, requests: int) -> float:
        """About how long this many more requests take at the budget's limits."""
        ...

    def worker_settings(self) -> dict[str, Any] | None:
        """How to build an equal client in a worker process, or None when it can't be."""
        ...

    def count_spent_elsewhere(self, requests: int) -> None:
        """Count requests that worker processes sent on this client's behalf."""
        ...


class WarehouseAccess(Protocol):
    """Reads (one snapshot each) and writes (one transaction each) on the warehouse."""

    @property
    def database_url(self) -> str | None:
        """The catalog's PostgreSQL URL when several hosts share the warehouse (None: one host)."""
        ...

    def read(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T: ...

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T], *, what: str = "write") -> T: ...
