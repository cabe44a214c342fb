"""verify: runs the checks of the supplement's claims and reports verdicts."""

import multiprocessing as _mp
import os as _os
import sys as _sys

__version__ = "0.1.0"

# The audit works on thousands of tiny matrices and vectors (L-BFGS-B among them), where BLAS threads
# only contend for the cores: up to 30x slower on a busy 2-core machine. Set before NumPy and SciPy load
# their BLAS, so only when they have not (then it takes effect); worker processes inherit the parent's
# environment instead of deciding for themselves, so that they compute exactly as the parent does. A
# setting in the environment wins, and `verify bench`, which times large dense eigensolvers, keeps the
# library's default.
if "numpy" not in _sys.modules and _mp.parent_process() is None and _sys.argv[1:2] != ["bench"]:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        _os.environ.setdefault(_var, "1")
