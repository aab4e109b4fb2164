"""Two loads at once: Python work on this thread while DuckDB scans on another.

``score`` loads its model (the imports of MLflow, scikit-learn and LightGBM, and MLflow's store: Python,
about 4-6 s) while the data is validated; ``train`` checks the tracking store and imports the fitting code
while the data is validated and its training rows are built. DuckDB lets go of the interpreter while it
runs, so the two overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from healthscore._environment import set_mlflow_defaults
from healthscore.io.events import ScanCancel, cancellable

A = TypeVar("A")
B = TypeVar("B")


def _cancellable(token: ScanCancel, work: Callable[[], B]) -> B:
    with cancellable(token):
        return work()


def side_by_side(here: Callable[[], A], scan: Callable[[], B]) -> tuple[A, B]:
    """(``here()``, ``scan()``): ``here`` on this thread, ``scan`` (DuckDB's work) on a thread of its own.

    The problems are those of running one after the other: ``here``'s first, at once, then ``scan``'s.
    When ``here`` fails (or the user interrupts), the scan is cancelled (``io.events.ScanCancel``: its
    DuckDB queries are interrupted) and has ended when this returns, so the process reports and exits at
    once instead of after a scan nobody wants.
    """
    set_mlflow_defaults()  # the environment MLflow wants is set before the other thread starts
    token = ScanCancel()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthscore-data")
    scanned = pool.submit(_cancellable, token, scan)
    try:
        first = here()
        return first, scanned.result()
    except BaseException:
        token.cancel(scanned)  # its own result or error is not wanted: here's problem is the one reported
        raise
    finally:
        pool.shutdown(wait=scanned.done())  # joined when it has ended (at once); never waits on a running one
