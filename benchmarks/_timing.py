"""CPU-time helpers shared by the benchmark scripts (not a benchmark itself).

CPU time (``time.process_time``), not wall time, keeps the figures comparable
on a shared, busy machine; the benchmarks run torch on one thread.
"""

from __future__ import annotations

import time


def best_of(fn, number, repeat):
    """Best mean CPU time per call (seconds) over ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - t0) / number)
    return best


def interleaved(fns, number, rounds, repeat=1, warmup=1):
    """``{label: best seconds per call}`` for the functions in ``fns`` (a dict), timed in turns.

    Each function is first called ``warmup`` times; then every round times each
    function in turn with ``best_of(fn, number, repeat)``, so a change of load
    on a shared machine hits them all alike.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            best[k] = min(best[k], best_of(fn, number, repeat))
    return best
