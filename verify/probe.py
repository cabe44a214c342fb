"""``verify probe FILE.npz``: how flat is this deep-linear-network minimum?

FILE.npz holds the weights W1 ... Wm (W_k of shape d_k x d_{k-1}, numbered from 1 without gaps) and the
data, either as second-order statistics ``Sigma_x`` (d_x x d_x, symmetric positive definite),
``Sigma_yx`` (d_y x d_x) and optionally ``y2`` = E||y||^2, or as samples ``X`` (d_x x n) and ``Y``
(d_y x n) in columns. :func:`load` validates all of it without unpickling anything and without
allocating what a header merely declares; :func:`analyze` says whether the point is a global minimum,
how sharp it is against the flattest minima of Theorem 1, and how balanced and coupled its layers are
(Theorems 2-4); :func:`print_result` shows that as rich tables; :func:`main` is the command.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from numpy.lib import format as npy_format
from rich.console import Console
from rich.table import Table

from proofs import flattest_search, lemma3
from proofs import hessian_reference as hr
from proofs import linear_network as ln

MAX_ELEMENTS = 10**7  # per array
MAX_DXDY = 10**6  # d_x d_y: the size of the small operator's vectors
MAX_LAYERS = 100
MAX_MEMBERS = 2 * MAX_LAYERS
DENSE_DXDY = 2000  # dense eigensolver of the (d_x d_y)^2 small operator up to here, Lanczos beyond
TRUE_HESSIAN_PARAMS = 500  # finite-difference Hessian off the minimum up to this many weights
ESTIMATE_PARAMS, ESTIMATE_DXDY, ESTIMATE_ITERATIONS = 64, 16, 1500
GLOBAL_RTOL = 1e-10  # relative excess loss: ||W - T|| / ||T|| of about 1e-5
CRITICAL_RTOL = 1e-8
FLAT_RTOL = 1e-6
SYMMETRY_RTOL = 1e-8
MAX_CONDITION = 1e12
DATA_NAMES = ("Sigma_x", "Sigma_yx", "y2", "X", "Y")
LAYER = re.compile(r"W(\d+)")


class ProbeError(ValueError):
    """Bad input. The message is one line: what is wrong and where."""


# ----------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _check_dtype(name: str, dtype: np.dtype) -> None:
    kind = dtype.kind
    if kind == "O" or dtype.hasobject:
        raise ProbeError(f"{name} is an object array: pickled data is refused (store plain numbers)")
    if kind not in "iuf":
        what = {"b": "booleans", "c": "complex numbers", "U": "text", "S": "bytes", "V": "a structured record",
                "M": "dates", "m": "time spans"}.get(kind, f"dtype {dtype}")
        raise ProbeError(f"{name} holds {what} ({dtype}); expected real numbers (integer or floating point)")


READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, NotImplementedError,
               RuntimeError, MemoryError, OverflowError, TypeError, SyntaxError, UnicodeDecodeError)


def _unreadable(name: str, exc: BaseException) -> ProbeError:
    detail = " ".join(str(exc).split())[:160] or type(exc).__name__
    return ProbeError(f"{name} in the archive is unreadable ({detail})")


def _read_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the .npy header of an archive member, without reading its data."""
    try:
        with zf.open(info) as fp:
            major, _ = npy_format.read_magic(fp)
            reader = npy_format.read_array_header_1_0 if major == 1 else npy_format.read_array_header_2_0
            shape, _, dtype = reader(fp)
    except READ_ERRORS as exc:
        raise _unreadable(name, exc) from None
    if any(d < 0 for d in shape):
        raise ProbeError(f"{name} declares a negative dimension {_shape_text(shape)}")
    _check_dtype(name, dtype)
    elements = math.prod(shape)
    if elements > MAX_ELEMENTS:
        raise ProbeError(f"{name} declares shape {_shape_text(shape)} = {elements:.3g} elements, "
                         f"more than the limit of {MAX_ELEMENTS:.0e} per array")
    expected = elements * dtype.itemsize
    if info.file_size > expected + 64 * 1024:  # header plus padding; a larger member is not what it declares
        raise ProbeError(f"{name} is {info.file_size} bytes uncompressed but its header declares {expected} bytes "
                         "of data")
    return tuple(shape), dtype


def _members(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ProbeError(f"the archive has {len(infos)} members, more than the limit of {MAX_MEMBERS}")
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if not info.filename.endswith(".npy") or "/" in info.filename:
            raise ProbeError(f"unexpected member {info.filename!r} in the archive (expected NAME.npy arrays only)")
        name = info.filename[:-4]
        if name in out:
            raise ProbeError(f"the archive holds {name} twice")
        out[name] = info
    if not out:
        raise ProbeError("the archive is empty: expected W1 ... Wm and Sigma_x, Sigma_yx or X, Y")
    return out


def _layer_count(names: Sequence[str]) -> int:
    """m from the names W1 ... Wm; every other name must be a data array."""
    numbers = []
    for name in names:
        match = LAYER.fullmatch(name)
        if match:
            text = match.group(1)
            if text.startswith("0"):
                raise ProbeError(f"{name}: layers are numbered W1, W2, ... from 1, without leading zeros")
            numbers.append(int(text))
        elif name not in DATA_NAMES:
            hint = difflib.get_close_matches(name, [*DATA_NAMES, "W1"], n=1, cutoff=0.6)
            raise ProbeError(f"unexpected array {name!r}" + (f" (did you mean {hint[0]}?)" if hint else "")
                             + ": expected W1 ... Wm with Sigma_x, Sigma_yx [, y2] or X, Y")
    if not numbers:
        raise ProbeError("no weight matrices: expected arrays W1 ... Wm")
    m = max(numbers)
    if m > MAX_LAYERS:
        raise ProbeError(f"W{m}: more than {MAX_LAYERS} layers")
    missing = sorted(set(range(1, m + 1)) - set(numbers))
    if missing:
        found = ", ".join(f"W{k}" for k in sorted(numbers))
        raise ProbeError(f"W{missing[0]} is missing (found {found}; layers are W1 ... Wm without gaps)")
    return m


def _data_kind(names: Sequence[str]) -> str:
    stats = {"Sigma_x", "Sigma_yx"} & set(names)
    samples = {"X", "Y"} & set(names)
    if stats and samples:
        raise ProbeError("both statistics (Sigma_x, Sigma_yx) and samples (X, Y) given: provide one of them")
    if samples:
        if samples != {"X", "Y"}:
            absent = "Y" if "X" in samples else "X"
            raise ProbeError(f"{absent} is missing: samples need both X (d_x x n) and Y (d_y x n)")
        if "y2" in names:
            raise ProbeError("y2 is only read with Sigma_x, Sigma_yx; with samples it is computed from Y")
        return "samples"
    if stats != {"Sigma_x", "Sigma_yx"}:
        if not stats:
            raise ProbeError("no data: expected Sigma_x and Sigma_yx (optionally y2), or samples X and Y")
        raise ProbeError(f"{'Sigma_yx' if 'Sigma_x' in stats else 'Sigma_x'} is missing: statistics need both "
                         "Sigma_x (d_x x d_x) and Sigma_yx (d_y x d_x)")
    return "statistics"


def _check_shapes(shapes: dict[str, tuple[int, ...]], m: int, kind: str) -> tuple[int, int]:
    for name, shape in shapes.items():
        want = 0 if name == "y2" else 2
        if name == "y2":
            if math.prod(shape) != 1:
                raise ProbeError(f"y2 must be a single number, got shape {_shape_text(shape)}")
            continue
        if len(shape) != want:
            raise ProbeError(f"{name} must be a 2-D matrix, got shape {_shape_text(shape)}")
        if 0 in shape:
            raise ProbeError(f"{name} is empty (shape {_shape_text(shape)})")
    dims = [shapes["W1"][1]]
    for k in range(1, m + 1):
        rows, cols = shapes[f"W{k}"]
        if cols != dims[-1]:
            raise ProbeError(f"W{k} has {cols} columns but W{k - 1} has {dims[-1]} rows")
        dims.append(rows)
    d_x, d_y = dims[0], dims[-1]
    if d_x * d_y > MAX_DXDY:
        raise ProbeError(f"d_x d_y = {d_x} x {d_y} = {d_x * d_y:.3g} is more than the limit of {MAX_DXDY:.0e}")
    expected = {"Sigma_x": (d_x, d_x), "Sigma_yx": (d_y, d_x)}
    for name, want in expected.items():
        if name in shapes and shapes[name] != want:
            raise ProbeError(f"{name} has shape {_shape_text(shapes[name])} but the network needs {_shape_text(want)} "
                             f"(d_x = {d_x} columns of W1, d_y = {d_y} rows of W{m})")
    if kind == "samples":
        (rx, nx), (ry, ny) = shapes["X"], shapes["Y"]
        if rx != d_x:
            raise ProbeError(f"X has {rx} rows but W1 has {d_x} columns (samples are the columns of X, d_x x n)")
        if ry != d_y:
            raise ProbeError(f"Y has {ry} rows but W{m} has {d_y} rows (samples are the columns of Y, d_y x n)")
        if nx != ny:
            raise ProbeError(f"X has {nx} samples (columns) but Y has {ny}")
        if nx < d_x:
            raise ProbeError(f"too few samples: n = {nx} < d_x = {d_x}, so Sigma_x = X X^T / n is singular")
    return d_x, d_y


def _read_arrays(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict[str, np.ndarray]:
    out = {}
    for name, info in members.items():
        try:
            with zf.open(info) as fp:
                array = npy_format.read_array(fp, allow_pickle=False)
        except READ_ERRORS as exc:
            raise _unreadable(name, exc) from None
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(array, dtype=np.float64)
        if np.isnan(array).any():
            raise ProbeError(f"{name} contains NaN (at {_shape_text(np.argwhere(np.isnan(array))[0].tolist())})")
        if not np.isfinite(array).all():
            raise ProbeError(f"{name} contains inf (at {_shape_text(np.argwhere(~np.isfinite(array))[0].tolist())})")
        out[name] = array
    return out


def _spd(name: str, S: np.ndarray) -> np.ndarray:
    """S symmetrised, after checking it is symmetric (relative tolerance) and well-conditioned SPD."""
    scale = float(np.max(np.abs(S)))
    asym = float(np.max(np.abs(S - S.T)))
    if asym > SYMMETRY_RTOL * scale:
        raise ProbeError(f"{name} is not symmetric (max |S - S^T| = {asym:.2g}, {asym / scale:.2g} relative)")
    S = (S + S.T) / 2
    eig = np.linalg.eigvalsh(S)
    if eig[0] <= 0:
        raise ProbeError(f"{name} is not symmetric positive definite (smallest eigenvalue {eig[0]:.2g})")
    if eig[-1] / eig[0] > MAX_CONDITION:
        raise ProbeError(f"{name} is numerically singular (condition number {eig[-1] / eig[0]:.2g})")
    return S


def _data(arrays: dict[str, np.ndarray], kind: str) -> tuple[ln.Data, str]:
    if kind == "samples":
        X, Y = arrays["X"], arrays["Y"]
        n = X.shape[1]
        try:
            Sx = _spd("Sigma_x", X @ X.T / n)
        except ProbeError as exc:
            raise ProbeError(f"Sigma_x = X X^T / n from {n} samples: {str(exc).split(': ', 1)[-1]}") from None
        Syx = Y @ X.T / n
        y2 = np.asarray(np.sum(Y * Y) / n)
        source = f"samples X ({X.shape[0]} x {n}), Y ({Y.shape[0]} x {n})"
    else:
        Sx, Syx = _spd("Sigma_x", arrays["Sigma_x"]), arrays["Sigma_yx"]
        y2 = np.asarray(float(arrays["y2"].reshape(()))) if "y2" in arrays else None
        source = "statistics Sigma_x, Sigma_yx" + (", y2" if y2 is not None else "")
    T = np.linalg.solve(Sx, Syx.T).T  # T Sigma_x = Sigma_yx, Sigma_x symmetric
    if y2 is not None:
        if y2 < 0:
            raise ProbeError(f"y2 = E||y||^2 must be nonnegative, got {float(y2):.3g}")
        explained = float(np.trace(T @ Syx.T))
        if y2 < explained * (1 - 1e-9) - 1e-300:
            raise ProbeError(f"y2 = {float(y2):.6g} is below tr(T Sigma_x T^T) = {explained:.6g}: "
                             "the statistics are inconsistent (the minimal loss would be negative)")
    return ln.Data(Sx, Syx, T, ln.spd_sqrt(Sx), y2), source


def load(path: str | Path) -> tuple[list[np.ndarray], ln.Data, str]:
    """Weights W1 ... Wm, the data and a description of where the data came from; ProbeError on bad input."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ProbeError(f"{path} is a folder, not a .npz file")
        with open(path, "rb") as fh:
            magic = fh.read(6)
        if magic == b"\x93NUMPY":
            raise ProbeError(f"{path} is a single .npy array, not a .npz archive (save with np.savez)")
        if not zipfile.is_zipfile(path):
            raise ProbeError(f"{path} is not a valid .npz archive (not a zip file)")
        with zipfile.ZipFile(path) as zf:
            members = _members(zf)
            shapes, m = {}, _layer_count(list(members))
            kind = _data_kind(list(members))
            for name, info in members.items():
                shapes[name] = _read_header(zf, info, name)[0]
            _check_shapes(shapes, m, kind)
            arrays = _read_arrays(zf, members)
    except ProbeError:
        raise
    except zipfile.BadZipFile as exc:
        raise ProbeError(f"{path} is not a valid .npz archive ({exc})") from None
    except OSError as exc:
        raise ProbeError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ( zlib.error, EOFError, ValueError, KeyError, NotImplementedError, RuntimeError,
            MemoryError, OverflowError, TypeError, SyntaxError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ProbeError(f"{path} is not a valid .npz archive ({detail})") from None
    weights = [arrays[f"W{k}"] for k in range(1, m + 1)]
    try:
        data, source = _data(arrays, kind)
    except np.linalg.LinAlgError as exc:
        raise ProbeError(f"the data cannot be used: {exc}") from None
    return weights, data, source


# ----------------------------------------------------------------------------------------------------
# Analysis
# ----------------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    """A JSON number (None for NaN or inf)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _top_space(M: np.ndarray, left: bool) -> np.ndarray:
    """Orthonormal basis of the top singular subspace (singular values within 1e-6 of the largest)."""
    U, s, Vt = np.linalg.svd(M)
    g = int(np.sum(s >= s[0] * (1 - 1e-6))) if s[0] > 0 else len(s)
    return U[:, :g] if left else Vt[:g].T


def coupling_angle(W_k: np.ndarray, W_next: np.ndarray) -> float:
    """Smallest principal angle (degrees) between the top left singular subspace of W_k and the top right
    singular subspace of W_{k+1}: 0 when the layers are coupled (Theorem 3)."""
    overlap = np.linalg.svd(_top_space(W_k, left=True).T @ _top_space(W_next, left=False), compute_uv=False)
    return math.degrees(math.acos(min(1.0, float(overlap[0]))))


def _sigma_kind(Sx: np.ndarray) -> tuple[str, float | None]:
    """'identity', 'scaled' (c I, returns c) or 'general'."""
    c = float(np.trace(Sx) / Sx.shape[0])
    if np.max(np.abs(Sx - c * np.eye(Sx.shape[0]))) <= 1e-12 * c:
        return ("identity", 1.0) if abs(c - 1) <= 1e-12 else ("scaled", c)
    return "general", None


def _minimum(weights: list[np.ndarray], data: ln.Data) -> dict:
    W = ln.end_to_end(weights)
    D = W - data.T
    excess = float(np.trace(D @ data.Sigma_x @ D.T))
    scale = float(np.trace(data.T @ data.Sigma_x @ data.T.T) + np.trace(W @ data.Sigma_x @ W.T))
    relative = excess / scale if scale > 0 else 0.0
    grad = ln.flatten(ln.gradient(weights, data))
    spread = max(float(np.linalg.norm(A, 2) * np.linalg.norm(B, 2))
                 for A, B in zip(ln.above(weights), ln.below(weights)))
    grad_scale = 2 * max(float(np.linalg.norm(data.Sigma_yx)), float(np.linalg.norm(W @ data.Sigma_x))) * spread
    out = {"is_global_minimum": relative <= GLOBAL_RTOL, "excess_loss": excess, "relative_excess_loss": relative,
           "gradient_norm": float(np.linalg.norm(grad)),
           "relative_gradient_norm": float(np.linalg.norm(grad)) / grad_scale if grad_scale > 0 else 0.0}
    if data.y2 is not None:
        loss = float(ln.loss(weights, data))
        minimal = float(data.y2) - float(np.trace(data.T @ data.Sigma_yx.T))
        out |= {"loss": loss, "minimal_loss": minimal, "loss_gap": loss - minimal}
    return out


def _closed_form_lambda(weights: list[np.ndarray], data: ln.Data) -> tuple[float, str]:
    if data.d_x * data.d_y <= DENSE_DXDY:
        small = lemma3.small_operator_from_factors(*lemma3.small_factors(weights, data))
        return float(np.linalg.eigvalsh(small)[-1]), "dense eigensolver of 2 Phi^T Phi (Lemma 3)"
    top = lemma3.lambda_max_matrix_free(weights, data, rtol=1e-10)
    return float(top.value), f"Lanczos on 2 Phi^T Phi (Lemma 3), error bound {top.bound:.1g}"


def _flattest_estimate(weights: list[np.ndarray], data: ln.Data, lam: float) -> float | None:
    """min lambda_max over the global minima by the greedy search of Section IX from this point (an upper bound
    on the minimum); None if the network is too large to search quickly. rtol = -1 disables the search's
    stopping test, which compares with the printed value (below the minimum once Sigma_x != I)."""
    dims = ln.widths(weights)
    if sum(a * b for a, b in zip(dims, dims[1:])) > ESTIMATE_PARAMS or data.d_x * data.d_y > ESTIMATE_DXDY:
        return None
    W, _ = flattest_search.search(data.T, dims, data.Sigma_x_half, np.random.default_rng(0), rtol=-1.0,
                                  max_iterations=ESTIMATE_ITERATIONS, start=weights)
    return min(lam, float(lemma3.lambda_max(W, data)))


def _sharpness(weights: list[np.ndarray], data: ln.Data, at_minimum: bool, smax: float) -> dict:
    m = len(weights)
    printed = float(2 * m * smax ** (2 * (1 - 1 / m)))
    closed, method = _closed_form_lambda(weights, data)
    out: dict[str, Any] = {"printed_flattest_value": printed, "closed_form_lambda_max": closed,
                           "closed_form_method": method}
    if at_minimum:
        lam = closed
        out["lambda_max_note"] = "H = 2 Phi Phi^T (Lemma 3) is the exact Hessian at a global minimum"
    else:
        n_params = sum(W.size for W in weights)
        small = n_params <= TRUE_HESSIAN_PARAMS
        lam = float(np.linalg.eigvalsh(hr.finite_difference_hessian(weights, data))[-1]) if small else math.nan
        how = ("lambda_max is from the finite-difference Hessian" if small
               else f"the true Hessian ({n_params} weights) is too large to form here")
        out["lambda_max_note"] = "not a global minimum: 2 Phi Phi^T is only the Gauss-Newton part of the Hessian; " + how
    out["lambda_max"] = lam
    kind, c = _sigma_kind(data.Sigma_x)
    if kind == "identity":
        flattest, how = printed, "exact: 2m sigma_max(T)^(2(1-1/m)) (Theorem 1, Sigma_x = I)"
    elif kind == "scaled":
        flattest, how = c * printed, f"exact: Sigma_x = c I with c = {c:.6g} scales H by c (printed value times c)"
    else:
        estimate = _flattest_estimate(weights, data, lam) if at_minimum else None
        flattest = estimate
        how = ("estimate: greedy search over the global minima (an upper bound on the minimum); the printed "
               "2m sigma_max(T)^(2(1-1/m)) assumes Sigma_x = I") if estimate is not None else \
              "unknown for Sigma_x != I (the printed 2m sigma_max(T)^(2(1-1/m)) assumes Sigma_x = I)"
    out |= {"flattest_value": flattest, "flattest_kind": how, "sigma_x": kind,
            "ratio": _ratio(lam, flattest),
            "ratio_to_printed": lam / printed if printed > 0 else None,
            "gd_stability_threshold": 2 / lam if lam > 0 else math.inf}
    return out


def _ratio(lam: float, flattest: float | None) -> float | None:
    if flattest is None or not math.isfinite(lam):
        return None
    if flattest > 0:
        return lam / flattest
    return 1.0 if lam <= 1e-300 else math.inf  # T = 0: the flattest minima have lambda_max = 0 (m >= 2)


def _layers(weights: list[np.ndarray], T: np.ndarray, smax: float) -> list[dict]:
    m = len(weights)
    _, s, Vt = np.linalg.svd(T)
    v = Vt[0]
    rows = []
    partial = v
    for k, W in enumerate(weights, start=1):
        partial = W @ partial
        top = float(np.linalg.norm(W, 2))
        target = smax ** (1 / m)
        row = {"k": k, "sigma_max": top, "target": target, "ratio": top / target if target > 0 else None,
               "gain": float(np.linalg.norm(partial)), "target_gain": smax ** (k / m)}
        if k < m:
            row["coupling_angle_deg"] = coupling_angle(W, weights[k])
        rows.append(row)
    return rows


def _verdict(result: dict) -> str:
    mini, sharp = result["minimum"], result["sharpness"]
    if not mini["is_global_minimum"]:
        if mini["relative_gradient_norm"] <= CRITICAL_RTOL:
            return ("critical point but not a global minimum (a saddle; relative excess loss "
                    f"{mini['relative_excess_loss']:.2g})")
        return f"not a global minimum (relative excess loss {mini['relative_excess_loss']:.2g})"
    ratio = sharp["ratio"]
    if ratio is None:
        return (f"global minimum, lambda_max = {sharp['lambda_max']:.6g}; the flattest value for this Sigma_x is "
                f"unknown (the printed {sharp['printed_flattest_value']:.6g} assumes Sigma_x = I)")
    estimated = sharp["flattest_kind"].startswith("estimate")
    if ratio <= 1 + FLAT_RTOL:
        return f"flattest minimum (ratio {ratio:.4f})" + (" against the estimated flattest value" if estimated else "")
    return (f"global minimum, {ratio:.3g}x sharper than the flattest"
            + (" found (estimate for Sigma_x != I)" if estimated else ""))


def analyze(weights: Sequence[np.ndarray], data: ln.Data) -> dict:
    """Everything ``verify probe`` reports, as a JSON-able dict."""
    weights = [np.asarray(W, dtype=float) for W in weights]
    try:
        with np.errstate(all="ignore"):
            dims = ln.widths(weights)
            if not np.isfinite(ln.end_to_end(weights)).all():
                raise ProbeError("the product W_m ... W_1 overflows float64: the weights are too large")
            smax = float(np.linalg.norm(data.T, 2))
            singular = np.linalg.svd(data.T, compute_uv=False)
            minimum = _minimum(weights, data)
            result = {"depth": len(weights), "widths": list(dims), "parameters": int(sum(W.size for W in weights)),
                      "sigma_max_T": smax,
                      "rank_T": int(np.sum(singular > 1e-10 * max(smax, 1e-300))),
                      "top_multiplicity": int(np.sum(singular >= smax * (1 - 1e-9))) if smax > 0 else 0,
                      "minimum": minimum,
                      "sharpness": _sharpness(weights, data, minimum["is_global_minimum"], smax),
                      "layers": _layers(weights, data.T, smax)}
    except (np.linalg.LinAlgError, ln.ShapeError) as exc:
        raise ProbeError(f"the analysis failed: {exc}") from None
    if not (math.isfinite(result["minimum"]["excess_loss"])
            and math.isfinite(result["sharpness"]["closed_form_lambda_max"])):
        raise ProbeError("the loss or the Hessian overflows float64: the weights or the data are too large")
    result["verdict"] = _verdict(result)
    return _finite(result)


def _finite(x: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and inf to None."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return _num(x)
    return x


# ----------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------


def _fmt(x: Any, spec: str = ".6g") -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


def render(result: dict) -> list[Table]:
    """Two rich tables: the summary and the layers."""
    mini, sharp = result["minimum"], result["sharpness"]
    summary = Table(title=result.get("source") and f"verify probe: {result['source']}", show_header=False,
                    title_justify="left")
    summary.add_column(style="bold")
    summary.add_column()
    rows = [
        ("verdict", result["verdict"]),
        ("widths", " x ".join(map(str, result["widths"]))
         + f"  (m = {result['depth']}, {result['parameters']} weights)"),
        ("sigma_max(T)", _fmt(result["sigma_max_T"])
         + f"  (rank {result['rank_T']}, top multiplicity {result['top_multiplicity']})"),
        ("global minimum", _fmt(mini["is_global_minimum"])
         + f"  (relative excess loss {_fmt(mini['relative_excess_loss'], '.2g')}, "
           f"relative gradient {_fmt(mini['relative_gradient_norm'], '.2g')})"),
    ]
    if "loss_gap" in mini:
        rows.append(("loss - minimal loss", _fmt(mini["loss_gap"], ".3g")))
    rows += [
        ("lambda_max(H)", _fmt(sharp["lambda_max"]) + f"  ({sharp['lambda_max_note']})"),
        ("flattest value", _fmt(sharp["flattest_value"]) + f"  ({sharp['flattest_kind']})"),
        ("ratio", _fmt(sharp["ratio"], ".4f")),
        ("GD stable below eta =", _fmt(sharp["gd_stability_threshold"])),
    ]
    for key, value in rows:
        summary.add_row(key, value)
    layers = Table(title="layers: balancedness (Theorem 4), gains (Theorem 2), coupling (Theorem 3)",
                   title_justify="left")
    for col in ("k", "smax(W_k)", "target", "ratio", "gain", "target", "angle"):
        layers.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    layers.caption = ("smax(W_k) vs smax(T)^(1/m); gain |W_k...W_1 v| vs smax(T)^(k/m), v the top right singular "
                      "vector of T; angle (degrees) between the top left singular vector of W_k and the top right "
                      "one of W_k+1")
    for row in result["layers"]:
        layers.add_row(str(row["k"]), _fmt(row["sigma_max"]), _fmt(row["target"]), _fmt(row["ratio"], ".4f"),
                       _fmt(row["gain"]), _fmt(row["target_gain"]), _fmt(row.get("coupling_angle_deg"), ".3g"))
    return [summary, layers]


def print_result(result: dict, console: Console) -> None:
    for table in render(result):
        console.print(table)


def main(path: str, as_json: bool = False) -> int:
    """0 on success, 2 on bad input (one line on stderr)."""
    try:
        weights, data, source = load(path)
        result = {"source": source, **analyze(weights, data)}
    except ProbeError as exc:
        print(f"verify: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        print_result(result, Console(highlight=False))
    return 0
