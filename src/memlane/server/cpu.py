"""How the server uses the CPU's cores.

The server runs many requests at once, each in its own thread; that is where its parallelism
comes from. OpenBLAS (numpy's matrix library) would also split each search's matrix product
over every core, and with several searches in flight its threads contend: measured on 2 cores
with 6 concurrent searches of a 10k-memory scope, one product took 0.49 ms that way and 0.07 ms
with one BLAS thread per call (bench/README.md, "Server throughput").
"""

from __future__ import annotations


def one_blas_thread() -> None:
    """Limit numpy's BLAS to one thread per call, for this process (a server's, not a library
    user's: the embedded client leaves the process's settings alone)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
