"""Array backends: the namespace float checks run on.

``numpy`` and ``cupy`` are the production backends; ``strict`` is ``array-api-strict``, the
reference implementation of the Array API standard, which runs the same code as CuPy does
(no NumPy-only calls slip through) on any machine, slowly."""

from __future__ import annotations

import importlib.util
from typing import Any

BACKENDS = ("auto", "numpy", "cupy", "strict")


def cupy_usable() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy  # noqa: PLC0415

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device: CuPy imports but cannot run
        return False


def resolve(backend: str) -> tuple[str, Any]:
    """(name, namespace) for a backend choice; the namespace is None when the
    requested backend cannot run here, and checks that need it are skipped."""
    if backend == "auto":
        backend = "cupy" if cupy_usable() else "numpy"
    if backend == "numpy":
        import array_api_compat.numpy as xp  # noqa: PLC0415

        return "numpy", xp
    if backend == "cupy":
        if not cupy_usable():
            return "cupy", None
        import array_api_compat.cupy as xp  # noqa: PLC0415

        return "cupy", xp
    if backend == "strict":
        if importlib.util.find_spec("array_api_strict") is None:
            return "strict", None
        import array_api_strict as xp  # noqa: PLC0415

        return "strict", xp
    raise ValueError(f"unknown backend {backend!r}")
