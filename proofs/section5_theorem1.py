"""Section V of the supplement: the missing parts of the proof of Theorem 1, (S50)-(S66), Lemma 4
and Theorem 1 itself.

Ground truth throughout: lambda_max(H_w) from a dense eigensolver of the closed form of Lemma 3
(``lemma3.hessian`` = 2 Phi Phi^T, N x N, or the small operator 2 Phi^T Phi), checked on small
shapes against central differences of the analytic gradient (``hessian_reference``), which uses no
closed form at all; the minimum of lambda_max over the manifold of global minima from a numerical
descent (``proofs.manifold``) that never sees the closed form 2m sigma_max(T)^{2(1-1/m)}; maxima of
quadratic forms from their Gram matrix recovered by polarisation of the printed objective; linear
programs from scipy's ``linprog``; identities in the singular values from sympy.

Claims about flattest minima are run on every kind of global minimum: the canonical solution
(27), rotated and rebalanced flattest minima (``proofs.minima``), flattest minima found by the
greedy search (S105)-(S106) (``proofs.flattest_search``), and random minima (S104), where the
flat-minimum properties must fail; that failure is part of each such check (it shows the check
discriminates). The domain covers square and rectangular widths, T of full and deficient rank,
T with sigma_1 = sigma_2, and Sigma_x = I, c I and general SPD.

Section V drops Sigma_x^{1/2} from (S56) on: (S57), (S64), (S65), (S66) and Theorem 1 are also
run with Sigma_x != I (``without="Sigma_x = I"``), where the minimum of lambda_max is estimated
numerically and reported beside the printed value, together with the Lemma 4 lower bound that
keeps Sigma_x^{1/2} (``manifold.lemma4_bound``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

import mpmath
import numpy as np
import sympy as sp
from hypothesis import strategies as st
from scipy.optimize import linprog, minimize

from verify.checks import check
from verify.context import Context, derive_seed
from verify.measure import FLOAT64_REASON, batch_measurement, to_jsonable
from verify.model import Measurement, Variant
from verify.search import search
from proofs import flattest_search, hessian_reference, lemma3, manifold, minima
from proofs import instances as inst
from proofs import linear_network as ln
from proofs.exact import inverse, rational_orthogonal
from proofs.on_backend import map_chunks

EXACT = "exact rational arithmetic: no tolerance"
SYMBOLIC = "exact symbolic identity (sympy)"
FLOAT_TOL = 1e-11
FLOAT_REASON = FLOAT64_REASON + "; eigenvalues and SVDs of well-scaled matrices of size <= 64 (relative 1e-11)"
FD_TOL = 1e-6
FD_REASON = "central differences of the analytic gradient, h = 1e-5: O(h^2) + O(eps/h) relative error"
NEGATIVE_MARGIN = 1e-6  # a non-flattest minimum counts as such when its property misses by more than this
FLATTEST = ("canonical", "rotated flattest", "rebalanced flattest")
RANDOM = "random (S104)"
FAMILIES = (*FLATTEST, RANDOM)


def mp_tolerance(ctx: Context) -> float:
    return 10.0 ** (-(ctx.dps - 10))


def mp_reason(ctx: Context) -> str:
    return f"{ctx.dps}-digit arithmetic: residual below 10^-{ctx.dps - 10}"


# --- a matrix vocabulary for float arrays (batched, any Array-API namespace: NumPy, CuPy,
# array-api-strict), object arrays (Fraction, mpf) and sympy ----------------------------------------

def is_object(M: Any) -> bool:
    return isinstance(M, np.ndarray) and M.dtype == object


def tr(M: Any) -> Any:
    """Transpose of the last two axes (a sympy Matrix or a possibly batched array)."""
    return M.T if isinstance(M, sp.MatrixBase) else ln.namespace(M).matrix_transpose(M)


def frob2(M: Any) -> Any:
    """||M||_F^2 (batched over leading axes)."""
    if isinstance(M, sp.MatrixBase):
        return sum((x**2 for x in M), sp.Integer(0))
    if is_object(M):
        return np.sum(M * M, axis=(-2, -1))
    return ln.namespace(M).sum(M * M, axis=(-2, -1))


def last_sum(x: Any) -> Any:
    """Sum over the last axis (float arrays of any namespace, or object arrays)."""
    return np.sum(x, axis=-1) if is_object(x) else ln.namespace(x).sum(x, axis=-1)


def last_prod(x: Any) -> Any:
    """Product over the last axis (float arrays of any namespace, or object arrays)."""
    return np.prod(x, axis=-1) if is_object(x) else ln.namespace(x).prod(x, axis=-1)


def norm2(M: Any) -> Any:
    """Spectral norm: LAPACK SVD for float (batched), mpmath SVD at the working precision for mpf."""
    if is_object(M):
        flat = M.reshape(-1, *M.shape[-2:])
        out = [max(mpmath.svd_r(mpmath.matrix(A.tolist()), compute_uv=False)) for A in flat]
        return np.array(out, dtype=object).reshape(M.shape[:-2]) if M.ndim > 2 else out[0]
    return ln.namespace(M).linalg.svdvals(M)[..., 0]


def eye_as(M: Any, n: int) -> Any:
    if isinstance(M, sp.MatrixBase):
        return sp.eye(n)
    if is_object(M):
        return np.array([[M.flat[0] * 0 + (i == j) for j in range(n)] for i in range(n)], dtype=object)
    return ln.eye(n, M)


def outer(u: Any, v: Any) -> Any:
    """u v^T, batched over leading axes."""
    if isinstance(u, sp.MatrixBase):
        return u * v.T
    return u[..., :, None] * v[..., None, :]


def chain_power(B: Any, T: Any, m: int) -> Any:
    """(B T^T)^{m-1} B by repeated products (any field)."""
    out = B
    for _ in range(m - 1):
        out = B @ tr(T) @ out
    return out


def real_power(x: Any, p: Fraction) -> Any:
    """x ** p for a rational exponent p >= 0: exact in sympy, at the working precision for mpf,
    and 0 ** 0 = 1 (the convention of S^0 in (S59))."""
    if isinstance(x, sp.Basic):
        return x ** sp.Rational(p.numerator, p.denominator)
    if p == 0:
        if isinstance(x, np.ndarray):
            return np.ones_like(x)
        return ln.namespace(x).ones_like(x) if hasattr(x, "__array_namespace__") else 1
    if is_object(np.asarray(x)) or isinstance(x, mpmath.mpf):
        return x ** (mpmath.mpf(p.numerator) / p.denominator)
    return x ** (p.numerator / p.denominator)


# --- the domain: shapes of T and Sigma_x, and global minima of every kind ---------------------------

@dataclass(frozen=True)
class Cell:
    """One region of the domain: widths (d_x, d_1, ..., d_y), rank of T (None: full), whether
    sigma_1(T) = sigma_2(T), and the kind of Sigma_x (``instances.SIGMA_KINDS``)."""

    dims: tuple[int, ...]
    rank: int | None = None
    repeated: bool = False
    sigma: str = "identity"

    @property
    def m(self) -> int:
        return len(self.dims) - 1

    @property
    def d_x(self) -> int:
        return self.dims[0]

    @property
    def d_y(self) -> int:
        return self.dims[-1]

    @property
    def r(self) -> int:
        return self.rank if self.rank is not None else min(self.dims)

    def label(self) -> str:
        rank = "" if self.rank is None else f" rank {self.rank}"
        return f"dims={'x'.join(map(str, self.dims))}{rank}{' sigma1=sigma2' if self.repeated else ''} Sigma_x={self.sigma}"

    def size(self) -> tuple[int, int]:
        """An order on cells for choosing the smallest counterexample: (parameters, depth)."""
        return sum(a * b for a, b in zip(self.dims, self.dims[1:])), self.m

    def with_sigma(self, sigma: str) -> "Cell":
        return Cell(self.dims, self.rank, self.repeated, sigma)


CELLS = (  # Sigma_x = I: square, rectangular, deficient rank, repeated top singular values, m = 1..8
    Cell((2, 2)), Cell((3, 3, 3)), Cell((4, 3, 2)), Cell((2, 3, 4)), Cell((3, 2, 2, 4), rank=2),
    Cell((3, 3, 3, 3), rank=1), Cell((4, 4, 4), rank=2), Cell((3, 3, 3, 3), repeated=True),
    Cell((2, 3, 3, 4), rank=2, repeated=True), Cell((2, 2, 2, 2, 2, 2)), Cell((3, 4, 2, 3), rank=2),
    Cell((2,) * 9),
)
SIGMA_KINDS = ("identity", "scaled", "spd")
CELLS_ALL_SIGMA = tuple(c.with_sigma(s) for s in SIGMA_KINDS for c in CELLS)
SMALL_CELLS = (Cell((2, 2, 2)), Cell((2, 3, 2)), Cell((3, 2, 2, 2), rank=2), Cell((2, 2, 2, 2), repeated=True))


def clean_svd(T: np.ndarray, rank: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full SVD of T with singular values below 1e-10 sigma_1 (or past ``rank``) set to exactly 0."""
    U, s, Vt = np.linalg.svd(T)
    s = np.where(s <= minima.RANK_RTOL * s[..., :1], 0.0, s)
    if rank is not None:
        s[..., rank:] = 0.0
    return U, s, Vt


def random_targets(rng: np.random.Generator, n: int, cell: Cell) -> np.ndarray:
    """T of the cell's shape and rank with sigma_max = 2 e^{U(-1.5, 1.5)} (0.45 to 9: below and above 1,
    which exponent mutants need); sigma_2 = sigma_1 if the cell says so."""
    T = inst.random_target(rng, (n,), cell.d_y, cell.d_x, cell.r)
    U, s, Vt = clean_svd(T, cell.r)
    if cell.repeated:
        s[:, 1] = s[:, 0]
    s = s * np.exp(rng.uniform(-1.5, 1.5, size=(n, 1))) / np.maximum(s[:, :1], 1e-300) * 2
    d = s.shape[-1]
    return (U[..., :, :d] * s[..., None, :]) @ Vt[..., :d, :]


@dataclass
class Minima:
    """A batch of global minima of one kind on one cell, with the SVD T = U diag(s) V^T."""

    cell: Cell
    family: str
    weights: list[np.ndarray]
    data: ln.Data
    U: np.ndarray
    s: np.ndarray
    V: np.ndarray

    @property
    def n(self) -> int:
        return self.s.shape[0]

    @property
    def T(self) -> np.ndarray:
        return self.data.T

    @property
    def u(self) -> np.ndarray:
        return self.U[:, :, 0]

    @property
    def v(self) -> np.ndarray:
        return self.V[:, :, 0]

    def instance(self, i: int, **extra: Any) -> dict:
        return to_jsonable({"cell": self.cell.label(), "family": self.family, "T": self.T[i],
                            "Sigma_x": self.data.Sigma_x[i], "weights": [W[i] for W in self.weights], **extra})


def realize(rng: np.random.Generator, cell: Cell, family: str, n: int) -> Minima:
    """n global minima of the given kind (``FAMILIES``) for random T of the cell."""
    T = random_targets(rng, n, cell)
    U, s, Vt = clean_svd(T)
    m = cell.m
    layers = np.repeat((s ** (1.0 / m))[:, None, :], m, axis=1)
    if family == "canonical":
        W = minima.canonical_factors(T, cell.dims, layers)
    elif family == "rotated flattest":
        W = minima.rotated_flattest(T, cell.dims, rng, layers)
    elif family == "rebalanced flattest":
        # LAPACK's singular values (zeros ~1e-16, not exactly 0): rebalanced_values mishandles exact
        # zeros when sigma_max^{1/m} < 1 (its log headroom for them turns negative)
        raw = np.linalg.svd(T, compute_uv=False)
        W = minima.rotated_flattest(T, cell.dims, rng, minima.rebalanced_values(raw, m, rng))
    elif family == RANDOM:
        W = minima.random_minimum(T, cell.dims, rng)
    else:
        raise ValueError(f"unknown kind of minimum {family!r}")
    R = inst.random_sigma_half(rng, (n,), cell.d_x, cell.sigma)
    return Minima(cell, family, W, ln.from_target(ln.end_to_end(W), R), U, s, np.swapaxes(Vt, -1, -2))


def paired_top_vectors(rng: np.random.Generator, batch: Minima) -> tuple[np.ndarray, np.ndarray]:
    """A top singular pair (u, v), T v = sigma_1 u, chosen at random in the top singular subspace
    when sigma_1 is repeated (any such pair is 'the' u, v of the statement)."""
    if not batch.cell.repeated:
        return batch.u, batch.v
    theta = rng.uniform(0, 2 * np.pi, size=(batch.n, 1))
    v = np.cos(theta) * batch.V[:, :, 0] + np.sin(theta) * batch.V[:, :, 1]
    u = np.cos(theta) * batch.U[:, :, 0] + np.sin(theta) * batch.U[:, :, 1]
    return u, v


def kron_vec(a: ln.Array, b: ln.Array) -> ln.Array:
    """a (x) b for batched vectors (any Array-API namespace)."""
    xp = ln.namespace(a, b)
    return xp.reshape(a[..., :, None] * b[..., None, :], (*a.shape[:-1], a.shape[-1] * b.shape[-1]))


def top_eigen(weights: Sequence[ln.Array], data: ln.Data) -> tuple[ln.Array, ln.Array, ln.Array]:
    """Eigenvalues (ascending) and eigenvectors of the small operator 2 Phi^T Phi, and the
    operator itself (dense, batched, any Array-API namespace)."""
    S = lemma3.small_operator(list(weights), data)
    values, vectors = ln.namespace(S).linalg.eigh(S)
    return values, vectors, S


def hessian_lambda_max(weights: Sequence[ln.Array], data: ln.Data) -> ln.Array:
    """lambda_max of H = 2 Phi Phi^T (N x N, the Hessian itself, not the small operator)."""
    H = lemma3.hessian(list(weights), data)
    return ln.namespace(H).linalg.eigvalsh(H)[..., -1]


def fd_lambda_max(weights: Sequence[np.ndarray], data: ln.Data) -> np.ndarray:
    """lambda_max of the finite-difference Hessian of the loss: no closed form involved."""
    return np.linalg.eigvalsh(hessian_reference.finite_difference_hessian(list(weights), data))[..., -1]


def smallest_failing(residuals: Sequence[float], tolerance: float, sizes: Sequence[tuple]) -> int | None:
    """Index of the failing instance of smallest size (then largest residual), or None."""
    failing = [i for i, r in enumerate(residuals) if not r <= tolerance]
    if not failing:
        return None
    return min(failing, key=lambda i: (sizes[i], -residuals[i]))


def family_table(rows: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Worst value per family (or cell) label."""
    out: dict[str, float] = {}
    for label, value in rows:
        out[label] = max(out.get(label, -np.inf), float(value))
    return out


# === Lemma 4 and (S50) ==============================================================================

CHAIN_DIMS = ((2, 3), (3, 3, 3), (2, 4, 3, 2), (4, 2, 3, 1, 2), (3,) * 6, (1, 2, 1, 2, 1, 2, 1, 2, 1))
CHAIN_KINDS = ("gaussian", "rank one", "equal norms", "aligned", "tight", "orthogonal")


def orthonormal(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return minima.random_orthogonal(rng, (n,), d)


def random_chains(rng: np.random.Generator, n: int, dims: Sequence[int], kind: str) -> list[np.ndarray]:
    """n chains Psi_1..Psi_m, Psi_k of shape d_{k-1} x d_k, of a kind that makes some steps of
    (S50) tight: 'rank one' (step 1), 'equal norms' (step 2), 'aligned' (step 3: common singular
    bases, top values first), 'tight' (all: c x_{k-1} x_k^T), 'orthogonal' (square only: steps 2, 3);
    each chain scaled by a random factor in [e^-2, e^2] so norms fall below and above 1."""
    m = len(dims) - 1
    if kind == "orthogonal":
        dims = (dims[0],) * (m + 1)
    scale = np.exp(rng.uniform(-2, 2, size=(n, 1, 1)))
    if kind == "gaussian":
        psis = [rng.standard_normal((n, dims[k], dims[k + 1])) for k in range(m)]
    elif kind == "rank one":
        psis = [outer(rng.standard_normal((n, dims[k])), rng.standard_normal((n, dims[k + 1]))) for k in range(m)]
    elif kind == "equal norms":
        psis = [rng.standard_normal((n, dims[k], dims[k + 1])) for k in range(m)]
        psis = [P / norm2(P)[:, None, None] for P in psis]
    elif kind in ("aligned", "tight"):
        X = [orthonormal(rng, n, d) for d in dims]
        psis = []
        for k in range(m):
            values = -np.sort(-rng.uniform(0.1, 1.0, size=(n, min(dims[k], dims[k + 1]))), axis=-1)
            if kind == "tight":
                values[:, 1:] = 0.0
                values[:, 0] = 1.0
            D = ln.diag_rect(values * rng.uniform(0.5, 2.0, size=(n, 1)) if kind == "aligned" else values,
                                 dims[k], dims[k + 1])
            psis.append(X[k] @ D @ tr(X[k + 1]))
    elif kind == "orthogonal":
        psis = [orthonormal(rng, n, dims[0]) for _ in range(m)]
    else:
        raise ValueError(kind)
    return [P * scale ** (1.0 / m) for P in psis]


@dataclass
class ChainNorms:
    """||Psi_k||_F^2, ||Psi_k||_2 (shape (..., m)) and the norms of the product Psi_1 ... Psi_m."""

    fro2: Any
    spec: Any
    prod_spec: Any
    prod_fro2: Any

    @property
    def m(self) -> int:
        return self.fro2.shape[-1]


def chain_norms(psis: Sequence[Any]) -> ChainNorms:
    P = psis[0]
    for Q in psis[1:]:
        P = P @ Q
    if is_object(psis[0]):
        stack = lambda xs: np.stack([np.asarray(x) for x in xs], axis=-1)  # noqa: E731
    else:
        stack = lambda xs: ln.namespace(*xs).stack(xs, axis=-1)  # noqa: E731
    return ChainNorms(stack([frob2(Q) for Q in psis]), stack([norm2(Q) for Q in psis]), norm2(P), frob2(P))


def s50_printed(c: ChainNorms) -> tuple[Any, Any, Any, Any]:
    """(S50): sum ||Psi_k||_F^2 >= sum ||Psi_k||_2^2 >= m [prod ||Psi_k||_2]^{2/m} >= m ||prod Psi_k||_2^{2/m}."""
    m = c.m
    return (last_sum(c.fro2), last_sum(c.spec**2),
            m * real_power(last_prod(c.spec), Fraction(2, m)), m * real_power(c.prod_spec, Fraction(2, m)))


def lemma4_printed(c: ChainNorms) -> tuple[Any, Any]:
    """Lemma 4: sum ||Psi_k||_F^2 >= m ||prod Psi_k||_2^{2/m}."""
    return last_sum(c.fro2), c.m * real_power(c.prod_spec, Fraction(2, c.m))


def _with(members: tuple, index: int, value: Any) -> tuple:
    return tuple(value if k == index else x for k, x in enumerate(members))


S50_MUTANTS = {
    "AM-GM with constant m + 1": lambda c: _with(s50_printed(c), 2, (c.m + 1) * real_power(last_prod(c.spec), Fraction(2, c.m))),
    "AM-GM exponent 1/m instead of 2/m": lambda c: _with(s50_printed(c), 2, c.m * real_power(last_prod(c.spec), Fraction(1, c.m))),
    "Frobenius norm of the product in the last member": lambda c: _with(s50_printed(c), 3, c.m * real_power(c.prod_fro2, Fraction(1, c.m))),
    "unsquared spectral norms in the second member": lambda c: _with(s50_printed(c), 1, last_sum(c.spec)),
}
LEMMA4_MUTANTS = {
    "constant m + 1": lambda c: (lemma4_printed(c)[0], (c.m + 1) * real_power(c.prod_spec, Fraction(2, c.m))),
    "exponent 1/m instead of 2/m": lambda c: (lemma4_printed(c)[0], c.m * real_power(c.prod_spec, Fraction(1, c.m))),
    "constant m^2": lambda c: (lemma4_printed(c)[0], c.m**2 * real_power(c.prod_spec, Fraction(2, c.m))),
}
INEQUALITY_NAMES = ("||.||_F >= ||.||_2", "AM-GM", "sub-multiplicativity")


def brief(owner: dict) -> dict:
    """The scalar and short entries of an instance description (for details; the full instance is
    the counterexample)."""
    return {k: v for k, v in owner.items() if not isinstance(v, (list, np.ndarray)) or len(str(v)) < 80}


def chain_slacks(members: Sequence[Any]) -> np.ndarray:
    """Relative slack (lhs - rhs) / |lhs| of each consecutive pair of members, shape (..., steps)."""
    vals = [np.asarray(x, dtype=float) for x in members]
    return np.stack([(a - b) / np.maximum(np.abs(a), 1e-300) for a, b in zip(vals, vals[1:])], axis=-1)


def chain_batches(ctx: Context) -> list[tuple[tuple[int, ...], str, list[np.ndarray]]]:
    rng = ctx.rng("chains")
    n = max(4, -(-ctx.profile.instances // (len(CHAIN_DIMS) * len(CHAIN_KINDS))))
    return [(dims, kind, random_chains(rng, n, dims, kind)) for dims in CHAIN_DIMS for kind in CHAIN_KINDS]


def slack_measurement(slacks: np.ndarray, owners: list[dict], names: Sequence[str], tolerance: float,
                      reason: str, shapes: Sequence[str]) -> Measurement:
    """A chain of inequalities holds where every relative slack >= -tolerance; details: the
    smallest slack of each step, the instance attaining it, and whether it is attained (<= 1e-12).
    Owners are made JSON-ready only when reported (a thorough run has 1e5 of them)."""
    worst = np.maximum(0.0, -slacks).max(axis=-1)
    details = {}
    for j, name in enumerate(names):
        i = int(np.argmin(slacks[:, j]))
        details[f"min slack, {name}"] = float(slacks[i, j])
        details[f"tightest instance, {name}"] = brief(to_jsonable(owners[i]))
    return batch_measurement(worst, tolerance, reason, shapes, lambda i: to_jsonable(owners[i]), **details)


def random_chain_measurement(ctx: Context, formula, names: Sequence[str]) -> Measurement:
    """The chain of inequalities ``formula`` on the random and structured chains of ``chain_batches``:
    norms and members on ``ctx.xp``, the relative slacks on the host."""
    slacks, owners, shapes = [], [], []
    for dims, kind, psis in chain_batches(ctx):
        members = map_chunks(ctx, lambda *P: tuple(formula(chain_norms(list(P)))), psis)
        slacks.append(chain_slacks(members))
        owners += [{"dims": dims, "kind": kind, "Psi": [P[i] for P in psis]} for i in range(psis[0].shape[0])]
        shapes.append(f"{'x'.join(map(str, dims))} {kind}")
    return slack_measurement(np.concatenate(slacks), owners, names,
                             FLOAT_TOL, FLOAT_REASON, sorted(set(shapes)))


@check("S50", method="float", printed=s50_printed, mutants=S50_MUTANTS, backend=True)
def s50_each_inequality_float(ctx: Context, formula) -> Measurement:
    """Random chains Psi_1..Psi_m (m = 1..8, rectangular, rank one, equal norms, aligned, tight,
    orthogonal, scaled) with LAPACK norms on ``ctx.xp``: each of the three inequalities of (S50)
    separately; details give each one's smallest relative slack (0: attained)."""
    return random_chain_measurement(ctx, formula, INEQUALITY_NAMES)


def mp_chains(ctx: Context, per: int = 2) -> list[tuple[tuple[int, ...], str, list[np.ndarray]]]:
    """Float chains converted exactly to mpf (a tight chain is then tight up to float rounding of
    its construction, so its slack is ~1e-16, not 0)."""
    rng = ctx.rng("mp chains")
    to_mp = np.vectorize(mpmath.mpf, otypes=[object])
    return [(dims, kind, [to_mp(P) for P in random_chains(rng, per, dims, kind)])
            for dims in CHAIN_DIMS[:5] for kind in CHAIN_KINDS]


def exact_tight_chain(dims: Sequence[int], c: Any) -> list[np.ndarray]:
    """c e_1 e_1^T in every layer: all three steps of (S50) are equalities, exactly."""
    out = []
    for a, b in zip(dims, dims[1:]):
        P = np.array([[c * 0] * b for _ in range(a)], dtype=object)
        P[0, 0] = c
        out.append(P)
    return out


@check("S50", method="mpmath", printed=s50_printed, mutants=S50_MUTANTS)
def s50_each_inequality_mpmath(ctx: Context, formula) -> Measurement:
    """Chains at ctx.dps digits (mpmath SVD), including exactly tight ones (c e_1 e_1^T, c = 1/3 and
    3): each inequality holds, and the tight chains give slack 0 to the working precision."""
    slacks, owners = [], []
    with mpmath.workdps(ctx.dps):
        batches = mp_chains(ctx)
        for dims in CHAIN_DIMS[:5]:
            for c in (mpmath.mpf(1) / 3, mpmath.mpf(3)):
                batches.append((dims, f"exact tight c={mpmath.nstr(c, 3)}", [P[None] for P in exact_tight_chain(dims, c)]))
        for dims, kind, psis in batches:
            members = formula(chain_norms(psis))
            for i in range(psis[0].shape[0]):
                vals = [x[i] for x in members]
                slacks.append([float((a - b) / abs(a)) for a, b in zip(vals, vals[1:])])
                owners.append({"dims": dims, "kind": kind, "Psi": [mpmath.nstr(mpmath.matrix(P[i].tolist()), 20) for P in psis]})
    slacks = np.array(slacks)
    tight = [i for i, o in enumerate(owners) if str(o["kind"]).startswith("exact")]
    meas = slack_measurement(slacks, owners, INEQUALITY_NAMES, mp_tolerance(ctx), mp_reason(ctx), [f"m<={len(CHAIN_DIMS[4]) - 1}"])
    meas.details = {**meas.details, "max |slack| on the exactly tight chains": float(np.abs(slacks[tight]).max())}
    return meas


def _chain_from_vectors(x: np.ndarray, dims: Sequence[int]) -> list[np.ndarray]:
    """Chains from a batch of flat parameter vectors x (batch, size)."""
    out, start = [], 0
    for a, b in zip(dims, dims[1:]):
        out.append(x[:, start:start + a * b].reshape(-1, a, b))
        start += a * b
    return out


OPT_DIMS = ((2, 3, 2), (2, 2, 2, 2))


def value_and_gradient(batched: Callable[[np.ndarray], np.ndarray], x: np.ndarray, h: float = 1e-7) -> tuple[float, np.ndarray]:
    """f(x) and its forward-difference gradient from one batched evaluation at x and x + h e_i."""
    points = np.vstack([x, x + h * np.eye(x.size)])
    with np.errstate(all="ignore"):
        values = np.asarray(batched(points), dtype=float)
    return float(values[0]), (values[1:] - values[0]) / h


def tightness_search(ctx: Context, slack_of: Callable[[list[np.ndarray]], np.ndarray], starts: int = 1) -> tuple[float, dict]:
    """Minimise a relative slack (batched over chains) over the entries of Psi_1..Psi_m (L-BFGS,
    random starts, 2x3x2 and 2x2x2x2): the smallest slack found and its chain. A slack -> 0 means
    the step is sharp."""
    rng = ctx.rng("tightness")
    best, where = np.inf, {}
    for dims in OPT_DIMS:
        size = sum(a * b for a, b in zip(dims, dims[1:]))
        for _ in range(starts):
            fun = lambda x: value_and_gradient(lambda X: slack_of(_chain_from_vectors(X, dims)), x)  # noqa: E731
            res = minimize(fun, rng.standard_normal(size), jac=True, method="L-BFGS-B", options=dict(maxiter=300))
            if res.fun < best:
                best, where = float(res.fun), {"dims": dims, "Psi": [P[0] for P in _chain_from_vectors(res.x[None], dims)]}
    return best, where


def stable_ranks(psis: Sequence[np.ndarray]) -> list[float]:
    return [float(frob2(P[0]) / norm2(P[0]) ** 2) for P in psis]


@check("S50", method="float", printed=s50_printed, mutants={k: S50_MUTANTS[k] for k in list(S50_MUTANTS)[:2]},
       name="s50_tightness_search")
def s50_tightness_search(ctx: Context, formula) -> Measurement:
    """For each inequality of (S50) separately, L-BFGS over the entries of Psi_1..Psi_m (random
    starts; 2x3x2 and 2x2x2x2) minimises its relative slack: no negative slack is found, and the
    smallest slack found says whether the step is sharp (details: best slack, instance)."""
    details, worst = {}, 0.0
    for j, name in enumerate(INEQUALITY_NAMES):
        best, where = tightness_search(ctx, lambda psis: chain_slacks(formula(chain_norms(psis)))[:, j])
        worst = max(worst, -best)
        details[f"best slack, {name}"] = best
        details[f"best instance, {name}"] = to_jsonable(where)
    return Measurement(max(worst, 0.0), 1e-9, "the optimiser works in float64 on ratios of norms (relative 1e-9)",
                       len(INEQUALITY_NAMES) * len(OPT_DIMS), [f"{'x'.join(map(str, d))}" for d in OPT_DIMS],
                       counterexample=details if worst > 1e-9 else None, details=details)


@check("Lemma 4", method="hypothesis", printed=lemma4_printed, mutants=LEMMA4_MUTANTS)
def lemma4_hypothesis(ctx: Context, formula) -> Measurement:
    """Hypothesis draws widths (m = 1..6, widths 1..4), a kind of chain and a seed, and looks for
    sum ||Psi_k||_F^2 < m ||prod Psi_k||_2^{2/m} (relative violation > 1e-11); shrinks what it finds."""
    strategy = st.tuples(st.lists(st.integers(1, 4), min_size=2, max_size=7), st.sampled_from(CHAIN_KINDS),
                         st.integers(0, 2**32 - 1))

    def violation(example) -> float:
        dims, kind, seed = example
        psis = random_chains(np.random.default_rng(seed), 1, dims, kind)
        lhs, rhs = formula(chain_norms(psis))
        return float(max(0.0, (rhs[0] - lhs[0]) / lhs[0]))

    return search(ctx, strategy, violation, FLOAT_TOL, FLOAT_REASON,
                  shape=lambda ex: f"m={len(ex[0]) - 1} {ex[1]}")


@check("Lemma 4", method="float", printed=lemma4_printed, mutants={k: LEMMA4_MUTANTS[k] for k in ("constant m + 1", "constant m^2")})
def lemma4_sharpness_optimizer(ctx: Context, formula) -> Measurement:
    """L-BFGS minimises sum ||Psi_k||_F^2 / (m ||prod Psi_k||_2^{2/m}) over chains (random starts,
    2x3x2 and 2x2x2x2): the ratio never drops below 1, and the best ratio found says whether the constant
    m is sharp. Converse of the equality case: at the best chain, each Psi_k is rank one (stable
    rank ||Psi||_F^2/||Psi||_2^2 -> 1) with equal spectral norms."""
    def slack(psis):
        lhs, rhs = formula(chain_norms(psis))
        return (lhs - rhs) / lhs

    best, where = tightness_search(ctx, slack, starts=2)
    psis = [P[None] for P in where["Psi"]]
    details = {"best relative slack (ratio - 1 ~ slack)": best, "best chain": to_jsonable(where),
               "stable ranks at the best chain": stable_ranks(psis),
               "spectral norms at the best chain": [float(norm2(P[0])) for P in psis]}
    return Measurement(max(0.0, -best), FLOAT_TOL, FLOAT_REASON, 2 * len(OPT_DIMS), [f"{'x'.join(map(str, d))}" for d in OPT_DIMS],
                       counterexample=details if -best > FLOAT_TOL else None, details=details)


@check("Lemma 4", method="float", printed=lemma4_printed, mutants=LEMMA4_MUTANTS, name="lemma4_random_chains_float",
       backend=True)
def lemma4_random_chains_float(ctx: Context, formula) -> Measurement:
    """The inequality of Lemma 4 end to end on the random and structured chains of the (S50) check (on
    ``ctx.xp``)."""
    return random_chain_measurement(ctx, formula, ("Lemma 4",))


# === (S51)-(S53): the maximal value of nu(B) ========================================================

def to_mpf(A: Any) -> Any:
    """Fractions (or floats) to mpf at the working precision, elementwise."""
    conv = lambda x: mpmath.mpf(x.numerator) / x.denominator if isinstance(x, Fraction) else mpmath.mpf(x)  # noqa: E731
    return np.vectorize(conv, otypes=[object])(A)


def to_sympy(A: np.ndarray) -> sp.Matrix:
    return sp.Matrix([[sp.Rational(x.numerator, x.denominator) for x in row] for row in A.tolist()])


def target_from_svd(U: Any, s: Sequence[Any], V: Any) -> Any:
    """U[:, :d] diag(s) V[:, :d]^T for one matrix (object arrays or sympy)."""
    d = len(s)
    if isinstance(U, sp.MatrixBase):
        return U[:, :d] * sp.diag(*s) * V[:, :d].T
    return (U[:, :d] * np.array(list(s), dtype=object)[None, :]) @ tr(V[:, :d])


B_KINDS = ("gaussian", "rank one", "top pair u v^T", "rank two")


def unit_frobenius_b(rng: np.random.Generator, U: np.ndarray, V: np.ndarray, kind: str) -> np.ndarray:
    """B with ||B||_F = 1 of a kind (batched over U's leading axis)."""
    n, d_y, d_x = U.shape[0], U.shape[-1], V.shape[-1]
    if kind == "gaussian":
        B = rng.standard_normal((n, d_y, d_x))
    elif kind == "rank one":
        B = outer(rng.standard_normal((n, d_y)), rng.standard_normal((n, d_x)))
    elif kind == "top pair u v^T":
        B = outer(U[:, :, 0], V[:, :, 0])
    elif kind == "rank two":
        B = outer(rng.standard_normal((n, d_y)), rng.standard_normal((n, d_x))) + \
            outer(rng.standard_normal((n, d_y)), rng.standard_normal((n, d_x)))
    else:
        raise ValueError(kind)
    return B / np.sqrt(frob2(B))[:, None, None]


T_CELLS = tuple(Cell((c.d_x, c.d_y), c.rank, c.repeated) for c in CELLS[:11])  # shapes of T only
DEPTHS = range(1, 9)


def t_batches(ctx: Context, key: str, per: int | None = None):
    """(cell, m, T, U, s, V) over the shapes of T (square, rectangular, deficient, repeated) and m = 1..8."""
    rng = ctx.rng(key)
    n = per or max(2, -(-ctx.profile.instances // (len(T_CELLS) * len(DEPTHS) * len(B_KINDS))))
    for cell in T_CELLS:
        for m in DEPTHS:
            T = random_targets(rng, n, cell)
            U, s, Vt = clean_svd(T)
            yield cell, m, T, U, s, np.swapaxes(Vt, -1, -2), rng


def s51_printed(B, T, m):
    """(S51): ||(B T^T)^{m-1} B||_2 <= ||B||_2^m ||T||_2^{m-1} <= sigma_max(T)^{m-1}."""
    return norm2(chain_power(B, T, m)), norm2(B) ** m * norm2(T) ** (m - 1), norm2(T) ** (m - 1)


S51_MUTANTS = {
    "sigma_max^m on the right": lambda B, T, m: _with(s51_printed(B, T, m), 2, norm2(T) ** m),
    "sigma_max^(m-2) on the right": lambda B, T, m: _with(s51_printed(B, T, m), 2, norm2(T) ** (m - 2)),
    "Frobenius norms in the middle": lambda B, T, m: _with(s51_printed(B, T, m), 1,
                                                          frob2(B) ** (m / 2) * frob2(T) ** ((m - 1) / 2)),
}
S51_NAMES = ("sub-multiplicativity", "||B||_2 <= ||B||_F = 1")


@check("S51", method="float", printed=s51_printed, mutants=S51_MUTANTS, backend=True)
def s51_both_inequalities_float(ctx: Context, formula) -> Measurement:
    """T of every shape (rectangular, deficient, sigma_1 = sigma_2, sigma_max from 0.45 to 9), m = 1..8,
    B with ||B||_F = 1 (Gaussian, rank one, rank two, u v^T), LAPACK norms on ``ctx.xp``: both
    inequalities of (S51), each with its smallest relative slack (host)."""
    slacks, owners, shapes = [], [], set()
    for cell, m, T, U, s, V, rng in t_batches(ctx, "S51"):
        for kind in B_KINDS:
            B = unit_frobenius_b(rng, U, V, kind)
            members = map_chunks(ctx, lambda B, T: tuple(formula(B, T, m)), (B, T))
            members = [members[0], members[1], np.broadcast_to(members[2], members[0].shape)]
            slacks.append(chain_slacks(members[::-1])[:, ::-1])
            owners += [{"T": T[i], "B": B[i], "m": m, "kind": kind} for i in range(T.shape[0])]
            shapes.add(f"{cell.label()} m={m}")
    return slack_measurement(np.concatenate(slacks), owners, S51_NAMES,
                             FLOAT_TOL, FLOAT_REASON, sorted(shapes))


def exact_targets(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray, list[Fraction]]]:
    """(label, U, V, singular values) with exactly orthogonal rational U, V: 2x2, 2x3, 3x2 and 3x3,
    distinct, deficient (sigma_2 = 0) and repeated (sigma_2 = sigma_1) singular values, sigma_1 = 1/2,
    5/2, 2/3, 7/3 (below and above 1)."""
    out = []
    tops = (Fraction(1, 2), Fraction(5, 2), Fraction(2, 3), Fraction(7, 3))
    for (d_y, d_x), top in zip(((2, 2), (2, 3), (3, 2), (3, 3)), tops):
        U, V = rational_orthogonal(rng, d_y), rational_orthogonal(rng, d_x)
        for kind, second in (("distinct", top * Fraction(2, 5)), ("deficient", Fraction(0)), ("repeated", top)):
            out.append((f"{d_y}x{d_x} {kind}", U, V, [top, second] + [Fraction(0)] * (min(d_x, d_y) - 2)))
    return out


@check("S51", method="mpmath", printed=s51_printed, mutants=S51_MUTANTS)
def s51_both_inequalities_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits, T = U diag(s) V^T with exactly orthogonal rational U, V (2x2..3x3,
    distinct/deficient/repeated, sigma_max < 1 and > 1), m = 1..8, B = u v^T (tight) and random B:
    both inequalities of (S51); u v^T attains both to the working precision."""
    rng = ctx.rng("mp")
    slacks, owners = [], []
    with mpmath.workdps(ctx.dps):
        for label, U, V, s in (exact_targets(rng)[i] for i in (0, 4, 8, 11)):  # every kind, sigma_1 < 1 and > 1
            Um, Vm = to_mpf(U), to_mpf(V)
            T = target_from_svd(Um, [mpmath.mpf(x.numerator) / x.denominator for x in s], Vm)
            Bs = {"u v^T": outer(Um[:, 0], Vm[:, 0]), "gaussian": to_mpf(rng.standard_normal(T.shape))}
            Bs["gaussian"] = Bs["gaussian"] / mpmath.sqrt(frob2(Bs["gaussian"]))
            for m in (1, 2, 3, 5, 8):
                for kind, B in Bs.items():
                    lhs, mid, rhs = formula(B, T, m)
                    slacks.append([float((mid - lhs) / mid) if mid else 0.0, float((rhs - mid) / rhs) if rhs else 0.0])
                    owners.append({"T": label, "m": m, "B": kind, "s": [str(x) for x in s]})
    return slack_measurement(np.array(slacks), owners, S51_NAMES, mp_tolerance(ctx), mp_reason(ctx), ["m in 1,2,3,5,8"])


@check("S51", method="float", printed=s51_printed, mutants={k: S51_MUTANTS[k] for k in list(S51_MUTANTS)[:2]},
       name="s51_tightness_search")
def s51_tightness_search(ctx: Context, formula) -> Measurement:
    """L-BFGS over B (normalised to ||B||_F = 1) minimises the relative slack of each inequality of
    (S51) for a few T (square with sigma_max = 1/2, rectangular with sigma_max = 2, sigma_1 = sigma_2)
    and m = 2, 3: no violation, and the best slack says whether each step is sharp; details: the
    cosine of the best B with u v^T."""
    rng = ctx.rng("S51 tight")
    details, worst = {}, 0.0
    for cell, top in ((T_CELLS[1], 0.5), (T_CELLS[2], 2.0), (T_CELLS[7], 0.5)):
        T = random_targets(rng, 1, cell)[0]
        T = T * top / norm2(T)
        U, s, Vt = np.linalg.svd(T)
        for m in (2, 3):
            for j, name in enumerate(S51_NAMES):
                def slack(X):
                    B = X.reshape(-1, *T.shape)
                    B = B / np.sqrt(frob2(B))[:, None, None]
                    members = formula(B, np.broadcast_to(T, B.shape[:1] + T.shape), m)
                    return chain_slacks(list(members)[::-1])[:, ::-1][:, j]
                res = minimize(lambda x: value_and_gradient(slack, x), rng.standard_normal(T.size), jac=True,
                               method="L-BFGS-B", options=dict(maxiter=300))
                worst = max(worst, -float(res.fun))
                B = res.x.reshape(T.shape) / np.linalg.norm(res.x)
                key = f"T {cell.label().split(' Sigma_x')[0].removeprefix('dims=')} sigma_max={top} m={m} {name}"
                details[key] = {"best slack": float(res.fun), "|<B, u v^T>|": abs(float(U[:, 0] @ B @ Vt[0]))}
    return Measurement(worst, 1e-9, "the optimiser works in float64 on ratios of norms (relative 1e-9)",
                       len(details), sorted(details), counterexample=details if worst > 1e-9 else None, details=details)


@dataclass(frozen=True)
class Attainer:
    """(S52) as a pair: the maximiser B of nu and the value ||(B T^T)^{m-1} B||_2 claimed for it."""

    B: Callable[[Any, Any], Any]
    value: Callable[[Any, int], Any]


s52_printed = Attainer(B=lambda u, v: outer(u, v), value=lambda s1, m: s1 ** (m - 1))
S52_MUTANTS = {
    "B = v u^T (transposed)": Attainer(lambda u, v: outer(v, u), s52_printed.value),
    "value sigma_max^m": Attainer(s52_printed.B, lambda s1, m: s1**m),
    "value sigma_max^(m-2)": Attainer(s52_printed.B, lambda s1, m: s1 ** (m - 2)),
}


def symbolic_singular_values(n: int, kind: str) -> list[sp.Expr]:
    s1, s2, s3 = sp.symbols("sigma1 sigma2 sigma3", positive=True)
    values = {"distinct": [s1, s2, s3], "deficient": [s1, sp.Integer(0), sp.Integer(0)], "repeated": [s1, s1, s3]}[kind]
    return values[:n]


@check("S52", method="sympy", printed=s52_printed, mutants=S52_MUTANTS)
def s52_sympy(ctx: Context, formula) -> Measurement:
    """T = U diag(sigma) V^T with symbolic singular values and exactly orthogonal rational U, V
    (2x2, 2x3, 3x2, 3x3; distinct, deficient, repeated; for repeated values a paired choice
    v = (3 v_1 + 4 v_2)/5, u = T v / sigma_1), m = 1..max_depth: sympy expands (B T^T)^{m-1} B and
    finds it equal to value * B with ||B||_2 = 1, so ||(B T^T)^{m-1} B||_2 = value exactly."""
    rng = ctx.rng("sympy")
    checked = []
    for d_y, d_x in ((2, 2), (2, 3), (3, 2), (3, 3)):
        U, V = to_sympy(rational_orthogonal(rng, d_y)), to_sympy(rational_orthogonal(rng, d_x))
        for kind in ("distinct", "deficient", "repeated"):
            s = symbolic_singular_values(min(d_x, d_y), kind)
            T = target_from_svd(U, s, V)
            v = V[:, 0] if kind != "repeated" else (3 * V[:, 0] + 4 * V[:, 1]) / 5
            u = sp.expand(T * v / s[0])
            B = formula.B(u, v)
            norm_b2 = sp.simplify((B.T * B).trace() - (B.T * B).trace() ** 0 * 0)  # ||B||_F^2 = ||B||_2^2 (rank one)
            for m in range(1, ctx.profile.max_depth + 1):
                value = formula.value(s[0], m)
                diff = (chain_power(B, T, m) - value * B).applyfunc(sp.expand)
                if diff != sp.zeros(*diff.shape) or norm_b2 != 1:
                    return Measurement(1.0, 0.0, SYMBOLIC, len(checked) + 1, checked,
                                       counterexample={"shape": f"{d_y}x{d_x}", "kind": kind, "m": m,
                                                       "value": str(value), "||B||_F^2": str(norm_b2),
                                                       "difference (first entry)": str(next(x for x in diff if x != 0) if diff != sp.zeros(*diff.shape) else 0)[:300]})
                checked.append(f"{d_y}x{d_x} {kind} m={m}")
    return Measurement(0.0, 0.0, SYMBOLIC, len(checked), sorted(set(c.rsplit(" m=", 1)[0] for c in checked)),
                       details={"depths": f"1..{ctx.profile.max_depth}"})


@check("S52", method="float", printed=s52_printed, mutants=S52_MUTANTS, backend=True)
def s52_float(ctx: Context, formula) -> Measurement:
    """T of every shape, m = 1..8, (u, v) a top singular pair (a random pair in the top singular
    subspace when sigma_1 = sigma_2): ||(B T^T)^{m-1} B||_2 from LAPACK equals the printed value and
    ||B||_F = 1, on ``ctx.xp``. Details (host): with sigma_1 = sigma_2, a mismatched pair u_1 v_2^T gives 0
    instead."""
    residuals, owners, shapes, mismatched = [], [], set(), []
    per = max(2, -(-ctx.profile.instances // (len(T_CELLS) * len(DEPTHS))))
    for cell, m, T, U, s, V, rng in t_batches(ctx, "S52", per):
        u, v = paired_top_vectors(rng, Minima(cell, "", [], None, U, s, V))

        def on_backend(u, v, T, s1):
            B = formula.B(u, v)
            return norm2(chain_power(B, T, m)), formula.value(s1, m), frob2(B)

        truth, value, b2 = map_chunks(ctx, on_backend, (u, v, T, s[:, 0]))
        residuals.append(np.abs(truth - value) / np.maximum(np.abs(truth), 1e-300) + np.abs(np.sqrt(b2) - 1))
        owners += [{"T": T[i], "m": m, "u": u[i], "v": v[i]} for i in range(T.shape[0])]
        shapes.add(cell.label().split(" Sigma_x")[0])
        if cell.repeated and m > 1:
            mismatched.append(float(np.max(norm2(chain_power(outer(U[:, :, 0], V[:, :, 1]), T, m)) / s[:, 0] ** (m - 1))))
    return batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON, sorted(shapes),
                             lambda i: to_jsonable(owners[i]),
                             **{"sigma_1 = sigma_2, mismatched pair u_1 v_2^T: max ||(B T^T)^{m-1} B||_2 / sigma^{m-1}":
                                max(mismatched)})


@check("S52", method="mpmath", printed=s52_printed, mutants=S52_MUTANTS)
def s52_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits, T = U diag(s) V^T with exactly orthogonal rational U, V (distinct, deficient,
    repeated singular values; paired v = (3 v_1 + 4 v_2)/5 when repeated), m = 1..8: mpmath's SVD
    norm of (B T^T)^{m-1} B equals the printed value."""
    residuals, owners = [], []
    with mpmath.workdps(ctx.dps):
        for label, U, V, s in exact_targets(ctx.rng("mp")):
            Um, Vm = to_mpf(U), to_mpf(V)
            sm = [mpmath.mpf(x.numerator) / x.denominator for x in s]
            T = target_from_svd(Um, sm, Vm)
            v = Vm[:, 0] if "repeated" not in label else (3 * Vm[:, 0] + 4 * Vm[:, 1]) / 5
            u = (T @ v) / sm[0]
            B = formula.B(u, v)
            for m in DEPTHS:
                value = formula.value(sm[0], m)
                truth = norm2(chain_power(B, T, m))
                residuals.append(float(abs(truth - value) / truth + abs(mpmath.sqrt(frob2(B)) - 1)))
                owners.append({"T": label, "s": [str(x) for x in s], "m": m})
    return batch_measurement(np.array(residuals), mp_tolerance(ctx), mp_reason(ctx), ["2x2..3x3, m=1..8"],
                             lambda i: owners[i])


def s53_printed(s1, m):
    """(S53): max_{||B||_F = 1} nu(B) = 2m sigma_max(T)^{2(1-1/m)}; m in the caller's field."""
    return 2 * m * s1 ** (2 * (1 - 1 / m))


FLATTEST_VALUE_MUTANTS = {
    "exponent 2(1+1/m)": lambda s1, m: 2 * m * s1 ** (2 * (1 + 1 / m)),
    "m instead of 2m": lambda s1, m: m * s1 ** (2 * (1 - 1 / m)),
    "exponent 2(1-1/m) without the 2": lambda s1, m: 2 * m * s1 ** (1 - 1 / m),
}


def nu(B: Any, T: Any, m: int) -> Any:
    """nu(B) = 2m ||(B T^T)^{m-1} B||_2^{2/m} (the main text's objective, as (S51)-(S53) read it)."""
    return 2 * m * real_power(norm2(chain_power(B, T, m)), Fraction(2, m))


def multistart_maximum(negative: Callable[[np.ndarray], np.ndarray], size: int, rng: np.random.Generator,
                       starts: int = 10, rtol: float = 1e-9) -> tuple[float, int]:
    """max of -negative by L-BFGS from random starts (nu has local maxima, e.g. for rank-deficient T):
    the best value and how many starts reached it (within rtol)."""
    values = []
    for _ in range(starts):
        result = minimize(lambda x: value_and_gradient(negative, x), rng.standard_normal(size), jac=True,
                          method="L-BFGS-B", options=dict(maxiter=400))
        values.append(-float(result.fun))
    best = max(values)
    return best, sum(v >= best * (1 - rtol) for v in values)


@lru_cache(maxsize=8)
def nu_maxima(seed: int) -> tuple[tuple[str, int, np.ndarray, float, int], ...]:
    """max_{||B||_F=1} nu(B) by multistart L-BFGS (``multistart_maximum``), for one T of every shape and
    m = 1, 2, 3, 5: ground truth that never uses u, v or the closed form."""
    rng = np.random.default_rng(seed)
    out = []
    for cell in T_CELLS:
        T = random_targets(rng, 1, cell)[0]
        for m in (1, 2, 3, 5):
            def negative(X):
                B = X.reshape(-1, *T.shape)
                B = B / np.sqrt(frob2(B))[:, None, None]
                return -nu(B, np.broadcast_to(T, B.shape), m)
            out.append((cell.label().split(" Sigma_x")[0], m, T, *multistart_maximum(negative, T.size, rng)))
    return tuple(out)


@check("S53", method="float", printed=s53_printed, mutants=FLATTEST_VALUE_MUTANTS)
def s53_maximum_float(ctx: Context, formula) -> Measurement:
    """Ground truth max_{||B||_F=1} nu(B) from 10-start L-BFGS over B (never told u, v) for T of every shape and
    m = 1, 2, 3, 5, plus nu at random unit B (m = 1..8): the maximum equals the printed value and no
    B exceeds it. Details: the smallest slack at random B."""
    residuals, owners, agreeing = [], [], []
    for label, m, T, best, reached in nu_maxima(derive_seed(ctx.check_seed, "nu maxima")):
        value = formula(norm2(T), m)
        residuals.append(abs(best - value) / value)
        owners.append({"T": T, "m": m, "optimised max nu": best, "printed": value})
        agreeing.append(reached)
    slack_min = np.inf
    for cell, m, T, U, s, V, rng in t_batches(ctx, "S53"):
        for kind in ("gaussian", "rank one"):
            B = unit_frobenius_b(rng, U, V, kind)
            value = formula(s[:, 0], m)
            slack = (value - nu(B, T, m)) / value
            slack_min = min(slack_min, float(slack.min()))
            residuals += list(np.maximum(0.0, -slack))
            owners += [{"T": T[i], "B": B[i], "m": m} for i in range(T.shape[0])]
    return batch_measurement(np.array(residuals), 1e-8,
                             "L-BFGS in float64 with forward-difference gradients reaches the maximum to ~1e-10",
                             [c.label().split(" Sigma_x")[0] for c in T_CELLS], lambda i: to_jsonable(owners[i]),
                             **{"min slack at random B": slack_min,
                                "starts (of 10) reaching the best value: min": min(agreeing)})


@check("S53", method="mpmath", printed=s53_printed, mutants=FLATTEST_VALUE_MUTANTS)
def s53_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits: nu(u v^T) equals the printed maximum (to the working precision) and
    nu(B) < printed for random unit B, for exact-orthogonal T (distinct/deficient/repeated), m = 1..8."""
    residuals, owners = [], []
    rng = ctx.rng("mp")
    with mpmath.workdps(ctx.dps):
        for label, U, V, s in exact_targets(rng):
            Um, Vm = to_mpf(U), to_mpf(V)
            sm = [mpmath.mpf(x.numerator) / x.denominator for x in s]
            T = target_from_svd(Um, sm, Vm)
            G = to_mpf(rng.standard_normal(T.shape))
            for m in DEPTHS:
                value = formula(sm[0], mpmath.mpf(m))
                residuals.append(float(abs(nu(outer(Um[:, 0], Vm[:, 0]), T, m) - value) / value))
                residuals.append(float(max(0, nu(G / mpmath.sqrt(frob2(G)), T, m) - value) / value))
                owners += [{"T": label, "m": m, "B": "u v^T"}, {"T": label, "m": m, "B": "random"}]
    return batch_measurement(np.array(residuals), mp_tolerance(ctx), mp_reason(ctx), ["2x2..3x3, m=1..8"],
                             lambda i: owners[i])


@check("S53", method="sympy", printed=s53_printed, mutants=FLATTEST_VALUE_MUTANTS)
def s53_sympy_every_m(ctx: Context, formula) -> Measurement:
    """For symbolic m and sigma_max > 0: the printed maximum equals 2m (sigma_max^{m-1})^{2/m}, i.e.
    nu at B = u v^T given (S52); with (S51) bounding nu by the same value, this is (S53)."""
    m, s1 = sp.Symbol("m", positive=True, integer=True), sp.Symbol("sigma_max", positive=True)
    diff = sp.simplify(formula(s1, m) - 2 * m * (s1 ** (m - 1)) ** (sp.Integer(2) / m))
    return Measurement(0.0 if diff == 0 else 1.0, 0.0, SYMBOLIC, 1, ["symbolic m"],
                       counterexample=None if diff == 0 else {"difference": str(diff)})


# === (S54)-(S56): lambda_max(H_w) as the maximum of a quadratic form ================================

@dataclass
class Evidence:
    """A batch of minima with its ground truth: lambda_max of H = 2 Phi Phi^T (N x N, dense), the
    eigen-decomposition of the small operator 2 Phi^T Phi and Phi itself."""

    minima: Minima
    lam_H: np.ndarray
    small_values: np.ndarray
    small_vectors: np.ndarray
    small: np.ndarray
    Phi: np.ndarray

    @property
    def lam(self) -> np.ndarray:
        return self.small_values[:, -1]


def on_backend(ctx: Context, batch: Minima, fn: Callable[..., Any], *extra: np.ndarray) -> Any:
    """``fn(weights, data, *extra)`` for the minima of ``batch`` (``extra``: more per-instance arrays),
    on ``ctx.xp`` in chunks, back on the host."""
    m, d = len(batch.weights), batch.data

    def chunk(*arrays: Any) -> Any:
        return fn(list(arrays[:m]), ln.Data(*arrays[m:m + 5]), *arrays[m + 5:])

    return map_chunks(ctx, chunk, (*batch.weights, d.Sigma_x, d.Sigma_yx, d.T, d.Sigma_x_half, np.asarray(d.y2),
                                   *extra))


def gather(batch: Minima, ctx: Context | None = None) -> Evidence:
    """The ground truth of a batch, computed on the backend of ``ctx`` (NumPy without one)."""
    def truth(W: list, data: ln.Data) -> tuple:
        values, vectors, S = top_eigen(W, data)
        return hessian_lambda_max(W, data), values, vectors, S, lemma3.phi(W, data)

    lam_H, values, vectors, S, Phi = on_backend(ctx or Context(), batch, truth)
    return Evidence(batch, lam_H, values, vectors, S, Phi)


@lru_cache(maxsize=2)  # one check's variants share it; large under the thorough profile
def evidence(seed: int, cells: tuple[Cell, ...], families: tuple[str, ...], n: int, backend: str = "numpy",
             xp: Any = None) -> tuple[Evidence, ...]:
    """Minima of every (cell, family), n each, from the seed, with their ground truth computed on the
    backend ``xp`` (cached so that a check's variants all see, and pay for, one set)."""
    rng = np.random.default_rng(seed)
    ctx = Context(backend=backend, xp=xp)
    return tuple(gather(realize(rng, cell, family, n), ctx) for cell in cells for family in families)


def check_evidence(ctx: Context, cells: Sequence[Cell], families: Sequence[str] = FAMILIES,
                   counted: int | None = None, backend: bool = False) -> tuple[Evidence, ...]:
    """Evidence with at least ``ctx.profile.instances`` minima in the ``counted`` families (default all),
    computed on ``ctx.xp`` for checks registered with ``backend=True``, on NumPy otherwise."""
    n = max(4, -(-ctx.profile.instances // (len(cells) * (counted or len(families)))))
    on_xp = backend and ctx.xp is not None
    return evidence(derive_seed(ctx.check_seed, "evidence"), tuple(cells), tuple(families), n,
                    ctx.backend if on_xp else "numpy", ctx.xp if on_xp else None)


@lru_cache(maxsize=16)
def fd_evidence(seed: int, k: int = 3) -> tuple[tuple[Evidence, np.ndarray, np.ndarray], ...]:
    """Small shapes, every Sigma_x kind and family, k instances each, with lambda_max of the
    finite-difference Hessian (independent of Lemma 3) and that Hessian."""
    rng = np.random.default_rng(seed)
    out = []
    for cell in SMALL_CELLS:
        for sigma in SIGMA_KINDS:
            for family in FAMILIES:
                batch = realize(rng, cell.with_sigma(sigma), family, k)
                H = hessian_reference.finite_difference_hessian(batch.weights, batch.data)
                out.append((gather(batch), np.linalg.eigvalsh(H)[..., -1], H))
    return tuple(out)


def shared_fd(ctx: Context) -> tuple[tuple[Evidence, np.ndarray, np.ndarray], ...]:
    """One set per seed, shared by the checks of this section (finite differences are the slow part)."""
    return fd_evidence(derive_seed(ctx.seed, "section V finite differences"))


@lru_cache(maxsize=16)
def off_minimum(seed: int, k: int = 4) -> tuple[tuple[list[np.ndarray], ln.Data, np.ndarray], ...]:
    """Random weights that are NOT a global minimum of their data (small shapes): the loss Hessian
    there (finite differences) has a second-order term that 2 Phi Phi^T lacks."""
    rng = np.random.default_rng(seed)
    out = []
    for cell in SMALL_CELLS:
        W = [rng.standard_normal((k, a, b)) for b, a in zip(cell.dims, cell.dims[1:])]
        T = random_targets(rng, k, cell)
        data = ln.from_target(T, inst.random_sigma_half(rng, (k,), cell.d_x, "spd"))
        out.append((W, data, fd_lambda_max(W, data)))
    return tuple(out)


def basis_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The vectors e_i (i < n) and e_i + e_j (i < j), and the index pairs of the latter."""
    eye = np.eye(n)
    iu = np.triu_indices(n, 1)
    return np.vstack([eye, eye[iu[0]] + eye[iu[1]]]), np.stack(iu, axis=-1)


def gram_by_polarisation(f_values: ln.Array, n: int) -> ln.Array:
    """The Gram matrix G of a quadratic form f(x) = x^T G x from its values at e_i and e_i + e_j
    (batched over leading axes, any Array-API namespace): G_ii = f(e_i),
    G_ij = (f(e_i + e_j) - f(e_i) - f(e_j)) / 2 (pairs i < j in the order of ``basis_pairs``)."""
    xp = ln.namespace(f_values)
    iu = np.triu_indices(n, 1)
    pair = {(int(i), int(j)): n + p for p, (i, j) in enumerate(zip(*iu))}

    def entry(i: int, j: int) -> ln.Array:
        if i == j:
            return f_values[..., i]
        a, b = min(i, j), max(i, j)
        return (f_values[..., pair[a, b]] - f_values[..., a] - f_values[..., b]) / 2

    return xp.stack([xp.stack([entry(i, j) for j in range(n)], axis=-1) for i in range(n)], axis=-2)


def maximise_form(f: Callable[..., np.ndarray], n: int, rng: np.random.Generator, batch: int,
                  probes: int = 16, ctx: Context | None = None,
                  arrays: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """max over unit x of a quadratic form f given as a batched function of x ((batch, k, n) ->
    (batch, k)): the top eigenvalue of its polarisation Gram matrix, f at that eigenvector (equal
    for a true quadratic form), and the largest f at random unit probes (never above the max).
    ``f(x, *arrays)`` runs on the backend of ``ctx`` (NumPy without one), chunk by chunk over the
    per-instance ``arrays``; the probes are drawn on the host."""
    x = rng.standard_normal((batch, probes, n))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    X, _ = basis_pairs(n)

    def on_backend(x: ln.Array, *chunk: ln.Array) -> tuple:
        xp = ln.namespace(x)
        basis = xp.broadcast_to(xp.asarray(X), (x.shape[0], *X.shape))
        values, vectors = xp.linalg.eigh(gram_by_polarisation(f(basis, *chunk), n))
        at_top = f(vectors[:, None, :, -1], *chunk)[:, 0]
        return values[:, -1], at_top, xp.max(f(x, *chunk), axis=-1)

    return map_chunks(ctx or Context(), on_backend, (x, *arrays))


def form_residuals(found: tuple[np.ndarray, np.ndarray, np.ndarray], truth: np.ndarray) -> np.ndarray:
    """Relative distance of the Gram maximum and of f at its maximiser from the truth, and any
    probe value above the truth."""
    top, at_top, probes = found
    return np.maximum(np.maximum(np.abs(top - truth), np.abs(at_top - truth)), np.maximum(0.0, probes - truth)) / truth


def s54_printed(Phi, b):
    """(S54): the objective 2 ||Phi b||^2, maximised over ||b|| = 1 (b of shape (..., k, d_x d_y))."""
    total = np.sum if is_object(Phi) else ln.namespace(Phi).sum
    return 2 * total((Phi[..., None, :, :] @ b[..., :, :, None])[..., 0] ** 2, axis=-1)


S54_MUTANTS = {
    "missing factor 2": lambda Phi, b: s54_printed(Phi, b) / 2,
    "||Phi b|| not squared": lambda Phi, b: 2 * (s54_printed(Phi, b) / 2) ** 0.5,
    "factor 4": lambda Phi, b: 2 * s54_printed(Phi, b),
}


OFF_MINIMUM_GAP = 1e-6  # far above the finite-difference error (~1e-11 here)


def off_minimum_gaps(ctx: Context, maximum: Callable[[list[np.ndarray], ln.Data], np.ndarray]) -> np.ndarray:
    """Relative gaps, at random non-minima, between lambda_max of the finite-difference loss Hessian
    and the at-minimum expression: mostly > 0 shows the expression needs w in Omega."""
    return np.concatenate([np.abs(maximum(W, data) - fd) / np.abs(fd)
                           for W, data, fd in off_minimum(derive_seed(ctx.check_seed, "off"))])


def at_minimum_measurement(residuals: list, owners: list, shapes: set, fd_residuals: list,
                           off_gaps: np.ndarray) -> Measurement:
    """Holds when the expression matches lambda_max(H) at every minimum (dense eigensolver, and the
    finite-difference Hessian on small shapes) and misses the loss Hessian at >= 90 % of the random
    non-minima (by more than 1e-6)."""
    flat = np.concatenate(residuals)
    fd = float(np.max(np.concatenate(fd_residuals)))
    missed = float(np.mean(off_gaps > OFF_MINIMUM_GAP))
    meas = batch_measurement(flat, FLOAT_TOL, FLOAT_REASON + f"; against finite differences: {FD_TOL} ({FD_REASON})",
                             sorted(shapes), lambda i: owners[i](),
                             **{"max relative deviation from the finite-difference Hessian (small shapes)": fd,
                                "off the minimum: fraction of points where it misses the loss Hessian by > 1e-6": missed,
                                "off the minimum: min and median relative gap": [float(off_gaps.min()), float(np.median(off_gaps))]})
    meas.holds = bool(meas.ok and fd <= FD_TOL and missed >= 0.9)
    return meas


def s54_maximum(formula, Phi: np.ndarray, rng: np.random.Generator,
                ctx: Context | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = Phi.shape[-1]
    return maximise_form(lambda b, P: formula(P, b), n, rng, Phi.shape[0], ctx=ctx, arrays=(Phi,))


@check("S54", method="float", printed=s54_printed, mutants=S54_MUTANTS, backend=True)
def s54_float(ctx: Context, formula) -> Measurement:
    """At minima of every kind (flattest families and random), all shapes, Sigma_x = I, c I, SPD:
    max_{||b||=1} 2||Phi b||^2 (top eigenvalue of the polarisation Gram matrix of the printed
    objective, plus random probes) equals lambda_max of H = 2 Phi Phi^T (dense N x N eigensolver);
    on small shapes also lambda_max of the finite-difference Hessian. Off the minimum the same
    expression misses the loss Hessian's lambda_max (shown: it needs w in Omega). Phi, the eigensolvers
    and the objective run on ``ctx.xp``; the finite-difference and off-minimum comparisons on the host."""
    rng = ctx.rng("probes")
    residuals, owners, shapes, fd_res = [], [], set(), []
    for ev in check_evidence(ctx, CELLS_ALL_SIGMA, backend=True):
        residuals.append(form_residuals(s54_maximum(formula, ev.Phi, rng, ctx), ev.lam_H))
        owners += [lambda i=i, b=ev.minima: b.instance(i) for i in range(ev.minima.n)]
        shapes.add(ev.minima.cell.label())
    for ev, fd, _ in shared_fd(ctx):
        fd_res.append(form_residuals(s54_maximum(formula, ev.Phi, rng), fd))
    gaps = off_minimum_gaps(ctx, lambda W, data: s54_maximum(formula, lemma3.phi(W, data), rng)[0])
    return at_minimum_measurement(residuals, owners, shapes, fd_res, gaps)


def s55_printed(A, B, B_k, R):
    """(S55): ||Phi_k b||^2 = ||(W_m...W_{k+1})^T B (W_{k-1}...W_1 Sigma_x^{1/2})^T||_F^2 (A = W_m...W_{k+1},
    B_k = W_{k-1}...W_1, R = Sigma_x^{1/2})."""
    return frob2(tr(A) @ B @ tr(B_k @ R))


S55_MUTANTS = {
    "Sigma_x^{1/2} dropped": lambda A, B, B_k, R: frob2(tr(A) @ B @ tr(B_k)),
    "A_k not transposed": lambda A, B, B_k, R: frob2(A @ B @ tr(B_k @ R)),
    "B transposed": lambda A, B, B_k, R: frob2(tr(A) @ tr(B) @ tr(B_k @ R)),
    "Sigma_x instead of Sigma_x^{1/2}": lambda A, B, B_k, R: frob2(tr(A) @ B @ tr(B_k @ R @ R)),
}


def random_rational(rng: np.random.Generator, shape: tuple[int, ...], spread: int = 5) -> np.ndarray:
    """Random rationals p/q (|p| <= spread, 1 <= q <= 4) in an object array."""
    num = rng.integers(-spread, spread + 1, size=shape)
    den = rng.integers(1, 5, size=shape)
    return np.vectorize(lambda a, b: Fraction(int(a), int(b)), otypes=[object])(num, den)


def invertible_rational(rng: np.random.Generator, d: int) -> np.ndarray:
    """A random rational d x d matrix with nonzero determinant (redrawn until it has one)."""
    while True:
        M = random_rational(rng, (d, d))
        if to_sympy(M).det() != 0:
            return M


def rational_spd_half(rng: np.random.Generator, d: int) -> np.ndarray:
    """A rational symmetric positive definite R (diagonally dominant): Sigma_x = R^2."""
    G = random_rational(rng, (d, d), 2)
    R = (G + tr(G)) / 2
    for i in range(d):
        R[i, i] = sum(abs(x) for x in R[i]) + 1
    return R


def hp_layer_values(rng: np.random.Generator, roots: Sequence[Any], m: int, family: str) -> list[list[Any]]:
    """Diagonal values c[i][q] of the layers of a flattest-type minimum with prod_i c[i][q] = roots[q]^m.
    'rebalanced flattest' (mpf only): minima.rebalanced_values, renormalised at the working precision
    so that the products are exact to it and c[i][0] = roots[0]."""
    if family != "rebalanced flattest":
        return [list(roots) for _ in range(m)]
    s = np.array([float(r) ** m for r in roots])
    base = minima.rebalanced_values(s[None], m, rng)[0]
    values = [[mpmath.mpf(float(base[i, q])) for q in range(len(roots))] for i in range(m)]
    for q, r in enumerate(roots):
        if r == 0:
            continue
        scale = mpmath.root(r**m / mpmath.fprod(values[i][q] for i in range(m)), m)
        for i in range(m):
            values[i][q] = roots[0] if q == 0 else values[i][q] * scale
    return values


def hp_minimum(rng: np.random.Generator, dims: Sequence[int], roots: Sequence[Any], family: str,
               convert: Callable[[np.ndarray], np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """A global minimum of the given kind, exact (Fractions, ``convert`` = identity) or at the working
    precision (``convert`` = to_mpf), for T = U diag(roots^m) V^T with exactly orthogonal rational U, V;
    returns (weights, U, V). Layers C_i = diag(c[i]) (C_1 = . V^T, C_m = U .), then conjugated by
    rational orthogonal (rotated, rebalanced) or rational random (S104) hidden-layer matrices."""
    m = len(dims) - 1
    U, V = convert(rational_orthogonal(rng, dims[-1])), convert(rational_orthogonal(rng, dims[0]))
    values = hp_layer_values(rng, roots, m, family)
    zero = roots[0] * 0
    C = []
    for i in range(m):
        D = np.array([[zero] * dims[i] for _ in range(dims[i + 1])], dtype=object)
        for q in range(min(dims[i], dims[i + 1], len(roots))):
            D[q, q] = values[i][q]
        C.append(D)
    C[0] = C[0] @ tr(V)
    C[-1] = U @ C[-1]
    if family == "canonical" or m == 1:
        return C, U, V
    hidden = dims[1:-1]
    if family == RANDOM:
        M = [convert(invertible_rational(rng, d)) for d in hidden]
        return minima.conjugate(C, M, [inverse(x) for x in M]), U, V
    O = [convert(rational_orthogonal(rng, d)) for d in hidden]
    return minima.conjugate(C, O, [tr(x) for x in O]), U, V


HP_CASES = (  # (dims, roots as rationals: sigma_q = root_q^m, label)
    ((2, 2, 2), (Fraction(3, 2), Fraction(1, 2)), "2x2x2"),
    ((2, 3, 2), (Fraction(4, 5), Fraction(2, 3)), "2x3x2"),
    ((3, 2, 2, 2), (Fraction(5, 4), Fraction(1, 3)), "3x2x2x2"),
    ((2, 2, 2, 3), (Fraction(2, 3), Fraction(0)), "2x2x2x3 rank 1"),
    ((2, 2, 2, 2), (Fraction(6, 5), Fraction(6, 5)), "2x2x2x2 sigma1=sigma2"),
)


@dataclass
class HPMinimum:
    label: str
    family: str
    weights: list[np.ndarray]
    data: ln.Data
    U: np.ndarray
    V: np.ndarray
    roots: tuple[Any, ...]

    @property
    def m(self) -> int:
        return len(self.weights)

    @property
    def sigma_max(self) -> Any:
        return self.roots[0] ** self.m


def hp_minima(rng: np.random.Generator, families: Sequence[str], sigmas: Sequence[str] = ("identity",)) -> list[HPMinimum]:
    """Minima at the working precision (mpf) for HP_CASES x families x Sigma_x kinds (identity,
    scaled: 3/2 I, spd: a rational SPD square root)."""
    out = []
    for dims, roots, label in HP_CASES:
        r = [mpmath.mpf(x.numerator) / x.denominator for x in roots]
        for family in families:
            W, U, V = hp_minimum(rng, dims, r, family, to_mpf)
            for sigma in sigmas:
                R = {"identity": np.eye(dims[0], dtype=int).astype(object),
                     "scaled": np.eye(dims[0], dtype=int).astype(object) * Fraction(3, 2),
                     "spd": rational_spd_half(rng, dims[0])}[sigma]
                data = ln.from_target(ln.end_to_end(W), to_mpf(R))
                out.append(HPMinimum(f"{label} Sigma_x={sigma}", family, W, data, U, V, tuple(r)))
    return out


def mp_eigenvalues(M: np.ndarray) -> list:
    """Eigenvalues (ascending) of a symmetric mpf object matrix at the working precision."""
    return sorted(mpmath.eigsy(mpmath.matrix(M.tolist()), eigvals_only=True))


def mp_max_form(f: Callable[[np.ndarray], Any], n: int) -> Any:
    """Top eigenvalue of the polarisation Gram matrix of a quadratic form f on mpf vectors of length n."""
    eye = [np.array([mpmath.mpf(int(i == j)) for j in range(n)], dtype=object) for i in range(n)]
    G = np.empty((n, n), dtype=object)
    for i in range(n):
        G[i, i] = f(eye[i])
    for i in range(n):
        for j in range(i + 1, n):
            G[i, j] = G[j, i] = (f(eye[i] + eye[j]) - G[i, i] - G[j, j]) / 2
    return mp_eigenvalues(G)[-1]


@lru_cache(maxsize=16)
def hp_evidence(seed: int, dps: int, families: tuple[str, ...], sigmas: tuple[str, ...]) -> tuple:
    """hp_minima with lambda_max of H = 2 Phi Phi^T (mpmath eigsy of the N x N matrix) and Phi."""
    with mpmath.workdps(dps):
        return tuple((hp, mp_eigenvalues(lemma3.hessian(hp.weights, hp.data))[-1], lemma3.phi(hp.weights, hp.data))
                     for hp in hp_minima(np.random.default_rng(seed), families, sigmas))


def check_hp_evidence(ctx: Context, families: Sequence[str], sigmas: Sequence[str] = SIGMA_KINDS) -> tuple:
    """Shared by the high-precision checks of this section (one set per seed: eigsy at 50 digits is slow)."""
    return hp_evidence(derive_seed(ctx.seed, "section V high precision"), ctx.dps, tuple(families), tuple(sigmas))


@check("S54", method="mpmath", printed=s54_printed, mutants=S54_MUTANTS)
def s54_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits, canonical and random minima (2x2x2 .. 3x2x2x2, deficient rank,
    sigma_1 = sigma_2; Sigma_x = I and SPD): the maximum of 2||Phi b||^2 over unit b (Gram matrix by
    polarisation, mpmath eigsy) equals lambda_max of H = 2 Phi Phi^T (mpmath eigsy, N x N)."""
    residuals, owners = [], []
    with mpmath.workdps(ctx.dps):
        for hp, truth, Phi in check_hp_evidence(ctx, ("canonical", RANDOM), ("identity", "spd")):
            top = mp_max_form(lambda b: formula(Phi, b[None, :])[0], Phi.shape[-1])
            residuals.append(float(abs(top - truth) / truth))
            owners.append({"case": hp.label, "family": hp.family})
    return batch_measurement(np.array(residuals), mp_tolerance(ctx), mp_reason(ctx),
                             sorted({o["case"] for o in owners}), lambda i: owners[i])


def s55_sides(formula, weights: Sequence[Any], data: ln.Data, B: Any) -> tuple[list, list]:
    """Per layer k: ||Phi_k vec(B)||^2 with Phi_k from lemma3.phi_blocks (Kronecker products, (S47)),
    and the printed right side of (S55)."""
    b = ln.vec(B)
    total = np.sum if is_object(b) else ln.namespace(b).sum
    truth = [total((P @ b[..., None])[..., 0] ** 2, axis=-1) for P in lemma3.phi_blocks(list(weights), data)]
    printed = [formula(A, B, Bk, data.Sigma_x_half) for A, Bk in zip(ln.above(list(weights)), ln.below(list(weights)))]
    return truth, printed


@check("S55", method="exact", printed=s55_printed, mutants=S55_MUTANTS)
def s55_exact(ctx: Context, formula) -> Measurement:
    """Exact rationals: random weights (any point, (S55) needs no minimum) of shapes 2x2x2, 2x3x4,
    3x2x2x1, 1x3x2x2x2, rational SPD Sigma_x^{1/2} and identity, random B: ||Phi_k b||^2 with the
    Kronecker-built Phi_k of (S47) equals the printed Frobenius form for every k, exactly."""
    rng = ctx.rng("exact")
    residuals, owners = [], []
    for dims in ((2, 2, 2), (2, 3, 4), (3, 2, 2, 1), (1, 3, 2, 2, 2)):
        for sigma in ("identity", "spd"):
            W = [random_rational(rng, (a, b)) for b, a in zip(dims, dims[1:])]
            R = rational_spd_half(rng, dims[0]) if sigma == "spd" else np.eye(dims[0], dtype=int).astype(object)
            data = ln.from_target(ln.end_to_end(W), R)
            B = random_rational(rng, (dims[-1], dims[0]))
            for k, (t, p) in enumerate(zip(*s55_sides(formula, W, data, B)), start=1):
                residuals.append(0.0 if t == p else 1.0)
                owners.append({"dims": dims, "Sigma_x^(1/2)": str(R.tolist()), "k": k, "truth": str(t), "printed": str(p)})
    return batch_measurement(np.array(residuals), 0.0, EXACT, ["2x2x2", "2x3x4", "3x2x2x1", "1x3x2x2x2"],
                             lambda i: owners[i])


@check("S55", method="float", printed=s55_printed, mutants=S55_MUTANTS, backend=True)
def s55_float(ctx: Context, formula) -> Measurement:
    """Float, at minima of every kind and shape and Sigma_x = I, c I, SPD, random B: ||Phi_k b||^2
    (Kronecker Phi_k, (S47)) equals the printed Frobenius form for every k; both sides on ``ctx.xp``."""
    rng = ctx.rng("B")
    residuals, owners, shapes = [], [], set()
    for ev in check_evidence(ctx, CELLS_ALL_SIGMA, (FLATTEST[1], RANDOM), backend=True):
        b = ev.minima
        B = rng.standard_normal((b.n, b.cell.d_y, b.cell.d_x))
        sides = on_backend(ctx, b, lambda W, data, B: tuple(x for side in s55_sides(formula, W, data, B) for x in side), B)
        truth, printed = sides[:b.cell.m], sides[b.cell.m:]
        scale = sum(truth)
        residuals.append(np.max([np.abs(t - p) / scale for t, p in zip(truth, printed)], axis=0))
        owners += [lambda i=i, b=b, B=B: b.instance(i, B=B[i]) for i in range(b.n)]
        shapes.add(b.cell.label())
    return batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON, sorted(shapes), lambda i: owners[i]())


def s56_printed(As, Bks, R, B):
    """(S56): the objective 2 sum_k ||(W_m...W_{k+1})^T B Sigma_x^{1/2} (W_{k-1}...W_1)^T||_F^2, maximised
    over ||B||_F = 1 (A_k = W_m...W_{k+1}, B_k = W_{k-1}...W_1)."""
    return 2 * sum(frob2(tr(A) @ B @ R @ tr(Bk)) for A, Bk in zip(As, Bks))


S56_MUTANTS = {
    "Sigma_x^{1/2} dropped": lambda As, Bks, R, B: 2 * sum(frob2(tr(A) @ B @ tr(Bk)) for A, Bk in zip(As, Bks)),
    "missing factor 2": lambda As, Bks, R, B: s56_printed(As, Bks, R, B) / 2,
    "Sigma_x instead of Sigma_x^{1/2}": lambda As, Bks, R, B: s56_printed(As, Bks, R @ R, B),
    "B transposed": lambda As, Bks, R, B: 2 * sum(frob2(tr(A) @ tr(B) @ R @ tr(Bk)) for A, Bk in zip(As, Bks)),
}


def s56_objective(formula, weights: Sequence[Any], R: Any) -> Callable[[np.ndarray], np.ndarray]:
    """b -> (S56)'s objective at B = unvec(b), batched over the weights' batch axis and b's k axis."""
    batch = weights[0].shape[:-2]
    xp = ln.namespace(*weights)
    lift = lambda M: xp.expand_dims(xp.broadcast_to(M, batch + M.shape[-2:]), axis=1)  # noqa: E731  (A_m = I is unbatched)
    As = [lift(A) for A in ln.above(list(weights))]
    Bks = [lift(Bk) for Bk in ln.below(list(weights))]
    d_y, d_x = As[0].shape[-2], Bks[0].shape[-1]
    return lambda b: formula(As, Bks, xp.expand_dims(R, axis=1), ln.unvec(b, d_y, d_x))


@check("S56", method="float", printed=s56_printed, mutants=S56_MUTANTS, backend=True)
def s56_float(ctx: Context, formula) -> Measurement:
    """At minima of every kind, all shapes, Sigma_x = I, c I, SPD: the maximum over ||B||_F = 1 of the
    printed objective (polarisation Gram matrix, random probes) equals lambda_max of H = 2 Phi Phi^T
    (dense N x N), both on ``ctx.xp``, and on small shapes lambda_max of the finite-difference Hessian;
    off the minimum it misses the loss Hessian (it needs w in Omega); those two on the host."""
    rng = ctx.rng("probes")
    residuals, owners, shapes, fd_res = [], [], set(), []

    def maximum(weights, data, on: Context | None = None):
        n, m = data.d_x * data.d_y, len(weights)
        objective = lambda b, *arrays: s56_objective(formula, list(arrays[:m]), arrays[m])(b)  # noqa: E731
        return maximise_form(objective, n, rng, weights[0].shape[0], ctx=on,
                             arrays=(*weights, np.broadcast_to(data.Sigma_x_half, (weights[0].shape[0], data.d_x, data.d_x))))

    for ev in check_evidence(ctx, CELLS_ALL_SIGMA, backend=True):
        residuals.append(form_residuals(maximum(ev.minima.weights, ev.minima.data, ctx), ev.lam_H))
        owners += [lambda i=i, b=ev.minima: b.instance(i) for i in range(ev.minima.n)]
        shapes.add(ev.minima.cell.label())
    for ev, fd, _ in shared_fd(ctx):
        fd_res.append(form_residuals(maximum(ev.minima.weights, ev.minima.data), fd))
    gaps = off_minimum_gaps(ctx, lambda W, data: maximum(W, data)[0])
    return at_minimum_measurement(residuals, owners, shapes, fd_res, gaps)


@check("S56", method="mpmath", printed=s56_printed, mutants=S56_MUTANTS)
def s56_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits, canonical and random minima (HP_CASES; Sigma_x = I and SPD): the
    maximum over ||B||_F = 1 of the printed objective (polarisation Gram, mpmath eigsy) equals
    lambda_max of H = 2 Phi Phi^T (mpmath eigsy)."""
    residuals, owners = [], []
    with mpmath.workdps(ctx.dps):
        for hp, truth, _ in check_hp_evidence(ctx, ("canonical", RANDOM), ("identity", "spd")):
            W = [x[None] for x in hp.weights]
            f = s56_objective(formula, W, hp.data.Sigma_x_half[None])
            top = mp_max_form(lambda b: f(b[None, None, :])[0, 0], hp.data.d_x * hp.data.d_y)
            residuals.append(float(abs(top - truth) / truth))
            owners.append({"case": hp.label, "family": hp.family})
    return batch_measurement(np.array(residuals), mp_tolerance(ctx), mp_reason(ctx),
                             sorted({o["case"] for o in owners}), lambda i: owners[i])


# === (S57)-(S58): the objective at the canonical solution ============================================

def s_roots(s: Any, dims: Sequence[int]) -> list[Any]:
    """The canonical factors S_i^{1/m}: d_i x d_{i-1} diagonal matrices of sigma_q^{1/m} (batched float,
    or one matrix of sympy/mpf values)."""
    m = len(dims) - 1
    if hasattr(s, "__array_namespace__") and not is_object(s):  # float arrays of any namespace
        return [ln.diag_rect(s ** (1.0 / m), dims[i + 1], dims[i]) for i in range(m)]
    return diag_factors([real_power(x, Fraction(1, m)) for x in s], dims)


def diag_factors(roots: Sequence[Any], dims: Sequence[int]) -> list[Any]:
    """d_i x d_{i-1} diagonal matrices with the given diagonal (sympy values, or any field in object arrays)."""
    out = []
    for i in range(len(dims) - 1):
        D = sp.zeros(dims[i + 1], dims[i]) if isinstance(roots[0], sp.Basic) else \
            np.array([[roots[0] * 0] * dims[i] for _ in range(dims[i + 1])], dtype=object)
        for q in range(min(dims[i], dims[i + 1], len(roots))):
            D[q, q] = roots[q]
        out.append(D)
    return out


def factor_product(factors: Sequence[Any], first: int, last: int, size: int, like: Any) -> Any:
    """factors[last-1] ... factors[first-1] (1-based, inclusive); the identity of ``size`` when empty."""
    if last < first:
        return eye_as(like, size)
    out = factors[first - 1]
    for F in factors[first:last]:
        out = F @ out
    return out


def canonical_sum(factors: Sequence[Any], Bt: Any, dims: Sequence[int]) -> Any:
    """sum_k ||(S_m...S_{k+1})^T Bt (S_{k-1}...S_1)^T||_F^2 for factors S_i (the right side of (S57)
    with Bt = U^T B V; the left side of (S59))."""
    m = len(dims) - 1
    total = 0
    for k in range(1, m + 1):
        left = factor_product(factors, k + 1, m, dims[k], Bt)
        right = factor_product(factors, 1, k - 1, dims[0], Bt)
        total = total + frob2(tr(left) @ Bt @ tr(right))
    return total


def s57_printed(weights, roots, U, V, B):
    """(S57): sum_k ||(W_m..W_{k+1})^T B (W_{k-1}..W_1)^T||_F^2 = sum_k ||(prod S_i^{1/m})^T U^T B V (prod S_j^{1/m})^T||_F^2
    (``roots`` = the factors S_i^{1/m}); returns (left side, right side)."""
    lhs = sum(frob2(tr(A) @ B @ tr(Bk)) for A, Bk in zip(ln.above(list(weights)), ln.below(list(weights))))
    return lhs, canonical_sum(roots, tr(U) @ B @ V, ln.widths(list(weights)))


S57_MUTANTS = {
    "U instead of U^T": lambda W, S, U, V, B: (s57_printed(W, S, U, V, B)[0], canonical_sum(S, U @ B @ V, ln.widths(list(W)))),
    "V^T instead of V": lambda W, S, U, V, B: (s57_printed(W, S, U, V, B)[0], canonical_sum(S, tr(U) @ B @ tr(V), ln.widths(list(W)))),
    "factors S_i^{1/m} squared": lambda W, S, U, V, B: s57_printed(W, [x * x for x in S], U, V, B),
}


def relative_gap(pair: tuple[Any, Any]) -> Any:
    a, b = pair
    return np.abs(a - b) / np.maximum(np.abs(a), 1e-300)


def per_family_evidence(evs: Iterable[Evidence], values: Callable[[Evidence], np.ndarray]) -> dict[str, float]:
    """Worst value per family."""
    return family_table((ev.minima.family, float(np.max(values(ev)))) for ev in evs)


def s57_sides(ctx: Context, formula, b: Minima, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sides of (S57) at the minima of ``b`` (canonical factors of their T on the right), on ``ctx.xp``."""
    return on_backend(ctx, b, lambda W, data, B, s, U, V: tuple(formula(W, s_roots(s, b.cell.dims), U, V, B)),
                      B, b.s, b.U, b.V)


@check("S57", method="float", printed=s57_printed, mutants=S57_MUTANTS, backend=True)
def s57_canonical_float(ctx: Context, formula) -> Measurement:
    """At the canonical solution (27) of every shape (Sigma_x = I), random B: both sides of (S57), on
    ``ctx.xp``. Details: the same identity at other minima (with T's canonical factors on the right): it
    also holds at rotated flattest minima (orthogonal conjugation keeps the norms), not at rebalanced or
    random ones; the check requires it to fail at random minima of depth m >= 2 (it discriminates)."""
    rng = ctx.rng("B")
    residuals, owners, shapes, families = [], [], set(), {}
    for ev in check_evidence(ctx, CELLS, counted=1):
        b = ev.minima
        B = rng.standard_normal((b.n, b.cell.d_y, b.cell.d_x))
        gap = relative_gap(s57_sides(ctx, formula, b, B))
        if b.family == RANDOM and b.cell.m > 1:  # with m = 1 the only minimum is W_1 = T
            families[b.family] = min(families.get(b.family, np.inf), float(np.min(gap)))
        elif b.family != RANDOM:
            families[b.family] = max(families.get(b.family, 0.0), float(np.max(gap)))
        if b.family == "canonical":
            residuals.append(gap)
            owners += [lambda i=i, b=b, B=B: b.instance(i, B=B[i]) for i in range(b.n)]
            shapes.add(b.cell.label())
    meas = batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON, sorted(shapes), lambda i: owners[i](),
                             **{f"{f}: {'min' if f == RANDOM else 'max'} relative gap": g for f, g in families.items()})
    meas.holds = bool(meas.ok and families[RANDOM] > NEGATIVE_MARGIN)
    return meas


@check("S57", method="exact", printed=s57_printed, mutants=S57_MUTANTS)
def s57_exact(ctx: Context, formula) -> Measurement:
    """Exact rationals: canonical solutions with exactly orthogonal rational U, V and rational
    sigma_q^{1/m} (2x2x2, 2x3x2, 3x2x2x2, rank 1, sigma_1 = sigma_2), rational B: both sides of (S57)
    are equal; at random minima (S104) they are not (details)."""
    rng = ctx.rng("exact")
    residuals, owners, random_equal = [], [], 0
    for dims, roots, label in HP_CASES:
        for family in ("canonical", RANDOM):
            W, U, V = hp_minimum(rng, dims, list(roots), family, lambda x: x)
            B = random_rational(rng, (dims[-1], dims[0]))
            lhs, rhs = formula(W, diag_factors(list(roots), dims), U, V, B)
            if family == "canonical":
                residuals.append(0.0 if lhs == rhs else 1.0)
                owners.append({"case": label, "lhs": str(lhs), "rhs": str(rhs)})
            else:
                random_equal += int(lhs == rhs)
    meas = batch_measurement(np.array(residuals), 0.0, EXACT, [c[2] for c in HP_CASES], lambda i: owners[i],
                             **{"random minima where the two sides are equal": f"{random_equal} of {len(HP_CASES)}"})
    meas.holds = bool(meas.ok and random_equal < len(HP_CASES))
    return meas


def s56_value_at(weights: Sequence[ln.Array], data: ln.Data, B: ln.Array) -> ln.Array:
    """(S56)'s objective 2 sum_k ||A_k^T B Sigma_x^{1/2} B_k^T||_F^2 at minima, as the quadratic form of the
    small operator 2 Phi^T Phi (Sigma_x included): b^T (2 Phi^T Phi) b (any Array-API namespace)."""
    S = lemma3.small_operator(list(weights), data)
    b = ln.vec(B)
    return ln.namespace(S).sum(b * (S @ b[..., None])[..., 0], axis=-1)


@check("S57", method="float", printed=s57_printed, mutants=S57_MUTANTS, without="Sigma_x = I", backend=True)
def s57_is_the_s56_objective(ctx: Context, formula) -> Measurement:
    """(S57) is introduced as (S56)'s objective at the canonical solution. With Sigma_x = I, c I and SPD
    (every shape, random B): 2 x the printed right side of (S57) against (S56)'s objective computed as
    b^T (2 Phi^T Phi) b with Sigma_x kept, both on ``ctx.xp``. Fails once Sigma_x != I; details: the ratio
    of the two and the smallest counterexample."""
    rng = ctx.rng("B")
    residuals, owners, sizes, ratio = [], [], [], {}
    for ev in check_evidence(ctx, CELLS_ALL_SIGMA, ("canonical",), backend=True):
        b = ev.minima
        B = rng.standard_normal((b.n, b.cell.d_y, b.cell.d_x))
        printed = 2 * s57_sides(ctx, formula, b, B)[1]
        truth = on_backend(ctx, b, lambda W, data, B: s56_value_at(W, data, B), B)
        residuals += list(np.abs(printed - truth) / truth)
        owners += [lambda i=i, b=b, B=B, p=printed, t=truth: b.instance(
            i, B=B[i], **{"2 x (S57) right side": p[i], "(S56) objective with Sigma_x": t[i]}) for i in range(b.n)]
        sizes += [(b.cell.size(), b.cell.sigma != "scaled")] * b.n
        r = truth / printed
        lo, hi = ratio.get(b.cell.sigma, (np.inf, -np.inf))
        ratio[b.cell.sigma] = (min(lo, float(r.min())), max(hi, float(r.max())))
    return sized_measurement(residuals, owners, sizes, FLOAT_TOL, FLOAT_REASON, sorted({c.label() for c in CELLS_ALL_SIGMA}),
                             **{f"(S56) objective / 2 x (S57), Sigma_x={k}: range": v for k, v in ratio.items()})


def sized_measurement(residuals: Sequence[float], owners: Sequence[Callable[[], dict]], sizes: Sequence[tuple],
                      tolerance: float, reason: str, shapes: Sequence[str], **details: Any) -> Measurement:
    """Like batch_measurement, but the counterexample kept is the failing instance of smallest size."""
    residuals = np.asarray(residuals, dtype=float)
    pick = smallest_failing(list(residuals), tolerance, list(sizes))
    return Measurement(float(np.max(residuals)), tolerance, reason, int(residuals.size), list(shapes),
                       counterexample=None if pick is None else {**owners[pick](), "residual": float(residuals[pick])},
                       details=details)


def s58_printed(X, Y, U, V, B):
    """(S58): ||X^T U^T B||_F^2 = ||X^T U^T B V||_F^2 and ||B V Y^T||_F^2 = ||U^T B V Y^T||_F^2, with
    X = prod_{i=2}^m S_i^{1/m}, Y = prod_{j=1}^{m-1} S_j^{1/m}; returns the two (left, right) pairs."""
    return (frob2(tr(X) @ tr(U) @ B), frob2(tr(X) @ tr(U) @ B @ V)), (frob2(B @ V @ tr(Y)), frob2(tr(U) @ B @ V @ tr(Y)))


S58_MUTANTS = {
    "U^T dropped on the right of the first": lambda X, Y, U, V, B: ((s58_printed(X, Y, U, V, B)[0][0], frob2(tr(X) @ B @ V)),
                                                                     s58_printed(X, Y, U, V, B)[1]),
    "V^T instead of V in the second": lambda X, Y, U, V, B: (s58_printed(X, Y, U, V, B)[0],
                                                              (frob2(B @ V @ tr(Y)), frob2(tr(U) @ B @ tr(V) @ tr(V) @ tr(Y)))),
    "spectral instead of Frobenius norm on the right": lambda X, Y, U, V, B: (
        (s58_printed(X, Y, U, V, B)[0][0], norm2(tr(X) @ tr(U) @ B @ V) ** 2), s58_printed(X, Y, U, V, B)[1]),
}


def s58_ends(factors: Sequence[Any], dims: Sequence[int], like: Any) -> tuple[Any, Any]:
    m = len(dims) - 1
    return factor_product(factors, 2, m, dims[1], like), factor_product(factors, 1, m - 1, dims[0], like)


@check("S58", method="exact", printed=s58_printed, mutants=S58_MUTANTS)
def s58_exact(ctx: Context, formula) -> Measurement:
    """Exact rationals: exactly orthogonal rational U, V (Cayley), rational canonical factors of
    HP_CASES, rational B: both equalities of (S58) hold exactly; with U, V replaced by random
    non-orthogonal rational matrices they fail (details; required: it is orthogonality that is used)."""
    rng = ctx.rng("exact")
    residuals, owners, fails_without = [], [], 0
    for dims, roots, label in HP_CASES:
        factors = diag_factors(list(roots), dims)
        X, Y = s58_ends(factors, dims, factors[0])
        U, V = rational_orthogonal(rng, dims[-1]), rational_orthogonal(rng, dims[0])
        B = random_rational(rng, (dims[-1], dims[0]))
        for orthogonal in (True, False):
            if not orthogonal:
                U, V = random_rational(rng, U.shape), random_rational(rng, V.shape)
            equal = all(a == b for a, b in formula(X, Y, U, V, B))
            if orthogonal:
                residuals.append(0.0 if equal else 1.0)
                owners.append({"case": label})
            else:
                fails_without += int(not equal)
    meas = batch_measurement(np.array(residuals), 0.0, EXACT, [c[2] for c in HP_CASES], lambda i: owners[i],
                             **{"fails with non-orthogonal U, V": f"{fails_without} of {len(HP_CASES)}"})
    meas.holds = bool(meas.ok and fails_without == len(HP_CASES))
    return meas


@check("S58", method="float", printed=s58_printed, mutants=S58_MUTANTS, backend=True)
def s58_float(ctx: Context, formula) -> Measurement:
    """Float, every shape of the domain: U, V from the SVD of T (host), the canonical factors, random B:
    both equalities of (S58), on ``ctx.xp``."""
    rng = ctx.rng("B")
    residuals, owners, shapes = [], [], set()
    for cell in CELLS:
        T = random_targets(rng, max(4, -(-ctx.profile.instances // len(CELLS))), cell)
        U, s, Vt = clean_svd(T)
        B = rng.standard_normal(T.shape)

        def sides(s, U, V, B, dims=cell.dims):
            factors = s_roots(s, dims)
            (a, b), (c, d) = formula(*s58_ends(factors, dims, factors[0]), U, V, B)
            return a, b, c, d

        a, b, c, d = map_chunks(ctx, sides, (s, U, np.swapaxes(Vt, -1, -2), B))
        r = np.maximum(relative_gap((a, b)), relative_gap((c, d)))
        residuals.append(r)
        owners += [{"T": T[i], "B": B[i], "dims": cell.dims} for i in range(T.shape[0])]
        shapes.add(cell.label())
    return batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON, sorted(shapes),
                             lambda i: to_jsonable(owners[i]))


# === (S59)-(S64): the objective in the singular values ===============================================

SYM_SHAPES = ((2, 2, 2), (2, 3, 3), (3, 2, 3), (3, 3, 2))  # (d_y, d_x, hidden width); 3x3 through width 2: rank 2
SYM_KINDS = ("distinct", "deficient", "repeated")


def sympy_diag(values: Sequence[sp.Expr], rows: int, cols: int) -> sp.Matrix:
    D = sp.zeros(rows, cols)
    for q in range(min(rows, cols, len(values))):
        D[q, q] = values[q]
    return D


def s_power(sig: Sequence[Any], d_y: int, d_x: int) -> Callable[[Fraction], Any]:
    """alpha -> S^alpha, the d_y x d_x diagonal of sigma_q^alpha of (S59) (0^0 = 1)."""
    if hasattr(sig, "__array_namespace__") and not is_object(sig):  # float arrays of any namespace
        return lambda alpha: ln.diag_rect(real_power(sig, alpha), d_y, d_x)
    if isinstance(sig[0], sp.Basic):
        return lambda alpha: sympy_diag([real_power(x, alpha) for x in sig], d_y, d_x)
    sig = np.asarray(sig)
    if sig.dtype == object:
        return lambda alpha: diag_factors([real_power(x, alpha) for x in sig], (d_x, d_y))[0]
    return lambda alpha: ln.diag_rect(real_power(sig, alpha), d_y, d_x)


@dataclass(frozen=True)
class SymCase:
    """A symbolic instance: singular values (symbols; 0 or repeated by kind), B~ of symbols, widths."""

    d_y: int
    d_x: int
    width: int
    kind: str
    m: int

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.d_x,) + (self.width,) * (self.m - 1) + (self.d_y,)

    @property
    def d(self) -> int:
        return min(self.d_x, self.d_y)

    def sigma(self) -> list[sp.Expr]:
        s = sp.symbols(f"sigma1:{self.d + 1}", positive=True)
        values = list(s)
        if self.kind == "deficient":
            values[-1] = sp.Integer(0)
        if self.kind == "repeated":
            values[1] = values[0]
        if min(self.dims) < self.d:  # a narrow hidden layer: rank(T) <= width
            values[min(self.dims):] = [sp.Integer(0)] * (self.d - min(self.dims))
        return values

    def b(self) -> sp.Matrix:
        return sp.Matrix(self.d_y, self.d_x, lambda i, j: sp.Symbol(f"b{i + 1}{j + 1}", real=True))

    def label(self) -> str:
        return f"{self.d_y}x{self.d_x} (width {self.width}) {self.kind} m={self.m}"


def sym_cases(ctx: Context) -> list[SymCase]:
    return [SymCase(d_y, d_x, w, kind, m) for m in range(1, ctx.profile.max_depth + 1)
            for d_y, d_x, w in SYM_SHAPES for kind in SYM_KINDS]


@lru_cache(maxsize=None)
def s59_truth(case: SymCase) -> sp.Expr:
    """Left side of (S59) from the actual canonical factor matrices S_i^{1/m} (expanded)."""
    sig = case.sigma()
    return sp.expand(canonical_sum(s_roots(sig, case.dims), case.b(), case.dims))


@lru_cache(maxsize=None)
def s60_terms(case: SymCase) -> tuple[sp.Expr, ...]:
    """||(S^{(m-k)/m})^T B~ (S^{(k-1)/m})^T||_F^2 for k = 1..m, from the matrices (expanded)."""
    sig, Bt, m = case.sigma(), case.b(), case.m
    S = s_power(sig, case.d_y, case.d_x)
    return tuple(sp.expand(frob2(tr(S(Fraction(m - k, m))) * Bt * tr(S(Fraction(k - 1, m))))) for k in range(1, m + 1))


@lru_cache(maxsize=None)
def s60_truth(case: SymCase) -> sp.Expr:
    """(S60)'s objective 2 sum_k ||(S^{(m-k)/m})^T B~ (S^{(k-1)/m})^T||_F^2 from the matrices (expanded)."""
    return sp.expand(2 * sum(s60_terms(case), sp.Integer(0)))


def symbolic_measurement(cases: Sequence[SymCase], compare: Callable[[SymCase], sp.Expr], **details: Any) -> Measurement:
    """Exact comparison on every case; the counterexample is the first failing case (cases are in
    order of increasing m), with the nonzero difference."""
    failures = []
    for case in cases:
        diff = compare(case)
        if diff != 0:
            failures.append((case, diff))
    shapes = sorted({c.label().rsplit(" m=", 1)[0] for c in cases}) + [f"m=1..{max(c.m for c in cases)}"]
    if failures:
        case, diff = failures[0]
        return Measurement(1.0, 0.0, SYMBOLIC, len(cases), shapes,
                           counterexample={"case": case.label(), "difference": str(diff)[:400],
                                           "failing cases": len(failures),
                                           "first failing with m >= 2": next((c.label() for c, _ in failures if c.m >= 2), None)},
                           details=details)
    return Measurement(0.0, 0.0, SYMBOLIC, len(cases), shapes, details=details)


def s59_printed(S, Bt, m):
    """(S59): sum_k ||(S^{(m-k)/m})^T B~ (S^{(k-1)/m})^T||_F^2 with S^alpha the d_y x d_x diagonal of sigma_q^alpha."""
    return sum((frob2(tr(S(Fraction(m - k, m))) @ Bt @ tr(S(Fraction(k - 1, m)))) for k in range(1, m + 1)), 0)


def s59_corrected(S, Bt, m):
    """(S59) with S^0 read as the identity (the empty products of (S57): I_{d_y} on the left for k = m,
    I_{d_x} on the right for k = 1)."""
    d_y, d_x = Bt.shape[-2:]
    left = lambda k: eye_as(Bt, d_y) if k == m else tr(S(Fraction(m - k, m)))  # noqa: E731
    right = lambda k: eye_as(Bt, d_x) if k == 1 else tr(S(Fraction(k - 1, m)))  # noqa: E731
    return sum((frob2(left(k) @ Bt @ right(k)) for k in range(1, m + 1)), 0)


def s59_variant(left: Callable[[int, int], Fraction], right: Callable[[int, int], Fraction], ks: Callable[[int], range]):
    """(S59)'s right side with other exponents or another range of k (for negative controls)."""
    return lambda S, Bt, m: sum((frob2(tr(S(left(m, k))) @ Bt @ tr(S(right(m, k)))) for k in ks(m)), 0)


S59_MUTANTS = {
    "exponent k/m instead of (k-1)/m": s59_variant(lambda m, k: Fraction(m - k, m), lambda m, k: Fraction(k, m),
                                                   lambda m: range(1, m + 1)),
    "sum over k = 1..m-1": s59_variant(lambda m, k: Fraction(m - k, m), lambda m, k: Fraction(k - 1, m),
                                       lambda m: range(1, m)),
    "exponents halved": s59_variant(lambda m, k: Fraction(m - k, 2 * m), lambda m, k: Fraction(k - 1, 2 * m),
                                    lambda m: range(1, m + 1)),
}

S59_CORRECTION = Variant(s59_corrected, reason="S^0 must be the identity (the empty products of (S57)); as a d_y x d_x "
                         "diagonal it drops the columns (k = 1) or rows (k = m) of B~ beyond d = min(d_x, d_y) when "
                         "d_x != d_y. The maximum (S63)-(S64) is unaffected: the dropped entries carry the "
                         "coefficient sigma_q^{2(m-1)/m} <= m sigma_1^{2(m-1)/m}.",
                         text=r"\sum_{k=1}^m \|(\mathbf{S}^{\frac{m-k}{m}})^T \tilde{\mathbf{B}} (\mathbf{S}^{\frac{k-1}{m}})^T\|_F^2"
                              r"\ \text{with}\ (\mathbf{S}^0)^T \text{ read as } \mathbf{I}_{d_y}\ (k=m),\ \mathbf{I}_{d_x}\ (k=1)")


@check("S59", method="sympy", printed=s59_printed, mutants=S59_MUTANTS, corrected=S59_CORRECTION)
def s59_sympy(ctx: Context, formula) -> Measurement:
    """Symbolic singular values and symbolic B~ (2x2, 2x3, 3x2, 3x3 through width 2; distinct,
    deficient, repeated), m = 1..max_depth: the right side of (S59) against its left side built from
    the actual canonical factor matrices S_i^{1/m} (sympy, expanded)."""
    def compare(case: SymCase) -> sp.Expr:
        S = s_power(case.sigma(), case.d_y, case.d_x)
        return sp.expand(s59_truth(case) - formula(S, case.b(), case.m))

    return symbolic_measurement(sym_cases(ctx), compare)


@check("S59", method="float", printed=s59_printed, mutants=S59_MUTANTS, corrected=S59_CORRECTION, backend=True)
def s59_float(ctx: Context, formula) -> Measurement:
    """Canonical minima of every shape (Sigma_x = I): (S56)'s objective from the actual weights,
    sum_k ||A_k^T B B_k^T||_F^2, against the right side of (S59) at B~ = U^T B V, both on ``ctx.xp``.
    Details: worst relative gap for square and for rectangular T."""
    rng = ctx.rng("B")
    residuals, owners, shapes, by_shape = [], [], set(), {}
    for ev in check_evidence(ctx, CELLS, ("canonical",), backend=True):
        b = ev.minima
        B = rng.standard_normal((b.n, b.cell.d_y, b.cell.d_x))

        def sides(W, data, B, s, U, V, cell=b.cell):
            truth = sum(frob2(tr(A) @ B @ tr(Bk)) for A, Bk in zip(ln.above(W), ln.below(W)))
            return truth, formula(s_power(s, cell.d_y, cell.d_x), tr(U) @ B @ V, cell.m)

        truth, printed = on_backend(ctx, b, sides, B, b.s, b.U, b.V)
        gap = np.abs(truth - printed) / truth
        residuals.append(gap)
        key = "square" if b.cell.d_x == b.cell.d_y else "rectangular"
        by_shape[key] = max(by_shape.get(key, 0.0), float(gap.max()))
        owners += [lambda i=i, b=b, B=B: b.instance(i, B=B[i]) for i in range(b.n)]
        shapes.add(b.cell.label())
    return batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON, sorted(shapes), lambda i: owners[i](),
                             **{f"max relative gap, {k} T": v for k, v in by_shape.items()})


def s60_printed(S, Bt, m):
    """(S60)'s objective 2 sum_k ||(S^{(m-k)/m})^T B~ (S^{(k-1)/m})^T||_F^2, maximised over ||B~||_F = 1
    with B~ in R^{d x d} as printed (embedded as the leading d x d block of a d_y x d_x matrix)."""
    return 2 * s59_printed(S, Bt, m)


S60_MUTANTS = {
    "missing factor 2": lambda S, Bt, m: s59_printed(S, Bt, m),
    "exponent k/m instead of (k-1)/m": lambda S, Bt, m: 2 * S59_MUTANTS["exponent k/m instead of (k-1)/m"](S, Bt, m),
    "exponents halved": lambda S, Bt, m: 2 * S59_MUTANTS["exponents halved"](S, Bt, m),
}


def embed_block(b: np.ndarray, d: int, d_y: int, d_x: int) -> np.ndarray:
    """vec of a d x d block b (column-major) placed at the top left of a d_y x d_x zero matrix."""
    out = np.zeros((*b.shape[:-1], d_y, d_x))
    out[..., :d, :d] = ln.unvec(b, d, d)
    return out


def s60_maximum(formula, batch: Minima, rng: np.random.Generator, full_domain: bool = False):
    """max of (S60)'s objective over unit B~ in R^{d x d} (or R^{d_y x d_x}): polarisation Gram matrix."""
    d_y, d_x, m = batch.cell.d_y, batch.cell.d_x, batch.cell.m
    d = min(d_x, d_y)
    S = s_power(batch.s[:, None], d_y, d_x)
    if full_domain:
        f = lambda b: formula(S, ln.unvec(b, d_y, d_x), m)  # noqa: E731
        return maximise_form(f, d_y * d_x, rng, batch.n)
    return maximise_form(lambda b: formula(S, embed_block(b, d, d_y, d_x), m), d * d, rng, batch.n)


@check("S60", method="float", printed=s60_printed, mutants=S60_MUTANTS)
def s60_float(ctx: Context, formula) -> Measurement:
    """Canonical minima of every shape (Sigma_x = I): the maximum of (S60)'s objective over unit
    B~ in R^{d x d} (polarisation Gram matrix) equals lambda_max of H = 2 Phi Phi^T at the canonical
    solution (dense eigensolver). Details: maximising over B~ in R^{d_y x d_x} instead (the actual
    range of U^T B V) gives the same value."""
    rng = ctx.rng("probes")
    residuals, owners, shapes, domain_gap = [], [], set(), 0.0
    for ev in check_evidence(ctx, CELLS, ("canonical",)):
        b = ev.minima
        found = s60_maximum(formula, b, rng)
        residuals.append(form_residuals(found, ev.lam_H))
        domain_gap = max(domain_gap, float(np.max(np.abs(s60_maximum(formula, b, rng, True)[0] - found[0]) / found[0])))
        owners += [lambda i=i, b=b: b.instance(i) for i in range(b.n)]
        shapes.add(b.cell.label())
    return batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON, sorted(shapes), lambda i: owners[i](),
                             **{"relative change of the maximum over R^{d_y x d_x} instead of R^{d x d}": domain_gap})


@check("S60", method="mpmath", printed=s60_printed, mutants=S60_MUTANTS)
def s60_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits, canonical minima of HP_CASES (Sigma_x = I): the maximum of (S60)'s objective
    over unit B~ in R^{d x d} (polarisation Gram, mpmath eigsy) equals lambda_max of H (mpmath eigsy)."""
    residuals, owners = [], []
    with mpmath.workdps(ctx.dps):
        for hp, truth, _ in check_hp_evidence(ctx, ("canonical", RANDOM), ("identity", "spd")):
            if hp.family != "canonical" or "identity" not in hp.label:
                continue
            d_y, d_x, m = hp.data.d_y, hp.data.d_x, hp.m
            d = min(d_x, d_y)
            S = s_power([r**m for r in hp.roots] + [mpmath.mpf(0)] * (d - len(hp.roots)), d_y, d_x)

            def objective(b):
                Bt = np.array([[mpmath.mpf(0)] * d_x for _ in range(d_y)], dtype=object)
                Bt[:d, :d] = ln.unvec(b, d, d)
                return formula(S, Bt, m)

            top = mp_max_form(objective, d * d)
            residuals.append(float(abs(top - truth) / truth))
            owners.append({"case": hp.label})
    return batch_measurement(np.array(residuals), mp_tolerance(ctx), mp_reason(ctx), [o["case"] for o in owners],
                             lambda i: owners[i])


def entry(M: Any, i: int, j: int) -> Any:
    """M_ij (batched over leading axes for arrays)."""
    return M[i, j] if isinstance(M, sp.MatrixBase) else M[..., i, j]


def s61_term(sig, Bt, m, k):
    """The k-th term of (S61)'s right side: sum_{i,j<=d} [sigma_j^{(m-k)/m} sigma_i^{(k-1)/m} b~_ij]^2."""
    d = len(sig)
    return sum(((real_power(sig[j], Fraction(m - k, m)) * real_power(sig[i], Fraction(k - 1, m)) * entry(Bt, i, j)) ** 2
                for i in range(d) for j in range(d)), 0)


def s61_printed(sig, Bt, m):
    """(S61): 2 sum_k sum_{i,j<=d} [sigma_j^{(m-k)/m} sigma_i^{(k-1)/m} b~_ij]^2."""
    return 2 * sum((s61_term(sig, Bt, m, k) for k in range(1, m + 1)), 0)


def s61_variant(term: Callable[[Any, Any, Any, int, int], Any]):
    """(S61) with another summand [term(sigma_i, sigma_j, b_ij, m, k)]^2 (for negative controls)."""
    return lambda sig, Bt, m: 2 * sum((term(sig[i], sig[j], entry(Bt, i, j), m, k) ** 2 for k in range(1, m + 1)
                                       for i in range(len(sig)) for j in range(len(sig))), 0)


S61_MUTANTS = {
    "both powers on sigma_i": s61_variant(lambda si, sj, b, m, k: real_power(si, Fraction(m - k, m)) * real_power(si, Fraction(k - 1, m)) * b),
    "exponent k/m instead of (k-1)/m": s61_variant(lambda si, sj, b, m, k: real_power(sj, Fraction(m - k, m)) * real_power(si, Fraction(k, m)) * b),
    "b~ not squared": lambda sig, Bt, m: 2 * sum((real_power(sig[j], Fraction(2 * (m - k), m)) * real_power(sig[i], Fraction(2 * (k - 1), m)) * entry(Bt, i, j)
                                                  for k in range(1, m + 1) for i in range(len(sig)) for j in range(len(sig))), 0),
}


@check("S61", method="sympy", printed=s61_printed, mutants=S61_MUTANTS)
def s61_sympy(ctx: Context, formula) -> Measurement:
    """Symbolic singular values and B~ (2x2, 2x3, 3x2, 3x3 through width 2; distinct, deficient,
    repeated), m = 1..max_depth: the printed right side of (S61) against (S60)'s objective computed
    from the matrices (S^{(m-k)/m})^T B~ (S^{(k-1)/m})^T (sympy, expanded). Details: the equation
    term by term (fixed k), where the printed summand has i and j swapped."""
    cases = sym_cases(ctx)
    meas = symbolic_measurement(cases, lambda c: sp.expand(s60_truth(c) - formula(c.sigma(), c.b(), c.m)))
    mismatched = sum(s61_term_mismatches(c) for c in cases)
    meas.details = {"terms (fixed k) where the printed summand differs from the k-th matrix term":
                    f"{mismatched} of {sum(c.m for c in cases)} (the sum over k agrees: k -> m + 1 - k maps one onto the other)"}
    return meas


@lru_cache(maxsize=None)
def s61_term_mismatches(case: SymCase) -> int:
    """How many k have the printed k-th term of (S61) different from the k-th matrix term."""
    sig, Bt, m = case.sigma(), case.b(), case.m
    return sum(int(sp.expand(t - s61_term(sig, Bt, m, k)) != 0) for k, t in zip(range(1, m + 1), s60_terms(case)))


def s61_summand(sigma_i, sigma_j, b, k, m):
    """The summand of (S61) for entry (i, j) and layer k, as printed: [sigma_j^{(m-k)/m} sigma_i^{(k-1)/m} b]^2."""
    return (sigma_j ** ((m - k) / m) * sigma_i ** ((k - 1) / m) * b) ** 2


@check("S61", method="sympy", printed=s61_summand, proves=True, mutants={
    "exponent k/m instead of (k-1)/m": lambda si, sj, b, k, m: (sj ** ((m - k) / m) * si ** (k / m) * b) ** 2,
    "both powers on sigma_j": lambda si, sj, b, k, m: (sj ** ((m - k) / m) * sj ** ((k - 1) / m) * b) ** 2,
    "b not squared": lambda si, sj, b, k, m: sj ** (2 * (m - k) / m) * si ** (2 * (k - 1) / m) * b})
def s61_every_m(ctx: Context, formula) -> Measurement:
    """For symbolic m, sigma_i, sigma_j >= 0 and b~_ij: entry (i, j) of the k-th matrix of (S60) is
    sigma_i^{(m-k)/m} b~_ij sigma_j^{(k-1)/m} (diagonal scalings; entries past d vanish on both sides),
    and after the reindexing k -> m + 1 - k of the printed sum its summand equals that entry squared,
    term by term (sympy): so the sums over k agree for every m and d, although the summands for a
    fixed k do not (i and j are swapped)."""
    m, k = sp.Symbol("m", positive=True, integer=True), sp.Symbol("k", positive=True, integer=True)
    si, sj, b = sp.Symbol("sigma_i", nonnegative=True), sp.Symbol("sigma_j", nonnegative=True), sp.Symbol("b", real=True)
    entry_squared = (si ** ((m - k) / m) * b * sj ** ((k - 1) / m)) ** 2
    reindexed = formula(si, sj, b, m + 1 - k, m)
    diff = sp.simplify(sp.powsimp(sp.expand(reindexed - entry_squared), force=True))
    per_term = sp.simplify(sp.powsimp(sp.expand(formula(si, sj, b, k, m) - entry_squared), force=True))
    return Measurement(0.0 if diff == 0 else 1.0, 0.0, "exact symbolic identity for every m (sympy; sum reindexed)",
                       1, ["symbolic m, sigma_i, sigma_j, b"],
                       counterexample=None if diff == 0 else {"difference after reindexing": str(diff)},
                       details={"per-term difference (fixed k) without reindexing": str(per_term)})


@check("S61", method="float", printed=s61_printed, mutants=S61_MUTANTS, backend=True)
def s61_float(ctx: Context, formula) -> Measurement:
    """Float: random singular values (with zeros and ties), random B~ (d_y x d_x up to 4 x 3), m = 1..8:
    the printed right side of (S61) against (S60)'s objective computed from the matrices, both on
    ``ctx.xp``. Details: the largest relative mismatch of a single term (fixed k)."""
    rng = ctx.rng("sigma")
    residuals, owners, worst_term = [], [], 0.0
    per = max(2, -(-ctx.profile.instances // (len(T_CELLS) * 8)))
    for cell in T_CELLS:
        for m in DEPTHS:
            T = random_targets(rng, per, cell)
            s = clean_svd(T)[1]
            Bt = rng.standard_normal(T.shape)

            def on_backend(s, Bt, cell=cell, m=m):
                S = s_power(s, cell.d_y, cell.d_x)
                sig = [s[:, q] for q in range(s.shape[1])]
                matrices = [frob2(tr(S(Fraction(m - k, m))) @ Bt @ tr(S(Fraction(k - 1, m)))) for k in range(1, m + 1)]
                terms = [s61_term(sig, Bt, m, k) for k in range(1, m + 1)]
                return (formula(sig, Bt, m), *matrices, *terms)

            out = map_chunks(ctx, on_backend, (s, Bt))
            printed, matrices, printed_terms = out[0], out[1:m + 1], out[m + 1:]
            truth = 2 * sum(matrices)
            residuals.append(np.abs(printed - truth) / truth)
            terms = [np.abs(t - mk) / (truth / 2) for t, mk in zip(printed_terms, matrices)]
            worst_term = max(worst_term, float(np.max(terms)))
            owners += [{"singular values": s[i], "B~": Bt[i], "m": m} for i in range(per)]
    return batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON, ["d_y x d_x up to 4x3", "m=1..8"],
                             lambda i: to_jsonable(owners[i]),
                             **{"largest relative mismatch of a single term (fixed k)": worst_term})


def s62_coefficient(sig, m, i, j):
    """sum_k [sigma_j^{(m-k)/m} sigma_i^{(k-1)/m}]^2, the weight of b~_ij^2 in (S62) (0-based i, j)."""
    return sum(((real_power(sig[j], Fraction(m - k, m)) * real_power(sig[i], Fraction(k - 1, m))) ** 2
                for k in range(1, m + 1)), 0)


def s62_printed(sig, Bt, m):
    """(S62)'s objective: 2 sum_{i,j<=d} b~_ij^2 sum_k [sigma_j^{(m-k)/m} sigma_i^{(k-1)/m}]^2."""
    d = len(sig)
    return 2 * sum((entry(Bt, i, j) ** 2 * s62_coefficient(sig, m, i, j) for i in range(d) for j in range(d)), 0)


S62_MUTANTS = {
    "missing factor 2": lambda sig, Bt, m: s62_printed(sig, Bt, m) / 2,
    "b~ not squared": lambda sig, Bt, m: 2 * sum((entry(Bt, i, j) * s62_coefficient(sig, m, i, j)
                                                  for i in range(len(sig)) for j in range(len(sig))), 0),
    "coefficient not squared": lambda sig, Bt, m: 2 * sum((entry(Bt, i, j) ** 2 * sum(
        (real_power(sig[j], Fraction(m - k, m)) * real_power(sig[i], Fraction(k - 1, m)) for k in range(1, m + 1)), 0)
        for i in range(len(sig)) for j in range(len(sig))), 0),
}


@check("S62", method="sympy", printed=s62_printed, mutants=S62_MUTANTS)
def s62_sympy(ctx: Context, formula) -> Measurement:
    """Symbolic singular values and B~ (the SymCase shapes and kinds), m = 1..max_depth: (S62)'s
    objective equals (S60)'s objective computed from the matrices (sympy, expanded)."""
    return symbolic_measurement(sym_cases(ctx), lambda c: sp.expand(s60_truth(c) - formula(c.sigma(), c.b(), c.m)))


def simplex_lp_maximum(c: np.ndarray) -> float:
    """max c . p over the unit simplex, by scipy's linprog (HiGHS)."""
    result = linprog(-c, A_eq=np.ones((1, c.size)), b_eq=[1.0], bounds=[(0, None)] * c.size, method="highs")
    return float(-result.fun)


def coefficient_table(objective: Callable[[np.ndarray], np.ndarray], d: int) -> np.ndarray:
    """The weights of b~_ij^2 in an objective, read off at B~ = E_ij (batched): shape (batch, d, d)."""
    out = []
    for i in range(d):
        for j in range(d):
            out.append(objective(i, j))
    return np.stack(out, axis=-1).reshape(-1, d, d)


def unit_matrix(batch: int, d_y: int, d_x: int, i: int, j: int) -> np.ndarray:
    E = np.zeros((batch, d_y, d_x))
    E[:, i, j] = 1.0
    return E


@lru_cache(maxsize=8)
def sphere_truth(seed: int, per: int) -> tuple:
    """For T of every shape and m = 1..8: singular values, a random unit B~ (supported on the leading
    d x d block), (S60)'s matrix objective there and its maximum over the unit sphere (Gram)."""
    rng = np.random.default_rng(seed)
    out = []
    for cell in T_CELLS:
        for m in DEPTHS:
            s = clean_svd(random_targets(rng, per, cell))[1]
            d_y, d_x, d = cell.d_y, cell.d_x, s.shape[1]
            Bt = np.zeros((per, d_y, d_x))
            Bt[:, :d, :d] = rng.standard_normal((per, d, d))
            Bt /= np.sqrt(frob2(Bt))[:, None, None]
            S_b = s_power(s[:, None], d_y, d_x)
            top = maximise_form(lambda b: s60_printed(S_b, embed_block(b, d, d_y, d_x), m), d * d, rng, per)[0]
            out.append((cell, m, s, Bt, s60_printed(s_power(s, d_y, d_x), Bt, m), top))
    return tuple(out)


@check("S62", method="float", printed=s62_printed, mutants=S62_MUTANTS)
def s62_float(ctx: Context, formula) -> Measurement:
    """Float, singular values of every shape (zeros, ties), m = 1..8: (S62)'s objective at random unit
    B~ equals (S60)'s matrix objective, and so do their maxima over the unit sphere (top eigenvalues
    of the two polarisation Gram matrices)."""
    residuals, owners = [], []
    rng = ctx.rng("probes")
    per = max(2, ctx.profile.instances // (len(T_CELLS) * len(DEPTHS)))
    for cell, m, s, Bt, matrix, top_matrix in sphere_truth(derive_seed(ctx.check_seed, "sphere"), per):
        d = s.shape[1]
        sig_b = [s[:, None, q] for q in range(d)]
        top = maximise_form(lambda b: formula(sig_b, embed_block(b, d, cell.d_y, cell.d_x), m), d * d, rng, s.shape[0])
        at_random = formula([s[:, q] for q in range(d)], Bt, m)
        residuals.append(np.maximum(np.abs(at_random - matrix) / matrix, form_residuals(top, top_matrix)))
        owners += [{"singular values": s[i], "B~": Bt[i], "m": m} for i in range(s.shape[0])]
    return batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON,
                             ["d_y x d_x up to 4x3", "m=1..8"], lambda i: to_jsonable(owners[i]))


@lru_cache(maxsize=8)
def lp_optima(seed: int, per: int) -> tuple[tuple[Cell, int, np.ndarray, np.ndarray], ...]:
    """For T of every shape and m = 1..8: singular values and the optimum of the linear program over
    the simplex (linprog, HiGHS) whose weights are read off (S60)'s matrix objective at B~ = E_ij."""
    rng = np.random.default_rng(seed)
    out = []
    for cell in T_CELLS:
        for m in DEPTHS:
            s = clean_svd(random_targets(rng, per, cell))[1]
            d = s.shape[1]
            S = s_power(s, cell.d_y, cell.d_x)
            weights = coefficient_table(lambda i, j: s60_printed(S, unit_matrix(per, cell.d_y, cell.d_x, i, j), m), d)
            out.append((cell, m, s, np.array([simplex_lp_maximum(w.ravel()) for w in weights])))
    return tuple(out)


def s63_printed(sig, m):
    """(S63): the candidate values 2 sum_k [sigma_j^{(m-k)/m} sigma_i^{(k-1)/m}]^2 at the vertices (i, j)
    of the simplex (a d x d table); the optimum is their maximum."""
    d = len(sig)
    return [[2 * s62_coefficient(sig, m, i, j) for j in range(d)] for i in range(d)]


S63_MUTANTS = {
    "missing factor 2": lambda sig, m: [[x / 2 for x in row] for row in s63_printed(sig, m)],
    "coefficient not squared": lambda sig, m: [[2 * sum((real_power(sig[j], Fraction(m - k, m)) * real_power(sig[i], Fraction(k - 1, m))
                                                        for k in range(1, m + 1)), 0) for j in range(len(sig))] for i in range(len(sig))],
    "sum over k = 2..m": lambda sig, m: [[2 * sum(((real_power(sig[j], Fraction(m - k, m)) * real_power(sig[i], Fraction(k - 1, m))) ** 2
                                                   for k in range(2, m + 1)), 0) for j in range(len(sig))] for i in range(len(sig))],
}


@lru_cache(maxsize=None)
def s60_weights(case: SymCase) -> tuple[bool, dict[tuple[int, int], sp.Expr]]:
    """(S60)'s matrix objective as a quadratic form in B~: whether it has cross terms, and the weight
    of each b~_ij^2."""
    Bt = case.b()
    poly = sp.Poly(s60_truth(case), *list(Bt))
    cross = any(sum(1 for e in monomial if e) != 1 for monomial, _ in poly.terms())
    return cross, {(i, j): poly.coeff_monomial(Bt[i, j] ** 2) for i in range(case.d_y) for j in range(case.d_x)}


@check("S63", method="sympy", printed=s63_printed, mutants=S63_MUTANTS)
def s63_sympy(ctx: Context, formula) -> Measurement:
    """Symbolic singular values (the SymCase shapes and kinds), m = 1..max_depth: (S60)'s objective,
    computed from the matrices, is a diagonal quadratic form in B~ (no cross terms b~_ij b~_kl) whose
    weight of b~_ij^2 is the printed candidate value at vertex (i, j): so the maximum over the unit
    sphere (= over the simplex p = b~^2) is the largest candidate, as (S63) says."""
    def compare(case: SymCase) -> sp.Expr:
        cross, weights = s60_weights(case)
        if cross:
            return sp.Symbol("cross_terms")
        candidates = formula(case.sigma(), case.m)
        claimed = lambda i, j: candidates[i][j] if i < case.d and j < case.d else 0  # noqa: E731
        return sp.expand(sum(((w - claimed(i, j)) ** 2 for (i, j), w in weights.items()), sp.Integer(0)))

    return symbolic_measurement(sym_cases(ctx), compare)


@check("S63", method="float", printed=s63_printed, mutants=S63_MUTANTS)
def s63_float(ctx: Context, formula) -> Measurement:
    """Float, singular values of every shape (zeros, ties), m = 1..8: the largest printed candidate
    value equals the optimum of the linear program over the simplex (linprog) whose weights are read
    off (S60)'s matrix objective at B~ = E_ij (independent of (S61)-(S63))."""
    residuals, owners = [], []
    per = max(2, min(ctx.profile.instances, 300) // (len(T_CELLS) * len(DEPTHS)))
    for cell, m, s, lp in lp_optima(derive_seed(ctx.check_seed, "lp"), per):
        d = s.shape[1]
        candidates = np.array(formula([s[:, q] for q in range(d)], m), dtype=float)  # (d, d, batch)
        printed = candidates.reshape(d * d, -1).max(axis=0)
        residuals.append(np.abs(printed - lp) / lp)
        owners += [{"singular values": s[i], "m": m} for i in range(s.shape[0])]
    return batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON + "; HiGHS solves the LP to ~1e-12",
                             ["d_y x d_x up to 4x3", "m=1..8"], lambda i: to_jsonable(owners[i]))


# === flattest minima found by the search (S105)-(S106), and the minimum over the manifold ============

FOUND_CELLS = (Cell((2, 2, 2)), Cell((3, 3, 3, 3)), Cell((2, 3, 2)), Cell((3, 3, 3), rank=2), Cell((2, 2, 2, 2), repeated=True))
SEARCH_RTOL = 1e-4


@dataclass
class Found:
    """A flattest minimum found by the greedy search, as a batch of one."""

    minima: Minima
    record: flattest_search.SearchRecord


def as_batch(cell: Cell, family: str, weights: Sequence[np.ndarray], R: np.ndarray) -> Minima:
    """One unbatched minimum as a Minima batch of size 1."""
    W = [w[None] for w in weights]
    P = ln.end_to_end(W)
    U, s, Vt = clean_svd(P)
    return Minima(cell, family, W, ln.from_target(P, R[None]), U, s, np.swapaxes(Vt, -1, -2))


@lru_cache(maxsize=4)
def found_flattest(seed: int) -> tuple[Found, ...]:
    """One flattest minimum per FOUND_CELLS from flattest_search.search (rtol 1e-4, at most 4000
    steps; with sigma_1 = sigma_2 the top eigenvalue is not smooth and the search may stop short)."""
    rng = np.random.default_rng(seed)
    out = []
    for cell in FOUND_CELLS:
        T = random_targets(rng, 1, cell)[0]
        W, record = flattest_search.search(T, cell.dims, np.eye(cell.d_x), rng, rtol=SEARCH_RTOL, max_iterations=4000)
        out.append(Found(as_batch(cell, "found by search (S105)-(S106)", W, np.eye(cell.d_x)), record))
    return tuple(out)


def shared_found(ctx: Context) -> tuple[Found, ...]:
    """Shared by the checks of this section (the search is the slow part)."""
    return found_flattest(derive_seed(ctx.seed, "section V found by search"))


def found_record(f: Found) -> dict:
    r = f.record
    return {"cell": f.minima.cell.label(), "converged": r.converged, "iterations": r.iterations,
            "accepted": r.accepted, "gap": r.gap}


ESTIMATE_CELLS = (Cell((2, 2)), Cell((2, 2, 2)), Cell((2, 3, 2)), Cell((3, 3, 3), rank=2),
                  Cell((2, 2, 2, 2), repeated=True), Cell((3, 3, 3, 3)))
ESTIMATE_CELLS_SIGMA = (Cell((2, 2), sigma="spd"), Cell((2, 2, 2), sigma="scaled"), Cell((2, 2, 2), sigma="spd"),
                        Cell((2, 3, 2), sigma="spd"), Cell((3, 3, 3), sigma="spd"), Cell((2, 2, 2, 2), sigma="ill-conditioned"))


@dataclass
class Estimated:
    """A numerical estimate of min lambda_max over the global minima of one instance."""

    cell: Cell
    T: np.ndarray
    R: np.ndarray
    estimate: manifold.ManifoldEstimate
    bound: float

    @property
    def printed(self) -> float:
        return float(s53_printed(norm2(self.T), self.cell.m))

    @property
    def minimum(self) -> Minima:
        return as_batch(self.cell, "flattest (manifold estimate)", self.estimate.weights, self.R)

    def report(self) -> dict:
        c = float(self.R[0, 0] ** 2) if self.cell.sigma == "scaled" else None
        return to_jsonable({"cell": self.cell.label(), "T": self.T, "Sigma_x": self.R @ self.R,
                            "printed 2m sigma_max^(2(1-1/m))": self.printed,
                            "estimated min lambda_max": self.estimate.value,
                            "Lemma 4 bound with Sigma_x^(1/2) kept": self.bound,
                            **({"c x printed (Sigma_x = c I)": c * self.printed} if c else {}),
                            "estimate / printed": self.estimate.value / self.printed,
                            "spread over starts": self.estimate.spread,
                            "weights at the estimate": self.estimate.weights})


@lru_cache(maxsize=4)
def manifold_estimates(seed: int, cells: tuple[Cell, ...]) -> tuple[Estimated, ...]:
    rng = np.random.default_rng(seed)
    out = []
    for cell in cells:
        T = random_targets(rng, 1, cell)[0]
        R = inst.random_sigma_half(rng, (), cell.d_x, cell.sigma)
        estimate = manifold.estimate_min_lambda_max(T, cell.dims, R, rng)
        out.append(Estimated(cell, T, R, estimate, manifold.lemma4_bound(T, R, cell.m, rng)))
    return tuple(out)


def shared_estimates(ctx: Context, sigma: bool = False) -> tuple[Estimated, ...]:
    return manifold_estimates(derive_seed(ctx.seed, "section V manifold"), ESTIMATE_CELLS_SIGMA if sigma else ESTIMATE_CELLS)


ESTIMATE_TOL = 1e-7
ESTIMATE_REASON = ("the manifold estimate (an upper bound on the minimum) reaches it to ~1e-14 where the top eigenvalue "
                   "is simple and ~1e-9 where it is repeated (sigma_1 = sigma_2); below the value it may not go (1e-11)")


# === (S64): lambda_max at the canonical solution =====================================================

def s64_printed(s1, m):
    """(S64): 2 sum_k [sigma_1^{(m-k)/m} sigma_1^{(k-1)/m}]^2 = 2m sigma_max(T)^{2(1-1/m)}; the right side."""
    return 2 * m * s1 ** (2 * (1 - 1 / m))


@check("S64", method="sympy", printed=s64_printed, mutants=FLATTEST_VALUE_MUTANTS, proves=True)
def s64_every_m(ctx: Context, formula) -> Measurement:
    """For symbolic m >= 1 and sigma_1 > 0, sympy evaluates 2 sum_{k=1}^m [sigma_1^{(m-k)/m} sigma_1^{(k-1)/m}]^2
    and finds it equal to the printed right side."""
    m, k, s1 = sp.Symbol("m", positive=True, integer=True), sp.Symbol("k", integer=True), sp.Symbol("sigma_1", positive=True)
    total = sp.Sum(2 * (s1 ** ((m - k) / m) * s1 ** ((k - 1) / m)) ** 2, (k, 1, m)).doit()
    diff = sp.simplify(total - formula(s1, m))
    return Measurement(0.0 if diff == 0 else 1.0, 0.0, "exact symbolic identity for every m (sympy)", 1, ["symbolic m"],
                       counterexample=None if diff == 0 else {"difference": str(diff)})


def value_on(ctx: Context | None, formula, s1: np.ndarray, m: int) -> np.ndarray:
    """formula(sigma_max(T), m) evaluated on the backend of ``ctx`` (NumPy without one)."""
    return map_chunks(ctx or Context(), lambda x: formula(x, m), (s1,))


def flattest_residuals(formula, ev: Evidence, ctx: Context | None = None) -> np.ndarray:
    b = ev.minima
    value = value_on(ctx, formula, b.s[:, 0], b.cell.m)
    return np.maximum(np.abs(ev.lam_H - value), np.abs(ev.lam - value)) / value


@check("S64", method="float", printed=s64_printed, mutants=FLATTEST_VALUE_MUTANTS, backend=True)
def s64_canonical_float(ctx: Context, formula) -> Measurement:
    """Canonical solutions of every shape (Sigma_x = I; rectangular, deficient, sigma_1 = sigma_2):
    lambda_max of H = 2 Phi Phi^T (dense N x N) and of 2 Phi^T Phi equal the printed value, both on
    ``ctx.xp``; on small shapes also lambda_max of the finite-difference Hessian (host). Details: the
    vertex maximising (S63) is (1, 1) (ties allowed when sigma_1 = sigma_2)."""
    residuals, owners, shapes, fd_res, not_11 = [], [], set(), [], 0
    for ev in check_evidence(ctx, CELLS, ("canonical",), backend=True):
        b = ev.minima
        residuals.append(flattest_residuals(formula, ev, ctx))
        owners += [lambda i=i, b=b: b.instance(i) for i in range(b.n)]
        shapes.add(b.cell.label())
        candidates = np.array(s63_printed([b.s[:, q] for q in range(b.s.shape[1])], b.cell.m), dtype=float)
        not_11 += int(np.sum(candidates.reshape(-1, b.n).max(axis=0) > candidates[0, 0] * (1 + 1e-12)))
    for ev, fd, _ in shared_fd(ctx):
        if ev.minima.family == "canonical" and ev.minima.cell.sigma == "identity":
            fd_res.append(np.abs(fd - formula(ev.minima.s[:, 0], ev.minima.cell.m)) / fd)
    fd = float(np.max(np.concatenate(fd_res)))
    meas = batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON + f"; finite differences: {FD_TOL}",
                             sorted(shapes), lambda i: owners[i](),
                             **{"max relative deviation of the finite-difference Hessian": fd,
                                "instances where a vertex other than (1,1) beats (1,1) in (S63)": not_11})
    meas.holds = bool(meas.ok and fd <= FD_TOL)
    return meas


def hp_value_residuals(ctx: Context, formula, families: Sequence[str]) -> tuple[list[float], list[dict], dict]:
    """At ctx.dps digits, Sigma_x = I minima of HP_CASES: |lambda_max(H) - printed| / printed for the
    flattest families, and the excess (lambda - printed) / printed at random minima."""
    residuals, owners, random_excess = [], [], np.inf
    with mpmath.workdps(ctx.dps):
        for hp, truth, _ in check_hp_evidence(ctx, tuple(families), ("identity",)):
            value = formula(hp.sigma_max, mpmath.mpf(hp.m))
            if hp.family == RANDOM:
                random_excess = min(random_excess, float((truth - value) / value))
            else:
                residuals.append(float(abs(truth - value) / value))
                owners.append({"case": hp.label, "family": hp.family, "lambda_max": mpmath.nstr(truth, 30)})
    return residuals, owners, {"min relative excess of lambda_max over the printed value at random minima": random_excess}


@check("S64", method="mpmath", printed=s64_printed, mutants=FLATTEST_VALUE_MUTANTS)
def s64_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits, canonical solutions with exactly orthogonal rational U, V (HP_CASES:
    rectangular, rank 1, sigma_1 = sigma_2; Sigma_x = I): lambda_max of H (mpmath eigsy) equals the
    printed value."""
    residuals, owners, details = hp_value_residuals(ctx, formula, ("canonical",))
    return batch_measurement(np.array(residuals), mp_tolerance(ctx), mp_reason(ctx), [o["case"] for o in owners],
                             lambda i: owners[i])


def sigma_cells() -> tuple[Cell, ...]:
    return tuple(c.with_sigma(s) for s in ("scaled", "spd") for c in CELLS)


@check("S64", method="float", printed=s64_printed, mutants=FLATTEST_VALUE_MUTANTS, without="Sigma_x = I",
       backend=True)
def s64_sigma_x(ctx: Context, formula) -> Measurement:
    """Canonical solutions with Sigma_x = c I and SPD (every shape): lambda_max of H (dense) against the
    printed value, which drops Sigma_x^{1/2}, both on ``ctx.xp``. Details (host): for Sigma_x = c I the
    ratio lambda_max / printed (it is c); and, on the manifold-estimate instances, whether the canonical
    solution still minimises lambda_max (its lambda_max against the estimated minimum)."""
    residuals, owners, sizes, ratios = [], [], [], {}
    for ev in check_evidence(ctx, sigma_cells(), ("canonical",), backend=True):
        b = ev.minima
        r = flattest_residuals(formula, ev, ctx)
        residuals += list(r)
        value = formula(b.s[:, 0], b.cell.m)
        owners += [lambda i=i, b=b, ev=ev, value=value: b.instance(
            i, **{"lambda_max at the canonical solution (dense eigensolver)": ev.lam_H[i], "printed": value[i]})
            for i in range(b.n)]
        sizes += [(b.cell.size(), b.cell.sigma != "scaled")] * b.n
        if b.cell.sigma == "scaled":
            c = b.data.Sigma_x[:, 0, 0]
            ratios["max |lambda_max / (c printed) - 1|, Sigma_x = c I"] = max(
                ratios.get("max |lambda_max / (c printed) - 1|, Sigma_x = c I", 0.0),
                float(np.max(np.abs(ev.lam_H / (c * formula(b.s[:, 0], b.cell.m)) - 1))))
    canonical_vs_min = []
    for e in shared_estimates(ctx, sigma=True):
        canon = canonical_minimum(e.T, e.cell.dims)
        lam = float(lemma3.lambda_max(canon, ln.from_target(ln.end_to_end(canon), e.R)))
        canonical_vs_min.append({"cell": e.cell.label(), "canonical lambda_max": lam,
                                 "estimated min lambda_max": e.estimate.value, "printed": e.printed})
    return sized_measurement(residuals, owners, sizes, FLOAT_TOL, FLOAT_REASON, sorted(c.label() for c in sigma_cells()),
                             **ratios, **{"canonical solution against the estimated minimum": canonical_vs_min})


def canonical_minimum(T: np.ndarray, dims: Sequence[int]) -> list[np.ndarray]:
    """The canonical solution (27) of one T with exact zeros for vanishing singular values."""
    U, s, Vt = clean_svd(T)
    m = len(dims) - 1
    return minima.canonical_factors(T, dims, np.repeat((s ** (1.0 / m))[None, :], m, axis=0))


# === (S65): lambda_max at every flattest minimum =====================================================

s65_printed = s64_printed


def excess_over(value: np.ndarray, lam: np.ndarray) -> np.ndarray:
    return (lam - value) / value


def random_family_excess(formula, evs: Iterable[Evidence], ctx: Context | None = None) -> float:
    """Smallest relative excess of lambda_max over the printed value at random minima of depth >= 2
    (at m = 1 the only minimum is W_1 = T); the value on the backend of ``ctx``."""
    out = [excess_over(value_on(ctx, formula, ev.minima.s[:, 0], ev.minima.cell.m), ev.lam_H)
           for ev in evs if ev.minima.family == RANDOM and ev.minima.cell.m > 1]
    return float(np.min(np.concatenate(out)))


@check("S65", method="float", printed=s65_printed, mutants=FLATTEST_VALUE_MUTANTS, backend=True)
def s65_flattest_families_float(ctx: Context, formula) -> Measurement:
    """Canonical, rotated and rebalanced flattest minima of every shape (Sigma_x = I; rectangular,
    deficient, sigma_1 = sigma_2): lambda_max of H (dense N x N) and of 2 Phi^T Phi equal the printed
    value, both on ``ctx.xp``; on small shapes also the finite-difference Hessian's (host). Random minima
    (S104) must exceed it (shown: the value is specific to flattest minima)."""
    residuals, owners, shapes, fd_res = [], [], set(), []
    evs = check_evidence(ctx, CELLS, counted=len(FLATTEST), backend=True)
    for ev in evs:
        if ev.minima.family in FLATTEST:
            b = ev.minima
            residuals.append(flattest_residuals(formula, ev, ctx))
            owners += [lambda i=i, b=b: b.instance(i) for i in range(b.n)]
            shapes.add(f"{b.cell.label()} {b.family}")
    for ev, fd, _ in shared_fd(ctx):
        if ev.minima.family in FLATTEST and ev.minima.cell.sigma == "identity":
            fd_res.append(np.abs(fd - formula(ev.minima.s[:, 0], ev.minima.cell.m)) / fd)
    fd, excess = float(np.max(np.concatenate(fd_res))), random_family_excess(formula, evs, ctx)
    meas = batch_measurement(np.concatenate(residuals), FLOAT_TOL, FLOAT_REASON + f"; finite differences: {FD_TOL}",
                             sorted(shapes), lambda i: owners[i](),
                             **{"max relative deviation of the finite-difference Hessian": fd,
                                "min relative excess at random minima (must be > 1e-6)": excess,
                                **{f"{f}: max relative residual": v for f, v in per_family_evidence(
                                    [ev for ev in evs if ev.minima.family in FLATTEST],
                                    lambda ev: flattest_residuals(formula, ev, ctx)).items()}})
    meas.holds = bool(meas.ok and fd <= FD_TOL and excess > NEGATIVE_MARGIN)
    return meas


def found_residuals(formula, f: Found) -> tuple[float, float]:
    """(below, above): how far lambda_max of a found minimum lies below the printed value (must be ~0:
    it is a lower bound) and above it (the search's remaining gap)."""
    ev = gather(f.minima)
    value = float(formula(f.minima.s[0, 0], f.minima.cell.m))
    lam = float(ev.lam_H[0])
    return max(0.0, (value - lam) / value), (lam - value) / value


@check("S65", method="float", printed=s65_printed, mutants=FLATTEST_VALUE_MUTANTS, name="s65_found_by_search")
def s65_found_by_search(ctx: Context, formula) -> Measurement:
    """Flattest minima found by the greedy search (S105)-(S106) (2x2x2, 3x3x3x3, 2x3x2, rank 2,
    sigma_1 = sigma_2; Sigma_x = I): lambda_max of H is never below the printed value (within 1e-11)
    and above it by at most the search's own remaining gap (at least its tolerance 1e-4: the search
    stops on that value, so this side is by construction), and the finite-difference Hessian agrees
    (within 1e-6). Details: the search records."""
    residuals, owners, worst_below, worst_fd = [], [], 0.0, 0.0
    for f in shared_found(ctx):
        below, above = found_residuals(formula, f)
        fd = float(fd_lambda_max(f.minima.weights, f.minima.data)[0])
        fd_gap = abs(fd / float(gather(f.minima).lam_H[0]) - 1)
        worst_fd, worst_below = max(worst_fd, fd_gap), max(worst_below, below)
        allowed = max(SEARCH_RTOL, 1.01 * f.record.gap)
        residuals.append(max(below / FLOAT_TOL, abs(above) / allowed, fd_gap / FD_TOL))
        owners.append({**found_record(f), "relative excess": above})
    return batch_measurement(np.array(residuals), 1.0, "scaled: below the value by <= 1e-11, above it by <= the search's "
                             f"gap, finite differences within {FD_TOL}", [f.minima.cell.label() for f in shared_found(ctx)],
                             lambda i: to_jsonable(owners[i]),
                             **{"search records": to_jsonable(owners), "max relative amount below the printed value": worst_below,
                                "max relative deviation of the finite-difference Hessian": worst_fd})


@check("S65", method="mpmath", printed=s65_printed, mutants=FLATTEST_VALUE_MUTANTS)
def s65_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits, canonical, rotated and rebalanced flattest minima with exactly orthogonal
    rational factors (HP_CASES, Sigma_x = I): lambda_max of H (mpmath eigsy) equals the printed value;
    random minima exceed it (required)."""
    residuals, owners, details = hp_value_residuals(ctx, formula, (*FLATTEST, RANDOM))
    meas = batch_measurement(np.array(residuals), mp_tolerance(ctx), mp_reason(ctx),
                             sorted({o["case"] for o in owners}), lambda i: owners[i], **details)
    meas.holds = bool(meas.ok and list(details.values())[0] > NEGATIVE_MARGIN)
    return meas


def sigma_value_measurement(formula, estimates: Sequence[Estimated]) -> Measurement:
    """The printed value against the estimated minimum of lambda_max over the global minima (a
    flattest minimum's lambda_max), for Sigma_x != I; the counterexample is the smallest failing
    instance with its estimated true value."""
    residuals = [abs(float(formula(norm2(e.T), e.cell.m)) - e.estimate.value) / e.estimate.value for e in estimates]
    reports = [e.report() for e in estimates]
    lemma4 = max(abs(e.bound / e.estimate.value - 1) for e in estimates)
    return sized_measurement(residuals, [lambda r=r: r for r in reports], [e.cell.size() for e in estimates], ESTIMATE_TOL,
                             ESTIMATE_REASON, [e.cell.label() for e in estimates],
                             **{"estimated true values": [{k: r[k] for k in r if k not in ("T", "Sigma_x", "weights at the estimate")}
                                                          for r in reports],
                                "max |estimate / Lemma 4 bound with Sigma_x^(1/2) kept - 1|": lemma4})


@check("S65", method="float", printed=s65_printed, mutants=FLATTEST_VALUE_MUTANTS, without="Sigma_x = I")
def s65_sigma_x(ctx: Context, formula) -> Measurement:
    """Sigma_x = c I, SPD and ill-conditioned (2x2 .. 2x2x2x2): lambda_max at a flattest minimum, i.e.
    min lambda_max over the global minima estimated by proofs.manifold (BFGS on the conjugation orbit
    from random minima plus the (S106) polish; never told the closed form), against the printed value.
    Details: the estimates beside the printed value, c x printed for Sigma_x = c I, and the Lemma 4
    bound that keeps Sigma_x^{1/2}, 2m max_v ((v^T R T^T T R v)^{m-1} v^T R^2 v)^{1/m}."""
    return sigma_value_measurement(formula, shared_estimates(ctx, sigma=True))


# === (S66): v (x) u is a top eigenvector at every flattest minimum ===================================

@dataclass(frozen=True)
class TopVectorClaim:
    """(S66): b* = v (x) u (B* = u v^T) and the chain 2 sum_k ||A_k^T B* B_k^T||_F^2 >= 2m ||(B* W^T)^{m-1} B*||_2^{2/m}
    = 2m sigma_max(T)^{2(1-1/m)}, W = W_m...W_1; together with (S65) it makes b* a top eigenvector."""

    b_star: Callable[[Any, Any], Any]
    lhs: Callable[[Sequence[Any], Any], Any]
    middle: Callable[[Sequence[Any], Any], Any]
    value: Callable[[Any, Any], Any]


def s66_lhs(weights, B):
    """2 sum_k ||(W_m...W_{k+1})^T B (W_{k-1}...W_1)^T||_F^2 (Sigma_x^{1/2} dropped, as printed)."""
    return 2 * sum(frob2(tr(A) @ B @ tr(Bk)) for A, Bk in zip(ln.above(list(weights)), ln.below(list(weights))))


def s66_middle(weights, B):
    """2m ||(B W^T)^{m-1} B||_2^{2/m} with W = W_m ... W_1 (Lemma 4, the product unrolled as in (24))."""
    m = len(weights)
    return 2 * m * real_power(norm2(chain_power(B, ln.end_to_end(list(weights)), m)), Fraction(2, m))


s66_printed = TopVectorClaim(b_star=lambda u, v: kron_vec(v, u), lhs=s66_lhs, middle=s66_middle, value=s64_printed)
S66_MUTANTS = {
    "b* = u (x) v": TopVectorClaim(lambda u, v: kron_vec(u, v), s66_lhs, s66_middle, s64_printed),
    "Lemma 4 with constant m + 1": TopVectorClaim(s66_printed.b_star, s66_lhs,
                                                  lambda W, B: s66_middle(W, B) * (len(W) + 1) / len(W), s64_printed),
    "value with exponent 2(1+1/m)": TopVectorClaim(s66_printed.b_star, s66_lhs, s66_middle,
                                                   FLATTEST_VALUE_MUTANTS["exponent 2(1+1/m)"]),
}


@dataclass
class TopVectorFindings:
    """Per instance: chain violation, |middle - value|, |lhs - lambda|, the Rayleigh deficit
    1 - b*^T (2 Phi^T Phi) b* / lambda, the eigen-residual of b*, and the deficit of Phi b* for H."""

    chain: np.ndarray
    middle: np.ndarray
    lhs: np.ndarray
    deficit: np.ndarray
    eig_residual: np.ndarray
    h_deficit: np.ndarray
    slack: np.ndarray

    def flattest_residual(self) -> np.ndarray:
        return np.max([self.chain, self.middle, self.lhs, np.abs(self.deficit), self.eig_residual,
                       np.abs(self.h_deficit)], axis=0)

    def any_minimum_residual(self) -> np.ndarray:
        """What (S66) claims at every global minimum: the chain (Lemma 4) and the value of its end."""
        return np.maximum(self.chain, self.middle)


def top_vector_findings(formula: TopVectorClaim, ev: Evidence, u: np.ndarray, v: np.ndarray,
                        ctx: Context | None = None) -> TopVectorFindings:
    """The findings at the minima of ``ev``, computed on the backend of ``ctx`` (NumPy without one)."""
    b = ev.minima

    def findings(W: list, data: ln.Data, u, v, s1, S, Phi, lam, lam_H) -> tuple:
        xp = ln.namespace(S)
        bs = formula.b_star(u, v)
        B = ln.unvec(bs, b.cell.d_y, b.cell.d_x)
        lhs, mid = formula.lhs(W, B), formula.middle(W, B)
        value = formula.value(s1, b.cell.m)
        Sb = (S @ bs[..., None])[..., 0]
        rayleigh = xp.sum(bs * Sb, axis=-1) / xp.sum(bs * bs, axis=-1)
        h = (Phi @ bs[..., None])[..., 0]
        h_rayleigh = 2 * xp.sum((xp.matrix_transpose(Phi) @ h[..., None])[..., 0] ** 2, axis=-1) / xp.sum(h * h, axis=-1)
        return (xp.clip((mid - lhs) / lhs, min=0.0), xp.abs(mid - value) / value, xp.abs(lhs - lam) / lam,
                1 - rayleigh / lam, xp.linalg.vector_norm(Sb - rayleigh[:, None] * bs, axis=-1) / lam,
                1 - h_rayleigh / lam_H, (lhs - mid) / lhs)

    return TopVectorFindings(*on_backend(ctx or Context(), b, findings, u, v, b.s[:, 0], ev.small, ev.Phi, ev.lam,
                                         ev.lam_H))


def top_multiplicity(ev: Evidence, rtol: float = 1e-9) -> np.ndarray:
    values = ev.small_values
    return np.sum(values >= values[:, -1:] * (1 - rtol), axis=-1)


@check("S66", method="float", printed=s66_printed, mutants=S66_MUTANTS, backend=True)
def s66_float(ctx: Context, formula) -> Measurement:
    """Minima of every kind and shape (Sigma_x = I; sigma_1 = sigma_2 with a random top singular pair):
    at flattest minima (canonical, rotated, rebalanced) the chain of (S66) holds with equality, its left
    side equals lambda_max (dense eigensolver) and b* = v (x) u is a top eigenvector of 2 Phi^T Phi (and
    Phi b* of H = 2 Phi Phi^T); at random minima (S104) the chain still holds but b* must not be a top
    eigenvector (required for m >= 2 and rank T >= 2; for rank-one T it is a top eigenvector at every
    global minimum, reported in details as evidence against the converse). On small shapes Phi b* is also a top eigenvector of the finite-difference
    Hessian (host). Details: slack of the inequality per family, a mismatched pair u_1, v_2 when
    sigma_1 = sigma_2, and the multiplicity of the top eigenvalue. Eigensolvers, b* and the chain run on
    ``ctx.xp``."""
    rng = ctx.rng("pairs")
    residuals, owners, shapes, details, random_deficit = [], [], set(), {}, np.inf
    for ev in check_evidence(ctx, CELLS, backend=True):
        b = ev.minima
        found = top_vector_findings(formula, ev, *paired_top_vectors(rng, b), ctx)
        slack_key = f"min slack of the inequality, {b.family}"
        details[slack_key] = min(details.get(slack_key, np.inf), float(found.slack.min()))
        if b.family in FLATTEST:
            residuals.append(found.flattest_residual())
            key = f"top eigenvalue multiplicity at flattest minima, {'sigma_1 = sigma_2' if b.cell.repeated else 'sigma_1 > sigma_2'}"
            details[key] = sorted(set(details.get(key, [])) | set(int(x) for x in top_multiplicity(ev)))
            if b.cell.repeated:
                mismatched = top_vector_findings(formula, ev, b.U[:, :, 0], b.V[:, :, 1], ctx)
                key = "max Rayleigh deficit of v_2 (x) u_1 at flattest minima, sigma_1 = sigma_2"
                details[key] = max(details.get(key, 0.0), float(mismatched.deficit.max()))
        else:
            residuals.append(found.any_minimum_residual())
            if b.cell.m > 1 and b.cell.rank != 1:
                random_deficit = min(random_deficit, float(found.deficit.min()))
            elif b.cell.rank == 1:  # every P_k, Q_k (k interior) is rank one along u, v: b* is always on top
                key = "rank-one T, random minima: max Rayleigh deficit of b* / min excess of lambda_max over the value"
                excess = float(np.min(excess_over(value_on(ctx, formula.value, b.s[:, 0], b.cell.m), ev.lam)))
                details[key] = [max(details.get(key, [0.0])[0], float(found.deficit.max())), excess]
        owners += [lambda i=i, b=b: b.instance(i) for i in range(b.n)]
        shapes.add(f"{b.cell.label()} {b.family}")
    fd = s66_finite_differences(formula, ctx)
    details.update({"min Rayleigh deficit of b* at random minima (must be > 1e-6)": random_deficit,
                    "max deviation of Phi b* from the top eigenvalue of the finite-difference Hessian": fd})
    meas = batch_measurement(np.concatenate(residuals), 1e-9, "float64: eigen-residuals of a top eigenvector reach "
                             "~1e-13 relative; 1e-9 leaves room for ill-conditioned random layers",
                             sorted(shapes), lambda i: owners[i](), **details)
    meas.holds = bool(meas.ok and random_deficit > NEGATIVE_MARGIN and fd <= FD_TOL)
    return meas


def s66_finite_differences(formula: TopVectorClaim, ctx: Context) -> float:
    """Relative gap between h^T H_fd h (h = Phi b* normalised) and lambda_max(H_fd), at the flattest
    minima of the small shapes (Sigma_x = I)."""
    rng = ctx.rng("fd pairs")
    worst = 0.0
    for ev, lam_fd, H in shared_fd(ctx):
        if ev.minima.family not in FLATTEST or ev.minima.cell.sigma != "identity":
            continue
        bs = formula.b_star(*paired_top_vectors(rng, ev.minima))
        h = (ev.Phi @ bs[..., None])[..., 0]
        h = h / np.linalg.norm(h, axis=-1, keepdims=True)
        worst = max(worst, float(np.max(np.abs(np.einsum("ni,nij,nj->n", h, H, h) - lam_fd) / lam_fd)))
    return worst


@check("S66", method="float", printed=s66_printed, mutants=S66_MUTANTS, name="s66_found_by_search")
def s66_found_by_search(ctx: Context, formula) -> Measurement:
    """Flattest minima found by the greedy search (S105)-(S106) (Sigma_x = I): the chain of (S66) holds,
    and b* = v (x) u is a top eigenvector up to the search's remaining gap: its Rayleigh deficit is at
    most gap / (1 + gap) (+1e-11), its left side within the gap of lambda_max. With sigma_1 = sigma_2
    several random top singular pairs are tried."""
    rng = ctx.rng("pairs")
    residuals, owners = [], []
    for f in shared_found(ctx):
        ev = gather(f.minima)
        allowed = max(f.record.gap, 0.0) / (1 + max(f.record.gap, 0.0)) + FLOAT_TOL
        for _ in range(3 if f.minima.cell.repeated else 1):
            found = top_vector_findings(formula, ev, *paired_top_vectors(rng, f.minima))
            residuals.append(max(float(found.any_minimum_residual()[0]) / FLOAT_TOL, float(found.deficit[0]) / allowed,
                                 float(found.lhs[0]) / (allowed + FLOAT_TOL), -float(found.deficit[0]) / FLOAT_TOL))
            owners.append({**found_record(f), "Rayleigh deficit": float(found.deficit[0])})
    return batch_measurement(np.array(residuals), 1.0, "scaled: chain within 1e-11; deficit within the search's gap",
                             [f.minima.cell.label() for f in shared_found(ctx)], lambda i: to_jsonable(owners[i]),
                             **{"records": to_jsonable(owners)})


@check("S66", method="mpmath", printed=s66_printed, mutants=S66_MUTANTS)
def s66_mpmath(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits, canonical, rotated and rebalanced flattest minima with exactly orthogonal
    rational factors (HP_CASES; Sigma_x = I; paired (3 v_1 + 4 v_2)/5 when sigma_1 = sigma_2): the
    chain of (S66) holds with equality, its left side is lambda_max(H) (mpmath eigsy) and
    b*^T (2 Phi^T Phi) b* = lambda_max."""
    residuals, owners = [], []
    with mpmath.workdps(ctx.dps):
        for hp, truth, Phi in check_hp_evidence(ctx, (*FLATTEST, RANDOM), ("identity",)):
            if hp.family == RANDOM:
                continue
            u, v = hp.U[:, 0], hp.V[:, 0]
            if "sigma1=sigma2" in hp.label:
                v = (3 * hp.V[:, 0] + 4 * hp.V[:, 1]) / 5
                u = (3 * hp.U[:, 0] + 4 * hp.U[:, 1]) / 5
            bs = formula.b_star(u, v)
            B = ln.unvec(bs, hp.data.d_y, hp.data.d_x)
            lhs, mid = formula.lhs(hp.weights, B), formula.middle(hp.weights, B)
            value = formula.value(hp.sigma_max, mpmath.mpf(hp.m))
            rayleigh = 2 * frob2((Phi @ bs)[:, None]) / frob2(bs[:, None])
            residuals.append(float(max(abs(lhs - truth), abs(mid - value), abs(rayleigh - truth)) / truth))
            owners.append({"case": hp.label, "family": hp.family})
    return batch_measurement(np.array(residuals), mp_tolerance(ctx), mp_reason(ctx),
                             sorted({o["case"] for o in owners}), lambda i: owners[i])


@check("S66", method="float", printed=s66_printed, mutants=S66_MUTANTS, without="Sigma_x = I")
def s66_sigma_x(ctx: Context, formula) -> Measurement:
    """At flattest minima for Sigma_x = c I, SPD, ill-conditioned (the minimisers found by
    proofs.manifold): (S66)'s left side, which drops Sigma_x^{1/2}, against lambda_max, and whether
    b* = v (x) u is still a top eigenvector of 2 Phi^T Phi. Details per instance."""
    residuals, owners, sizes, rows = [], [], [], []
    for e in shared_estimates(ctx, sigma=True):
        ev = gather(e.minimum)
        found = top_vector_findings(formula, ev, ev.minima.u, ev.minima.v)
        residuals.append(float(max(found.lhs[0], abs(found.deficit[0]))))
        rows.append({"cell": e.cell.label(), "|lhs / lambda_max - 1|": float(found.lhs[0]),
                     "Rayleigh deficit of v (x) u": float(found.deficit[0])})
        owners.append(lambda e=e, r=rows[-1]: {**e.report(), **r})
        sizes.append(e.cell.size())
    return sized_measurement(residuals, owners, sizes, ESTIMATE_TOL, ESTIMATE_REASON,
                             [e.cell.label() for e in shared_estimates(ctx, sigma=True)], **{"per instance": rows})


# === Theorem 1 =======================================================================================

theorem1_printed = s64_printed


@check("Theorem 1", method="float", printed=theorem1_printed, mutants=FLATTEST_VALUE_MUTANTS)
def theorem1_min_over_manifold(ctx: Context, formula) -> Measurement:
    """min over global minima of lambda_max(H_w), estimated by proofs.manifold (BFGS on the conjugation
    orbit from random minima (S104) plus the (S106) polish; it never sees the closed form), against the
    printed 2m sigma_max(T)^{2(1-1/m)}, Sigma_x = I: 2x2, 2x2x2, 2x3x2, 3x3x3 rank 2, 2x2x2x2 with
    sigma_1 = sigma_2, 3x3x3x3. Required too: lambda_max of the finite-difference Hessian at the
    estimated minimiser agrees (within 1e-6). Details: every start of every estimate."""
    residuals, owners, worst_fd = [], [], 0.0
    estimates = shared_estimates(ctx)
    for e in estimates:
        value = float(formula(norm2(e.T), e.cell.m))
        batch = e.minimum
        fd = float(fd_lambda_max(batch.weights, batch.data)[0])
        worst_fd = max(worst_fd, abs(fd - e.estimate.value) / e.estimate.value)
        gap = (e.estimate.value - value) / value
        residuals.append(max(-gap / FLOAT_TOL, gap / ESTIMATE_TOL))
        owners.append({**e.report(), "finite-difference lambda_max at the estimate": fd})
    meas = batch_measurement(np.array(residuals), 1.0, "scaled: " + ESTIMATE_REASON,
                             [e.cell.label() for e in estimates], lambda i: to_jsonable(owners[i]),
                             **{"estimates": [{"cell": e.cell.label(), "printed": float(formula(norm2(e.T), e.cell.m)),
                                               **e.estimate.record()} for e in estimates],
                                "max relative deviation of the finite-difference Hessian at the estimates": worst_fd})
    meas.holds = bool(meas.ok and worst_fd <= FD_TOL)
    return meas


def unbalanced_aligned(rng: np.random.Generator, cell: Cell, n: int) -> Minima:
    """Global minima whose layers share singular vectors (rotated diagonal factors) with the top
    singular value unbalanced across layers (c_i1 = sigma_1^{1/m} e^{z_i}, sum z = 0, |z_i| <= 0.3) and
    the other singular values small (<= sigma_1 / 100): v (x) u stays a top eigenvector while
    lambda_max exceeds the flattest value (AM-GM is strict), a test of the converse of Theorem 1's
    eigenvector part."""
    T = random_targets(rng, n, cell)
    U, s, Vt = clean_svd(T)
    s[:, 1:] = np.minimum(s[:, 1:], s[:, :1] / 100)
    T = (U[..., :, :s.shape[1]] * s[:, None, :]) @ Vt[..., :s.shape[1], :]
    m = cell.m
    layers = np.repeat((s ** (1.0 / m))[:, None, :], m, axis=1)
    z = np.clip(0.2 * rng.standard_normal((n, m)), -0.3, 0.3)
    layers[:, :, 0] *= np.exp(z - z.mean(axis=1, keepdims=True))
    W = minima.rotated_flattest(T, cell.dims, rng, layers)
    U, s, Vt = clean_svd(T)
    R = np.broadcast_to(np.eye(cell.d_x), (n, cell.d_x, cell.d_x)).copy()
    return Minima(cell, "aligned, top value unbalanced", W, ln.from_target(ln.end_to_end(W), R), U, s, np.swapaxes(Vt, -1, -2))


@check("Theorem 1", method="float", printed=s66_printed, mutants=S66_MUTANTS)
def theorem1_top_eigenvector(ctx: Context, formula) -> Measurement:
    """At the flattest minima estimated by proofs.manifold and found by the search (Sigma_x = I):
    b* = v (x) u is a top eigenvector of 2 Phi^T Phi and Phi b* of H, to the precision of each (the
    estimate's spread, the search's gap). Converse (details): at aligned minima with the top singular
    value unbalanced across layers, b* is still a top eigenvector while lambda_max exceeds the
    flattest value, so 'b* is a top eigenvector' does not imply 'flattest'."""
    rng = ctx.rng("pairs")
    residuals, owners = [], []
    sources = [(e.minimum, ESTIMATE_TOL, e.cell.label()) for e in shared_estimates(ctx)]
    sources += [(f.minima, max(f.record.gap, 0.0) + FLOAT_TOL, f"{f.minima.cell.label()} (search)") for f in shared_found(ctx)]
    for batch, allowed, label in sources:
        found = top_vector_findings(formula, gather(batch), *paired_top_vectors(rng, batch))
        residuals.append(max(float(found.any_minimum_residual()[0]) / FLOAT_TOL, abs(float(found.deficit[0])) / allowed,
                             abs(float(found.h_deficit[0])) / allowed))
        owners.append({"instance": label, "Rayleigh deficit of b*": float(found.deficit[0]),
                       "Rayleigh deficit of Phi b* for H": float(found.h_deficit[0])})
    converse = gather(unbalanced_aligned(ctx.rng("converse"), Cell((3, 3, 3, 3)), 50))
    c_found = top_vector_findings(formula, converse, converse.minima.u, converse.minima.v)
    excess = excess_over(formula.value(converse.minima.s[:, 0], 3), converse.lam)
    counter = (np.abs(c_found.deficit) < 1e-12) & (excess > NEGATIVE_MARGIN)
    return batch_measurement(np.array(residuals), 1.0, "scaled: deficits within each minimum's precision",
                             [o["instance"] for o in owners], lambda i: owners[i],
                             **{"per instance": owners,
                                "converse: aligned unbalanced 3x3x3x3 minima where b* is a top eigenvector (deficit < 1e-12) "
                                "but lambda_max exceeds the flattest value by > 1e-6": f"{int(counter.sum())} of {counter.size}",
                                "converse: their relative excess, min and max": [float(excess[counter].min()), float(excess[counter].max())]
                                if counter.any() else None})


@check("Theorem 1", method="float", printed=theorem1_printed, mutants=FLATTEST_VALUE_MUTANTS, without="Sigma_x = I")
def theorem1_sigma_x(ctx: Context, formula) -> Measurement:
    """Theorem 1's value with Sigma_x = c I, SPD and ill-conditioned: the estimated min lambda_max over
    the global minima (proofs.manifold) against 2m sigma_max(T)^{2(1-1/m)}. Details: the estimated true
    values, c x printed for Sigma_x = c I (exact by rescaling W_k -> c^{1/(2m)} W_k), and the Lemma 4
    bound with Sigma_x^{1/2} kept, 2m max_v ((v^T R T^T T R v)^{m-1} v^T R^2 v)^{1/m} (R = Sigma_x^{1/2}),
    which the estimates attain."""
    return sigma_value_measurement(formula, shared_estimates(ctx, sigma=True))
