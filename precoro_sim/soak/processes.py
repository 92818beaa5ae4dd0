"""Checks on the machine for the soak and the reliability tests: where the token could hide, who listens where,
which processes a session left behind (Linux /proc)."""


from __future__ import annotations

import ipaddress
from pathlib import Path

# ---- checks on the machine: where the token could hide, who listens where ------------------------------------

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
    return family & (set(parents) | {pid})


def session_of(pid: int) -> int | None:
    """The session id of a process (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[3])


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def processes_in_session(session: int) -> list[int]:
    """Every process (zombies aside) of a session: what is left of the processes started in it."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)


def process_name(pid: int) -> str:
    line = _command_line(pid)
    for marker, name in (("dagster_webserver", "webserver"), ("dagster._daemon", "daemon"),
                         ("code-server", "code server"), ("api grpc", "code server"), ("execute_run", "run"),
                         ("execute_step", "run step"), ("dagster dev", "dagster dev")):
        if marker in line:
            return f"{name} {pid}"
    return f"{line[:60]} {pid}"
