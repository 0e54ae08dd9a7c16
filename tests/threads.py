"""Running one function in many threads at once, and waiting for what they do, for the concurrency tests."""

from __future__ import annotations

import threading
import time
from typing import Callable


def run_in_threads(target: Callable[[], None], count: int, timeout: float) -> list[BaseException]:
    """Start ``count`` threads on ``target``, wait for them, and return what they raised: an
    exception inside a thread is otherwise only printed, and the test would pass."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return errors


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
