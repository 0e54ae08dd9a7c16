"""The processes a server benchmark runs beside itself: the scripted upstream and ``memlane serve``,
each in its own process so the load generator and the measured server never share cores' time
with the benchmark's own Python."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def start_upstream(*flags: str) -> tuple[subprocess.Popen, str]:
    """``python -m memlane.testing.scripted_upstream`` with ``flags``; returns it and its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "memlane.testing.scripted_upstream", *flags], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_serve(config: Path, home: Path, workers: int = 1, src: str | None = None) -> tuple[subprocess.Popen, str]:
    """``memlane serve`` on a free loopback port with ``config`` (and ``--workers``), ready
    (``/readyz``) on return; ``src``: the memlane source tree it runs (an A/B of two commits)."""
    port = free_port()
    env = {**os.environ, "MEMLANE_HOME": str(home), **({"PYTHONPATH": src} if src else {})}
    proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", "--config", str(config), "serve", "--port", str(port),
                             "--log-level", "warning", "--workers", str(workers)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/readyz")
    return proc, url


def stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
