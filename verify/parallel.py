"""Evaluating checks in worker processes (``verify --jobs N``).

Checks are independent by construction (every random instance derives from the seed and the
check), so they can run anywhere in any order and give the same numbers. Work is handed out
one check module at a time: the claims of a section share instance banks and reference
Hessians cached inside the module, and a worker that evaluates the whole module computes them
once. The biggest modules go first so the last one to finish is a small one.

Workers are started with ``spawn`` (CUDA does not survive ``fork``), rebuild the array namespace
from the backend's name, ignore SIGINT (the parent decides what an interrupt means) and return
results without the check object, which holds closures; the parent puts it back.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Callable, Iterable

from .backends import resolve
from .context import Context
from .model import Check, CheckResult

_WORKER: dict = {}


class WorkerCrash(RuntimeError):
    """A worker process died (killed, out of memory): its checks have no result."""


def default_jobs() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _init(ctx: Context, progress) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["progress"] = progress
    from .engine import load_checks  # noqa: PLC0415  (imports every check module in the worker)

    _WORKER["checks"] = {c.id: c for checks in load_checks().values() for c in checks}
    _WORKER["ctx"] = replace(ctx, xp=resolve(ctx.backend)[1])


def _evaluate_group(ids: list[str]) -> list[tuple[str, CheckResult]]:
    from .evaluate import evaluate  # noqa: PLC0415

    out = []
    for check_id in ids:
        result = evaluate(_WORKER["checks"][check_id], _WORKER["ctx"])
        out.append((check_id, replace(result, check=None)))  # the parent restores the check
        _WORKER["progress"].put(check_id)
    return out


def groups(checks: Iterable[Check]) -> list[list[Check]]:
    """Checks grouped by the module that defines them, biggest group first."""
    by_module: dict[str, list[Check]] = defaultdict(list)
    for c in checks:
        by_module[getattr(c.run, "__module__", "")].append(c)
    return sorted(by_module.values(), key=len, reverse=True)


def evaluate_parallel(checks: list[Check], ctx: Context, jobs: int,
                      on_result: Callable[[Check], None] | None = None) -> dict[str, CheckResult]:
    """Every check's result, by check id, computed by ``jobs`` worker processes; ``on_result``
    hears of each check as soon as a worker finishes it."""
    by_id = {c.id: c for c in checks}
    results: dict[str, CheckResult] = {}
    spawn = multiprocessing.get_context("spawn")
    progress = spawn.SimpleQueue()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=spawn, initializer=_init,
                               initargs=(replace(ctx, xp=None, scratch={}), progress))
    try:
        pending: set[Future] = {pool.submit(_evaluate_group, [c.id for c in g]) for g in groups(checks)}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            while not progress.empty():
                check_id = progress.get()
                if on_result:
                    on_result(by_id[check_id])
            for future in done:
                try:
                    finished = future.result()
                except BrokenProcessPool as exc:
                    raise WorkerCrash(f"a worker process died ({exc}); rerun with --jobs 1 to find the check") from None
                for check_id, r in finished:
                    results[check_id] = replace(r, check=by_id[check_id])
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()  # an interrupt must not wait for the running checks
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results
