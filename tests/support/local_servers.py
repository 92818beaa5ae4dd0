"""Servers the tests start as processes of their own on localhost: a free port, and waiting until one answers."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(process: subprocess.Popen, port: int, what: str, timeout_s: float = 60.0) -> None:
    """Return once http://127.0.0.1:port/ answers at all; fail if the process ends or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.TransportError:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise RuntimeError(f"{what} exited with {process.returncode}: {output[-2000:]}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start within {timeout_s:.0f} s") from None
            time.sleep(0.1)
