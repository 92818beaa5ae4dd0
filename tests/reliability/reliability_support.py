"""Helpers shared by the reliability tests: where secrets could hide, who listens where, Dagster homes."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "precoro_assets" / "dagster.yaml"

# Text Precoro might send that would do damage if it were ever formatted into SQL.
SQL_INJECTION = "'); DROP TABLE precoro.invoices; --"
AWKWARD_NAME = 'O\'Brien "Ltd"; Müller & Søn — 株式会社 \\ %_ ?'


def persistent_instance(home: Path) -> dg.DagsterInstance:
    """A Dagster instance on disk (run storage, event log, compute logs) with the project's dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under root whose bytes contain needle (SQLite databases and Parquet files included)."""
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening_sockets() -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, int]]:
    """(address, port, socket inode) of every TCP socket in LISTEN state on this machine (network namespace)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            found.append((_address(address), int(port, 16), int(fields[9])))
    return found


def socket_inodes_of(pid: int) -> set[int]:
    """Inodes of the sockets a process holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def children_of(pid: int) -> set[int]:
    """The process and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(text[text.rindex(")") + 2:].split()[1])
    family, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in family} - family
        family |= more
        grew = bool(more)
    return family
