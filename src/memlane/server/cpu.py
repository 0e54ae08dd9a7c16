"""How the server uses the CPU's cores.

The server runs many requests at once, each in its own thread; that is where its parallelism
comes from. OpenBLAS (numpy's matrix library) would also split each search's matrix product
over every core, and with several searches in flight its threads contend: measured on 2 cores
with 6 concurrent searches of a 10k-memory scope, one product took 0.49 ms that way and 0.07 ms
with one BLAS thread per call (bench/README.md, "Server throughput").

And CPython's cyclic garbage collector: a full collection walks every container object the
process holds, with the GIL held, so each one stalls every request in flight. Most of those
objects are made once at start-up (modules, classes, the app, the default project's engine) and
live as long as the process; walking them again finds nothing. Measured in ``memlane serve`` on
a 100k-memory store under load: full collections of 150-433 ms before, 27-46 ms with the heap
settled at start-up (bench/README.md, "Garbage collection pauses").
"""

from __future__ import annotations

import gc


def one_blas_thread() -> None:
    """Limit numpy's BLAS to one thread per call, for this process (a server's, not a library
    user's: the embedded client leaves the process's settings alone)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def settle_heap() -> None:
    """Collect once, then move every object the process holds now out of the collector's reach
    (``gc.freeze``): later collections walk only what was made since. Call it when start-up is
    done, in a server's process only: what is frozen is never collected as a cycle again, which
    is right for what lives as long as the process and wrong for a library user's objects.
    Objects freed by their reference count are freed as before, frozen or not."""
    gc.collect()
    gc.freeze()
