"""Section VIII of the supplement: the proof of Theorem 4, equations (S98)-(S103).

Theorem 4: at a global minimum w with sigma_max(W_k) = sigma_max(T)^{1/m} for every layer k,
lambda_max(H_w) = 2m sigma_max(T)^{2(1-1/m)} (S103), the minimal sharpness (S98), so w is a
flattest minimum. The proof bounds lambda_max(H_w) by a separable relaxation (S99), whose terms
(S100) have the value sigma_max(A_k)^2 sigma_max(B_k)^2 (A_k = W_m...W_{k+1}, B_k = W_{k-1}...W_1),
bounded by submultiplicativity (S101), which under the hypothesis is the flattest value (S102).

Ground truth is computed another way than the statements: lambda_max(H_w) from the eigenvalues of
the Hessian by central differences of the analytic gradient (float64) or by hyper-dual
differentiation of the loss at 50 digits (mpmath), never from the closed form of Lemma 3; the
maxima over ||B||_F = 1 from the dense eigensolver of the quadratic form that the printed objective
defines (assembled by applying the printed expression to a basis of matrices B).

Global minima come in families (all multiply to T; ``Shape`` fixes widths, rank of T and the
multiplicity of sigma_max(T)):

- satisfying the hypothesis: the library generators ``canonical``, ``rotated flattest``,
  ``rebalanced flattest``, and two constructions of this module that no generator produces:
  ``non-normal lower block`` (the part below the top singular direction conjugated by unipotent,
  non-orthogonal matrices, kept under the top value) and ``cancelling extra directions`` (hidden
  layers wider than rank T carry extra nonzero singular directions that cancel in the product);
- not satisfying it (negative evidence): ``random (S104)`` and ``unbalanced scaling``
  (canonical layers scaled by c_k with prod c_k = 1).

Found minima come from the greedy search of Section IX (``flattest_search``), where the hypothesis
holds only approximately; the checks then use the bound that the proof itself gives,
lambda_max / value <= (1/m) sum_k prod_{i != k} rho_i^2 with rho_i = sigma_max(W_i) / sigma_max(T)^{1/m}.

Section VIII drops Sigma_x^{1/2} from (S56) (as Section V does from (S57) on), so the printed values
are for Sigma_x = I; checks marked ``without="Sigma_x = I"`` test the wider domain.
"""

from __future__ import annotations

import math
from fractions import Fraction
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, Callable, Sequence

import mpmath
import numpy as np
import sympy as sp
from hypothesis import strategies as st
from hypothesis import target
from scipy.optimize import minimize_scalar

from verify.checks import check
from verify.context import Context, derive_seed
from verify.measure import batch_measurement, to_jsonable
from verify.model import Measurement
from verify.search import search

from . import flattest_search, instances, minima, strategies
from . import hessian_reference as hr
from . import linear_network as ln
from . import scalar_network as sn
from .on_backend import map_chunks

FD_RTOL = 1e-7
FD_REASON = ("lambda_max from central differences of the analytic gradient (h = 1e-5): O(h^2) truncation "
             "and O(eps/h) rounding, measured below 1e-10 relative on these shapes")
HYP_RTOL = 1e-9  # |sigma_max(W_k) / sigma_max(T)^{1/m} - 1| below this counts as the hypothesis holding
SVD_RTOL = 1e-12
SVD_REASON = "float64 SVD and eigensolvers of small well-scaled matrices: ~1e-15 relative, with margin"
EXACT = "exact symbolic identity"


def mp_tolerance(ctx: Context) -> mpmath.mpf:
    return mpmath.mpf(10) ** (-(ctx.dps - 10))


def mp_reason(ctx: Context) -> str:
    return f"{ctx.dps}-digit arithmetic (hyper-dual Hessian, mpmath eigsy/svd): 10 digits of margin"


# ----------------------------------------------------------------------------------------------------
# The statements as printed
# ----------------------------------------------------------------------------------------------------


def flattest_value_printed(smax, m):
    """(S98), (S103): 2m sigma_max(T)^{2(1-1/m)}. ``m`` may be an int, a sympy Integer or an mpf."""
    return 2 * m * smax ** (2 * (1 - 1 / m))


VALUE_MUTANTS = {
    "factor m instead of 2m": lambda smax, m: m * smax ** (2 * (1 - 1 / m)),
    "exponent 2/m": lambda smax, m: 2 * m * smax ** (2 / m),
    "exponent 1 - 1/m (square dropped)": lambda smax, m: 2 * m * smax ** (1 - 1 / m),
    "factor 4m": lambda smax, m: 4 * m * smax ** (2 * (1 - 1 / m)),
}


def above(weights: Sequence[Any], k: int) -> Any:
    """prod_{i=k+1}^m W_i (the identity of size d_y when k = m)."""
    return ln.product(weights, k + 1, len(weights))


def below(weights: Sequence[Any], k: int) -> Any:
    """prod_{j=1}^{k-1} W_j (the identity of size d_x when k = 1)."""
    return ln.product(weights, 1, k - 1)


def t(M: Any) -> Any:
    return ln.namespace(M).matrix_transpose(M)


def term_printed(weights: Sequence[Any], k: int, B: Any) -> Any:
    """The k-th term of (S99)/(S100): (prod_{i=k+1}^m W_i)^T B (prod_{j=1}^{k-1} W_j)^T."""
    return t(above(weights, k)) @ B @ t(below(weights, k))


def term_off_by_one(weights: Sequence[Any], k: int, B: Any) -> Any:
    """Mutant: prod_{i=k}^m W_i instead of prod_{i=k+1}^m W_i."""
    return t(ln.product(weights, k, len(weights))) @ B @ t(ln.product(weights, 1, k - 1))


def term_no_transpose(weights: Sequence[Any], k: int, B: Any) -> Any:
    """Mutant: the right factor not transposed."""
    return t(above(weights, k)) @ B @ below(weights, k)


@dataclass(frozen=True)
class Relaxation:
    """(S99): value of (S98) <= lambda_max(H_w) = max_B factor sum_k ||term_k(B)||_F^2
    <= max_{B_1..B_m} factor sum_k ||term_k(B_k)||_F^2, all over unit Frobenius norm."""

    value: Callable
    term: Callable
    factor: float = 2.0


S99_PRINTED = Relaxation(flattest_value_printed, term_printed)
S99_MUTANTS = {
    "missing factor 2": Relaxation(flattest_value_printed, term_printed, factor=1.0),
    "products off by one (i = k..m)": Relaxation(flattest_value_printed, term_off_by_one),
    "right factor not transposed": Relaxation(flattest_value_printed, term_no_transpose),
    "lower bound with factor 4m": Relaxation(VALUE_MUTANTS["factor 4m"], term_printed),
}


def smax_float(M: ln.Array) -> ln.Array:
    """sigma_max over the last two axes (0 for an empty matrix); any Array-API namespace."""
    xp = ln.namespace(M)
    if 0 in M.shape[-2:]:
        return xp.zeros(M.shape[:-2], dtype=M.dtype)
    return xp.linalg.svdvals(M)[..., 0]


def fro_float(M: ln.Array) -> ln.Array:
    xp = ln.namespace(M)
    return xp.sqrt(xp.sum(M * M, axis=(-2, -1)))


@dataclass(frozen=True)
class TermValue:
    """(S100) with its value from (S87)/(S101): max_{||B_k||_F = 1} ||term_k(B_k)||_F^2 = value(A_k, B_k)."""

    term: Callable
    value: Callable


def s100_value_printed(above_k: np.ndarray, below_k: np.ndarray, norm: Callable = smax_float) -> np.ndarray:
    """Left side of (S101): sigma_max(prod_{i=k+1}^m W_i)^2 sigma_max(prod_{i=1}^{k-1} W_i)^2."""
    return norm(above_k) ** 2 * norm(below_k) ** 2


S100_PRINTED = TermValue(term_printed, s100_value_printed)
S100_MUTANTS = {
    "Frobenius norms instead of sigma_max": TermValue(term_printed,
                                                      lambda a, b, norm=None: s100_value_printed(a, b, fro_float)),
    "squares dropped": TermValue(term_printed, lambda a, b, norm=smax_float: norm(a) * norm(b)),
    "objective with products off by one": TermValue(term_off_by_one, s100_value_printed),
}


def s101_printed(layer_smax: Sequence[Any], above_smax: Any, below_smax: Any, k: int) -> tuple[Any, Any]:
    """(S101) as (smaller, larger): sigma_max(A_k)^2 sigma_max(B_k)^2 <= prod_{i != k} sigma_max(W_i)^2."""
    larger = math.prod(s**2 for i, s in enumerate(layer_smax, start=1) if i != k)
    return above_smax**2 * below_smax**2, larger


S101_MUTANTS = {
    "inequality reversed": lambda ls, a, b, k: tuple(reversed(s101_printed(ls, a, b, k))),
    "squares dropped on the right": lambda ls, a, b, k: (a**2 * b**2,
                                                         math.prod(s for i, s in enumerate(ls, 1) if i != k)),
    "product over every i (k not excluded)": lambda ls, a, b, k: (a**2 * b**2, math.prod(s**2 for s in ls)),
}


def product_except(fn: Callable[[Any], Any], m: Any, skip: Any) -> Any:
    """prod_{i=1..m, i != skip} fn(i) for an integer m; ``skip=None`` keeps every i."""
    one = sp.Integer(1) if isinstance(m, sp.Basic) else 1
    return math.prod((fn(i) for i in range(1, int(m) + 1) if i != skip), start=one)


def symbolic_product_except(fn: Callable[[Any], Any], m: Any, skip: Any) -> Any:
    """The same for a symbolic m: prod_{i=1}^m fn(i) / fn(skip) (fn(skip) != 0 for sigma_max(T) > 0)."""
    i = sp.Symbol("i", integer=True, positive=True)
    full = sp.Product(fn(i), (i, 1, m)).doit()
    return full if skip is None else full / fn(skip)


def s102_printed(top: Callable[[Any], Any], smax: Any, m: Any, k: Any, prod: Callable = product_except) -> tuple:
    """(S102), its three members: prod_{i!=k} sigma_max(W_i)^2, prod_{i!=k} sigma_max(T)^{2/m},
    sigma_max(T)^{2(1-1/m)}; ``top(i)`` is sigma_max(W_i)."""
    return (prod(lambda i: top(i) ** 2, m, k),
            prod(lambda i: smax ** (2 / m), m, k),
            smax ** (2 * (1 - 1 / m)))


S102_MUTANTS = {
    "product over every i": lambda top, smax, m, k, prod=product_except: (
        prod(lambda i: top(i) ** 2, m, None), prod(lambda i: smax ** (2 / m), m, None), smax ** (2 * (1 - 1 / m))),
    "right side exponent 2(1+1/m)": lambda top, smax, m, k, prod=product_except: (
        *s102_printed(top, smax, m, k, prod)[:2], smax ** (2 * (1 + 1 / m))),
    "right side exponent 1-1/m": lambda top, smax, m, k, prod=product_except: (
        *s102_printed(top, smax, m, k, prod)[:2], smax ** (1 - 1 / m)),
}


def hypothesis_printed(weights: Sequence[ln.Array], T: ln.Array) -> ln.Array:
    """Theorem 4's hypothesis: sigma_max(W_k) = sigma_max(T)^{1/m} for all k (to HYP_RTOL), batched."""
    xp = ln.namespace(T)
    return xp.max(xp.abs(top_ratios(weights, T) - 1), axis=-1) <= HYP_RTOL


def hypothesis_product_only(weights: Sequence[ln.Array], T: ln.Array) -> ln.Array:
    """Mutant hypothesis: prod_k sigma_max(W_k) = sigma_max(T) (balance read as a product)."""
    xp = ln.namespace(T)
    return xp.abs(xp.prod(top_ratios(weights, T), axis=-1) - 1) <= HYP_RTOL


@dataclass(frozen=True)
class Implication:
    """Theorem 4: hypothesis(weights, T) => lambda_max(H_w) = value(sigma_max(T), m)."""

    hypothesis: Callable
    value: Callable


THEOREM4_PRINTED = Implication(hypothesis_printed, flattest_value_printed)
THEOREM4_MUTANTS = {
    **{name: Implication(hypothesis_printed, v) for name, v in VALUE_MUTANTS.items() if name != "factor 4m"},
    "hypothesis prod_k sigma_max(W_k) = sigma_max(T)": Implication(hypothesis_product_only, flattest_value_printed),
}


# ----------------------------------------------------------------------------------------------------
# Small linear algebra
# ----------------------------------------------------------------------------------------------------


def top_ratios(weights: Sequence[ln.Array], T: ln.Array) -> ln.Array:
    """rho_k = sigma_max(W_k) / sigma_max(T)^{1/m}, shape (..., m); any Array-API namespace."""
    m = len(weights)
    root = smax_float(T) ** (1.0 / m)
    return ln.namespace(T).stack([smax_float(W) / root for W in weights], axis=-1)


def relaxation_bound(rho: np.ndarray) -> np.ndarray:
    """(1/m) sum_k prod_{i != k} rho_i^2: the proof's bound (S99)+(S101) on lambda_max / value."""
    m = rho.shape[-1]
    sq = rho**2
    return np.mean([np.prod(np.delete(sq, k, axis=-1), axis=-1) for k in range(m)], axis=0)


def true_lambda_max(weights: Sequence[ln.Array], data: ln.Data) -> ln.Array:
    """lambda_max of the Hessian by central differences of the analytic gradient (batched, any namespace)."""
    return ln.namespace(*weights).linalg.eigvalsh(hr.finite_difference_hessian(list(weights), data))[..., -1]


def matrix_basis(d_y: int, d_x: int, like: Any) -> Any:
    """The d_y d_x unit matrices E_ij, shape (d_y d_x, d_y, d_x), in the namespace and field of ``like``."""
    n = d_y * d_x
    if isinstance(like, np.ndarray) and like.dtype == object:
        return mp_eye(n).reshape(n, d_y, d_x)
    xp = ln.namespace(like)
    return xp.reshape(ln.eye(n, like), (n, d_y, d_x))


def quadratic_form(term: Callable, weights: Sequence[Any], k: int) -> Any:
    """The matrix G of B -> ||term_k(B)||_F^2 in the basis E_ij: G = J^T J, J's columns the images
    of the basis; shape (..., d_y d_x, d_y d_x). Works on float arrays of any Array-API namespace and on
    object (mpf) arrays."""
    dims = ln.widths(weights)
    basis = matrix_basis(dims[-1], dims[0], weights[0])
    lifted = [W[..., None, :, :] for W in weights]  # broadcast the batch against the basis
    images = term(lifted, k, basis)
    xp = ln.namespace(images)
    J = xp.reshape(images, (*images.shape[:-2], -1))  # (..., n, image size): rows are images
    J = xp.broadcast_to(J, (*weights[0].shape[:-2], *J.shape[-2:]))  # m = 1: the term uses no weight
    return J @ xp.matrix_transpose(J)


def relaxation_values(relax: Relaxation, weights: Sequence[ln.Array]) -> tuple[ln.Array, ln.Array]:
    """(middle, upper) of (S99): the max of the joint quadratic form, and the sum of the separate maxima."""
    xp = ln.namespace(*weights)
    forms = [relax.factor * quadratic_form(relax.term, weights, k) for k in range(1, len(weights) + 1)]
    middle = xp.linalg.eigvalsh(sum(forms))[..., -1]
    upper = sum(xp.linalg.eigvalsh(G)[..., -1] for G in forms)
    return middle, upper


# ----------------------------------------------------------------------------------------------------
# Families of global minima
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    dims: tuple[int, ...]
    rank: int
    top: int = 1  # multiplicity of sigma_max(T)

    @property
    def m(self) -> int:
        return len(self.dims) - 1

    @property
    def room(self) -> int:
        """Largest extra width of a hidden layer over rank T."""
        return max((d - self.rank for d in self.dims[1:-1]), default=0)

    def label(self) -> str:
        return f"dims={'x'.join(map(str, self.dims))} rank={self.rank}" + (f" top x{self.top}" if self.top > 1 else "")


SHAPES = (
    Shape((1, 1), 1),
    Shape((3, 2), 2),
    Shape((2, 2, 2), 2),
    Shape((2, 2, 2), 2, top=2),
    Shape((3, 4, 2), 2),
    Shape((3, 3, 3), 1),
    Shape((2, 3, 3, 2), 2),
    Shape((3, 3, 3, 3), 3),
    Shape((3, 5, 4, 2), 1),
    Shape((4, 4, 4, 4), 2, top=2),
    Shape((2, 2, 2, 2, 2), 2),
    Shape((2, 3, 2, 3, 2, 2), 2),
)


@dataclass(frozen=True)
class Target:
    """T = U diag(s) V^T with exact zeros beyond rank T (batched)."""

    U: np.ndarray
    s: np.ndarray
    Vt: np.ndarray

    @property
    def T(self) -> np.ndarray:
        return self.U @ ln.diag_rect(self.s, self.U.shape[-1], self.Vt.shape[-1]) @ self.Vt


def random_target(rng: np.random.Generator, n: int, shape: Shape) -> Target:
    """sigma_max(T) log-uniform in [0.3, 3] repeated ``shape.top`` times, lower values below it, zeros past rank."""
    d_x, d_y = shape.dims[0], shape.dims[-1]
    top = np.exp(rng.uniform(np.log(0.3), np.log(3.0), (n, 1)))
    lower = -np.sort(-rng.uniform(0.05, 0.9, (n, shape.rank - shape.top)), axis=-1)
    s = np.zeros((n, min(d_x, d_y)))
    s[:, :shape.top] = top
    s[:, shape.top:shape.rank] = top * lower
    U, V = minima.random_orthogonal(rng, (n,), d_y), minima.random_orthogonal(rng, (n,), d_x)
    return Target(U, s, t(V))


def layer_cores(s: np.ndarray, dims: Sequence[int]) -> list[np.ndarray]:
    """D_k = diag(sigma_q(T)^{1/m}), d_k x d_{k-1}: the canonical layers in the singular bases of T."""
    m = len(dims) - 1
    root = s ** (1.0 / m) if s.dtype != object else np.vectorize(lambda x: mpmath.root(x, m), otypes=[object])(s)
    return [ln.diag_rect(root, dims[k + 1], dims[k]) for k in range(m)]


def place(target: Target, cores: Sequence[np.ndarray], rotations: Sequence[np.ndarray]) -> list[np.ndarray]:
    """W_1 = O_1^T K_1 V^T, W_k = O_k^T K_k O_{k-1}, W_m = U K_m O_{m-1}: product U (K_m...K_1) V^T."""
    C = list(cores)
    C[0] = C[0] @ target.Vt
    C[-1] = target.U @ C[-1]
    return minima.conjugate(C, rotations, [t(O) for O in rotations])


def haar_rotations(rng: np.random.Generator, n: int, dims: Sequence[int]) -> list[np.ndarray]:
    return [minima.random_orthogonal(rng, (n,), d) for d in dims[1:-1]]


def unipotent(rng: np.random.Generator, n: int, size: int, eps: float, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """G = blockdiag(I_keep, I + eps N) with N strictly upper triangular Gaussian, and its exact inverse
    sum_j (-eps N)^j (finite: N is nilpotent). Non-orthogonal for eps != 0."""
    N = np.triu(rng.standard_normal((n, size, size)), 1)
    N[:, :keep, :] = 0
    N[:, :, :keep] = 0
    G = np.eye(size) + eps * N
    inv, power = np.broadcast_to(np.eye(size), G.shape).copy(), np.broadcast_to(np.eye(size), G.shape).copy()
    for _ in range(size):
        power = power @ (-eps * N)
        inv = inv + power
    return G, inv


def nonnormal_lower_block(target: Target, dims: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Canonical cores conjugated by G_k = blockdiag(I_g, I + eps N_k) (g = multiplicity of sigma_max(T)):
    the top block stays sigma_max(T)^{1/m} I_g, the lower block G_k^{-1} D_k G_{k-1} is non-normal; per
    instance the largest eps on a ladder keeps every lower block's norm <= sigma_max(T)^{1/m}. Then rotated."""
    n, m = target.s.shape[0], len(dims) - 1
    D = layer_cores(target.s, dims)
    root = target.s[:, 0] ** (1.0 / m)
    g = int(np.min(np.sum(target.s >= target.s[:, :1] * (1 - 1e-12), axis=-1)))
    chosen = list(D)
    settled = np.zeros(n, dtype=bool)
    for eps in (3.0, 1.0, 0.5, 0.25, 0.1, 0.03, 0.0):
        pairs = [unipotent(rng, n, d, eps, g) for d in dims[1:-1]]
        K = minima.conjugate(D, [p[0] for p in pairs], [p[1] for p in pairs])
        fits = np.all([smax_float(Kk) <= root * (1 + 1e-13) for Kk in K], axis=0) & ~settled
        chosen = [np.where(fits[:, None, None], Kk, Ck) for Kk, Ck in zip(K, chosen)]
        settled |= fits
    return place(target, chosen, haar_rotations(rng, n, dims))


def cancelling_extra_directions(target: Target, dims: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Cores blockdiag(diag(sigma_q^{1/m}, q <= r), E_k) with E_k of size (d_k - r) x (d_{k-1} - r) nonzero:
    at the first hidden layer j with d_j - r >= 2 the range of E_j and the row space of E_{j+1} are
    complementary subspaces, so E_m...E_1 = 0 and the product is still T; each E_k has norm
    rho_k sigma_max(T)^{1/m}, rho_k in [0.3, 1] (1 ties the top value). Then rotated."""
    n, m = target.s.shape[0], len(dims) - 1
    r = int(np.max(np.sum(target.s > 0, axis=-1)))
    root = target.s[:, 0] ** (1.0 / m)
    j = next(k for k in range(1, m) if dims[k] - r >= 2)
    extra = [d - r for d in dims]
    E = [rng.standard_normal((n, extra[k + 1], extra[k])) for k in range(m)]
    Q = minima.random_orthogonal(rng, (n,), extra[j])
    split = int(rng.integers(1, extra[j]))
    E[j - 1] = Q[:, :, :split] @ rng.standard_normal((n, split, extra[j - 1]))
    E[j] = rng.standard_normal((n, extra[j + 1], extra[j] - split)) @ t(Q[:, :, split:])
    cores = layer_cores(target.s, dims)
    for k in range(m):
        if 0 in E[k].shape[-2:]:
            continue
        rho = np.minimum(1.0, rng.uniform(0.3, 1.2, n))
        scale = rho * root / np.maximum(smax_float(E[k]), 1e-300)
        cores[k][:, r:, r:] = E[k] * scale[:, None, None]
    return place(target, cores, haar_rotations(rng, n, dims))


def unbalanced_scaling(target: Target, dims: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """Canonical cores scaled by c_k = exp(z_k), sum z_k = 0, max |z_k| >= 0.2: the product is T, the layers
    are aligned, but sigma_max(W_k) = c_k sigma_max(T)^{1/m}. Then rotated."""
    n, m = target.s.shape[0], len(dims) - 1
    z = rng.standard_normal((n, m))
    z -= z.mean(axis=-1, keepdims=True)
    z *= np.maximum(1.0, 0.2 / np.max(np.abs(z), axis=-1, keepdims=True))
    cores = [Dk * np.exp(z[:, k])[:, None, None] for k, Dk in enumerate(layer_cores(target.s, dims))]
    return place(target, cores, haar_rotations(rng, n, dims))


def _library(name: str) -> Callable:
    return lambda target, dims, rng: minima.GENERATORS[name](target.T, dims, rng)


HYPOTHESIS_FAMILIES: dict[str, Callable] = {
    "canonical": _library("canonical"),
    "rotated flattest": _library("rotated flattest"),
    "rebalanced flattest": _library("rebalanced flattest"),
    "non-normal lower block": nonnormal_lower_block,
    "cancelling extra directions": cancelling_extra_directions,
}
NEGATIVE_FAMILIES: dict[str, Callable] = {
    "random (S104)": _library("random (S104)"),
    "unbalanced scaling": unbalanced_scaling,
}
FAMILIES = {**HYPOTHESIS_FAMILIES, **NEGATIVE_FAMILIES}


def applies(family: str, shape: Shape) -> bool:
    if family in ("non-normal lower block", "unbalanced scaling"):
        return shape.m >= 2
    if family == "cancelling extra directions":
        return shape.m >= 2 and shape.room >= 2
    return True


@dataclass
class Batch:
    """A batch of global minima of one family and shape, with their data."""

    family: str
    shape: Shape
    sigma: str
    weights: list[np.ndarray]
    data: ln.Data
    seed: int
    computed: dict = field(default_factory=dict, repr=False, compare=False)  # (quantity, backend) -> result

    @property
    def size(self) -> int:
        return self.weights[0].shape[0]

    def on_backend(self, ctx: Context, fn: Callable[..., Any]) -> Any:
        """``fn(weights, data, T)`` evaluated on ``ctx.xp`` chunk by chunk, results back on the host."""
        d = self.data
        m = len(self.weights)

        def chunk(*arrays: Any) -> Any:
            W, (Sx, Syx, T, R, y2) = list(arrays[:m]), arrays[m:]
            return fn(W, ln.Data(Sx, Syx, T, R, y2), T)

        return map_chunks(ctx, chunk, (*self.weights, d.Sigma_x, d.Sigma_yx, d.T, d.Sigma_x_half, np.asarray(d.y2)))

    def once_on(self, ctx: Context, name: str, fn: Callable[..., Any]) -> Any:
        """``on_backend(ctx, fn)``, computed once per backend for a quantity shared by several checks."""
        key = (name, ctx.backend if ctx.xp is not None else "numpy")
        if key not in self.computed:
            self.computed[key] = self.on_backend(ctx, fn)
        return self.computed[key]

    def lam_on(self, ctx: Context) -> np.ndarray:
        """lambda_max of the finite-difference Hessian computed on ``ctx.xp``."""
        return self.once_on(ctx, "lambda_max", lambda W, data, T: true_lambda_max(W, data))

    def relaxation_on(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """(middle, upper) of the printed (S99) computed on ``ctx.xp``."""
        return self.once_on(ctx, "relaxation", lambda W, data, T: relaxation_values(S99_PRINTED, W))

    @property
    def T(self) -> np.ndarray:
        return self.data.T

    @property
    def smax(self) -> np.ndarray:
        return smax_float(self.T)

    @property
    def label(self) -> str:
        return f"{self.family} {self.shape.label()}" + (f" Sigma_x={self.sigma}" if self.sigma != "identity" else "")

    @property
    def lam(self) -> np.ndarray:
        return self.lam_on(Context())

    @property
    def relaxation(self) -> tuple[np.ndarray, np.ndarray]:
        return self.relaxation_on(Context())

    @cached_property
    def rho(self) -> np.ndarray:
        return top_ratios(self.weights, self.T)

    def instance(self, i: int, **extra: Any) -> dict:
        """What a reader needs to replay instance i."""
        return to_jsonable({"family": self.family, "dims": self.shape.dims, "rank": self.shape.rank,
                            "Sigma_x": self.data.Sigma_x[i], "T": self.T[i],
                            "weights": [W[i] for W in self.weights], "seed": self.seed, "index": i, **extra})


def build_batch(family: str, shape: Shape, n: int, sigma: str, seed: int) -> Batch:
    rng = np.random.default_rng(derive_seed(seed, "section VIII", family, shape.label(), sigma))
    target = random_target(rng, n, shape)
    weights = FAMILIES[family](target, shape.dims, rng)
    R = instances.random_sigma_half(rng, (n,), shape.dims[0], sigma)
    # T := the product of the weights, so they are a global minimum to rounding of exactly this data
    return Batch(family, shape, sigma, weights, ln.from_target(ln.end_to_end(weights), R), seed)


def per_family(ctx: Context, families: int, shapes: int) -> int:
    return int(np.clip(ctx.profile.instances // (families * shapes), 2, 400))


@lru_cache(maxsize=4)
def identity_batches(seed: int, n: int) -> tuple[Batch, ...]:
    """Every family on every shape, Sigma_x = I (shared by the checks: Hessians are computed once)."""
    return tuple(build_batch(f, s, n, "identity", seed) for s in SHAPES for f in FAMILIES if applies(f, s))


#: instances per batch at most (a batch's Hessians are computed on the backend in bounded chunks)
BATCH_CAP = 10_000


def batch_size(ctx: Context, batches: int) -> int:
    """Instances per batch so that ``batches`` batches hold at least ``ctx.profile.instances``."""
    return int(np.clip(-(-ctx.profile.instances // batches), 2, BATCH_CAP))


def batches_for(ctx: Context, families: Sequence[str] = tuple(FAMILIES)) -> list[Batch]:
    """Batches of the given families on every shape where they apply, together at least
    ``ctx.profile.instances`` minima."""
    n = batch_size(ctx, sum(applies(f, s) for s in SHAPES for f in families))
    return [b for b in identity_batches(ctx.seed, n) if b.family in families]


SEARCH_SHAPES = (Shape((2, 2, 2), 2), Shape((2, 3, 2), 2), Shape((2, 2, 2, 2), 2), Shape((3, 2, 3, 2), 2),
                 Shape((2, 2, 2, 2, 2), 2))
SEARCH_RTOL = 1e-4


@lru_cache(maxsize=4)
def searched_batches(seed: int, n: int) -> tuple[Batch, ...]:
    """Flattest minima found by the greedy search of Section IX (rtol 1e-4), n per tiny shape."""
    out = []
    for shape in SEARCH_SHAPES:
        rng = np.random.default_rng(derive_seed(seed, "section VIII search", shape.label()))
        found = []
        for _ in range(n):
            T = random_target(rng, 1, shape).T[0]
            W, record = flattest_search.search(T, shape.dims, np.eye(shape.dims[0]), rng, rtol=SEARCH_RTOL)
            found.append((W, record))
        weights = [np.stack([W[k] for W, _ in found]) for k in range(shape.m)]
        R = np.broadcast_to(np.eye(shape.dims[0]), (n, shape.dims[0], shape.dims[0])).copy()
        batch = Batch("found by search", shape, "identity", weights, ln.from_target(ln.end_to_end(weights), R), seed)
        batch.records = [r for _, r in found]  # type: ignore[attr-defined]
        out.append(batch)
    return tuple(out)


def searched_for(ctx: Context) -> list[Batch]:
    return list(searched_batches(ctx.seed, int(np.clip(ctx.profile.instances // 400, 1, 8))))


# ----------------------------------------------------------------------------------------------------
# Measurements over batches
# ----------------------------------------------------------------------------------------------------


def measure(batches: Sequence[Batch], residual: Callable[[Batch], np.ndarray], tolerance: float, reason: str,
            extra: Callable[[Batch, int], dict] = lambda b, i: {}, **details: Any) -> Measurement:
    """The worst per-instance residual over all batches; the failing instance is the counterexample."""
    parts = [np.broadcast_to(np.asarray(residual(b), dtype=float), (b.size,)) for b in batches]
    owners = [(b, i) for b in batches for i in range(b.size)]

    def instance(j: int) -> dict:
        b, i = owners[j]
        return b.instance(i, **extra(b, i))

    return batch_measurement(np.concatenate(parts), tolerance, reason, sorted({b.label for b in batches}),
                             instance, **details)


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)


def excess(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Relative violation of lower <= upper (0 when it holds)."""
    return np.maximum(0.0, (lower - upper) / np.maximum(np.abs(upper), 1e-300))


def min_by(batches: Sequence[Batch], values: Callable[[Batch], np.ndarray], key: Callable[[Batch], Any]) -> dict:
    """min of values over instances, grouped by key(batch)."""
    out: dict = {}
    for b in batches:
        v = float(np.min(values(b)))
        out[key(b)] = min(out.get(key(b), np.inf), v)
    return {str(k): v for k, v in out.items()}


def max_by(batches: Sequence[Batch], values: Callable[[Batch], np.ndarray], key: Callable[[Batch], Any]) -> dict:
    return {k: -v for k, v in min_by(batches, lambda b: -values(b), key).items()}


# ----------------------------------------------------------------------------------------------------
# High precision: the same constructions in mpmath
# ----------------------------------------------------------------------------------------------------


def mpf_array(x: np.ndarray) -> np.ndarray:
    return np.vectorize(mpmath.mpf, otypes=[object])(x)


def mp_eye(n: int) -> np.ndarray:
    return mpf_array(np.eye(n))


def mp_orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A product of n Householder reflections I - 2 v v^T / v^T v: orthogonal to working precision."""
    Q = mp_eye(n)
    for _ in range(n):
        v = mpf_array(rng.standard_normal(n))[:, None]
        Q = Q @ (mp_eye(n) - 2 * (v @ v.T) / (v.T @ v)[0, 0])
    return Q


def mp_smax(M: np.ndarray) -> mpmath.mpf:
    if 0 in M.shape:
        return mpmath.mpf(0)
    return max(mpmath.svd_r(mpmath.matrix(M.tolist()), compute_uv=False))


def mp_lambda_max(weights: Sequence[np.ndarray], data: ln.Data) -> mpmath.mpf:
    """lambda_max of the hyper-dual Hessian of the loss (no closed form), by mpmath eigsy."""
    H = hr.hyperdual_hessian(list(weights), data)
    return max(mpmath.eigsy(mpmath.matrix(H.tolist()), eigvals_only=True))


MP_SHAPES = (Shape((1, 2), 1), Shape((2, 2, 2), 2), Shape((2, 2, 2), 1), Shape((2, 3, 2), 2), Shape((2, 2, 2, 2), 2),
             Shape((2, 2, 2), 2, top=2))


@dataclass
class MpInstance:
    family: str
    shape: Shape
    weights: list[np.ndarray]
    data: ln.Data
    smax: mpmath.mpf

    @cached_property
    def lam(self) -> mpmath.mpf:
        return mp_lambda_max(self.weights, self.data)

    def replay(self) -> dict:
        return {"family": self.family, "dims": self.shape.dims, "rank": self.shape.rank,
                "weights": [[[mpmath.nstr(x, 25) for x in row] for row in W.tolist()] for W in self.weights]}


def mp_family(family: str, shape: Shape, rng: np.random.Generator) -> list[np.ndarray]:
    """canonical, rotated (Householder), non-normal lower block (unipotent), random (S104) in mpf."""
    dims = shape.dims
    s = np.zeros(min(dims[0], dims[-1]))
    s[:shape.top] = np.exp(rng.uniform(np.log(0.3), np.log(3.0)))
    s[shape.top:shape.rank] = s[0] * np.sort(rng.uniform(0.1, 0.8, shape.rank - shape.top))[::-1]
    target = Target(mp_orthogonal(rng, dims[-1]), mpf_array(s), mp_orthogonal(rng, dims[0]))
    cores = layer_cores(target.s, dims)
    hidden = dims[1:-1]
    if family == "canonical":
        M, M_inv = [mp_eye(d) for d in hidden], [mp_eye(d) for d in hidden]
    elif family == "rotated flattest":
        M = [mp_orthogonal(rng, d) for d in hidden]
        M_inv = [O.T for O in M]
    elif family == "non-normal lower block":
        return mp_nonnormal(target, cores, hidden, shape, rng)
    elif family == "random (S104)":
        M = [mpf_array(rng.standard_normal((d, d))) for d in hidden]
        M_inv = [np.array(mpmath.inverse(mpmath.matrix(A.tolist())).tolist(), dtype=object) for A in M]
    else:
        raise ValueError(family)
    return place_mp(target, minima.conjugate(cores, M, M_inv))


_MP_CACHE: dict = {}


def mp_nonnormal(target: Target, cores: list[np.ndarray], hidden: Sequence[int], shape: Shape,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """Cores conjugated by unipotent G_k = blockdiag(I_g, I + eps N_k) (exact inverses), eps halved until every
    layer's sigma_max (mpmath svd_r) is the top value sigma_max(T)^{1/m}."""
    root = mpmath.root(target.s[0], shape.m)
    N = [unipotent(rng, 1, d, 1.0, shape.top) for d in hidden]  # eps = 1: G - I is the nilpotent direction
    eps = mpmath.mpf("0.2")
    while True:
        M = [mp_eye(d) + eps * mpf_array(G[0] - np.eye(d)) for d, (G, _) in zip(hidden, N)]
        M_inv = [sum((mpf_array(np.linalg.matrix_power(np.eye(d) - G[0], j)) * eps**j for j in range(d)), mp_eye(d) * 0)
                 for d, (G, _) in zip(hidden, N)]
        K = minima.conjugate(cores, M, M_inv)
        if eps == 0 or all(mp_smax(Kk) <= root * (1 + mpmath.mpf(10) ** (-mpmath.mp.dps + 5)) for Kk in K):
            return place_mp(target, K)
        eps = eps / 2 if eps > mpmath.mpf("1e-3") else mpmath.mpf(0)


def place_mp(target: Target, cores: list[np.ndarray]) -> list[np.ndarray]:
    C = list(cores)
    C[0] = C[0] @ target.Vt
    C[-1] = target.U @ C[-1]
    return C


def mp_instances(ctx: Context, families: Sequence[str]) -> list[MpInstance]:
    """The instances of a check, built once per (seed, check, dps): its variants share them and their Hessians."""
    key = (ctx.seed, ctx.check_id, ctx.dps, tuple(families))
    if key not in _MP_CACHE:
        _MP_CACHE.clear()
        _MP_CACHE[key] = build_mp_instances(ctx, families)
    return _MP_CACHE[key]


def build_mp_instances(ctx: Context, families: Sequence[str]) -> list[MpInstance]:
    out = []
    with mpmath.workdps(ctx.dps):
        for shape in MP_SHAPES:
            for family in families:
                if family == "non-normal lower block" and shape.m < 2:
                    continue
                rng = ctx.rng("mp", family, shape.label())
                W = mp_family(family, shape, rng)
                T = ln.end_to_end(W)
                data = ln.from_target(T, mp_eye(shape.dims[0]))
                out.append(MpInstance(family, shape, W, data, mp_smax(T)))
    return out


# ----------------------------------------------------------------------------------------------------
# S98: the minimal sharpness over Omega
# ----------------------------------------------------------------------------------------------------


def value_on(ctx: Context, value: Callable, b: Batch) -> np.ndarray:
    """value(sigma_max(T), m), sigma_max by SVD, on ``ctx.xp``."""
    return b.on_backend(ctx, lambda W, data, T: value(smax_float(T), b.shape.m))


def s98_residual(value: Callable, b: Batch, ctx: Context | None = None) -> np.ndarray:
    """Canonical minima attain the value; every other minimum is at least as sharp. With ``ctx``, the
    value and lambda_max are computed on its backend."""
    ctx = ctx or Context()
    v, lam = value_on(ctx, value, b), b.lam_on(ctx)
    return relative(lam, v) if b.family == "canonical" else excess(v, lam)


@check("S98", method="float", printed=flattest_value_printed, mutants=VALUE_MUTANTS, backend=True)
def s98_attained_and_lower_bound(ctx: Context, formula) -> Measurement:
    """lambda_max of the finite-difference Hessian at canonical minima equals (S98), and at every other
    minimum (all families, incl. random (S104) and minima found by the search) it is >= (S98). The
    Hessians, their eigenvalues and the formula run on ``ctx.xp``; the minima found by the greedy search
    are found on the host (NumPy), and the details are tallied there."""
    batches = batches_for(ctx) + searched_for(ctx)
    ratio = lambda b: b.lam / flattest_value_printed(b.smax, b.shape.m)
    return measure(batches, lambda b: s98_residual(formula, b, ctx), FD_RTOL, FD_REASON,
                   extra=lambda b, i: {"lambda_max": b.lam[i], "value": formula(b.smax[i], b.shape.m)},
                   min_ratio_by_family=min_by(batches, ratio, lambda b: b.family),
                   max_ratio_by_family=max_by(batches, ratio, lambda b: b.family))


@check("S98", method="hypothesis", printed=flattest_value_printed,
       mutants={k: v for k, v in VALUE_MUTANTS.items() if k != "factor m instead of 2m"}
       | {"Frobenius norm of T": lambda smax, m: None})
def s98_no_minimum_below_the_value(ctx: Context, formula) -> Measurement:
    """Hypothesis search over widths (depth 1-4, widths 1-4), ranks of T and kinds of global minimum
    (Sigma_x = I) for a minimum whose finite-difference lambda_max is below (S98)."""

    def residual(spec: instances.Spec) -> float:
        W, data = instances.realize(spec)
        smax = float(smax_float(data.T))
        value = formula(smax, spec.depth)
        if value is None:  # the Frobenius mutant needs T itself
            value = 2 * spec.depth * float(np.linalg.norm(data.T)) ** (2 * (1 - 1 / spec.depth))
        return float(excess(np.asarray(value), true_lambda_max(W, data)))

    return search(ctx, small_specs(), residual, FD_RTOL, FD_REASON, shape=lambda s: s.label())


def small_specs(minimum=strategies.minimum_kinds) -> st.SearchStrategy:
    return strategies.specs(shape=strategies.dims(depth=st.integers(1, 4), width=st.integers(1, 4)),
                            sigma=st.just("identity"), minimum=minimum)


@check("S98", method="float", printed=flattest_value_printed, mutants=VALUE_MUTANTS, without="Sigma_x = I",
       name="s98_with_scaled_sigma", backend=True)
def s98_with_scaled_sigma(ctx: Context, formula) -> Measurement:
    """With Sigma_x = c I the loss, hence H_w, scales by c on the same Omega, so the minimum over Omega is
    lambda_max at the canonical minimum (finite-difference Hessian of the full loss): against (S98) for
    Sigma_x = I and c I, both on ``ctx.xp``."""
    batches = sigma_batches(ctx, ("canonical",), ("identity", "scaled"))
    res = lambda b: relative(b.lam_on(ctx), value_on(ctx, formula, b))
    return smallest_failure(batches, res, FD_RTOL, FD_REASON,
                            scaled_sigma_lambda_over_c_value_minus_1=scaled_sigma_ratio(batches))


def mp_s98_residual(ctx: Context, formula, inst: MpInstance) -> mpmath.mpf:
    lam = inst.lam
    value = formula(inst.smax, mpmath.mpf(inst.shape.m))
    if inst.family == "random (S104)":
        return max(mpmath.mpf(0), (value - lam) / value)
    return abs(lam - value) / value


@check("S98", method="mpmath", printed=flattest_value_printed, mutants=VALUE_MUTANTS)
def s98_at_50_digits(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits: lambda_max of the hyper-dual Hessian of canonical minima equals (S98), that of
    random (S104) minima is not below it."""
    return mp_measurement(ctx, ["canonical", "random (S104)"], lambda inst: mp_s98_residual(ctx, formula, inst))


def mp_measurement(ctx: Context, families: Sequence[str], residual: Callable[[MpInstance], Any]) -> Measurement:
    worst, bad, shapes, count = mpmath.mpf(0), None, set(), 0
    with mpmath.workdps(ctx.dps):
        for inst in mp_instances(ctx, families):
            r = residual(inst)
            count += 1
            shapes.add(f"{inst.family} {inst.shape.label()}")
            if r > worst:
                worst, bad = r, inst
        tol = mp_tolerance(ctx)
        return Measurement(residual=float(worst), tolerance=float(tol), tolerance_reason=mp_reason(ctx),
                           instances=count, shapes=sorted(shapes),
                           counterexample=bad.replay() | {"residual": mpmath.nstr(worst, 5)} if worst > tol else None,
                           details={"worst_residual": mpmath.nstr(worst, 5)})


# ----------------------------------------------------------------------------------------------------
# S99: the separable relaxation
# ----------------------------------------------------------------------------------------------------


def s99_parts(relax: Relaxation, b: Batch, ctx: Context | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three members of (S99) other than lambda_max, computed on the backend of ``ctx``."""
    ctx = ctx or Context()
    if relax is S99_PRINTED:
        middle, upper = b.relaxation_on(ctx)
    else:
        middle, upper = b.on_backend(ctx, lambda W, data, T: relaxation_values(relax, W))
    return value_on(ctx, relax.value, b), middle, upper


def s99_residual(relax: Relaxation, b: Batch, ctx: Context | None = None) -> np.ndarray:
    ctx = ctx or Context()
    lower, middle, upper = s99_parts(relax, b, ctx)
    lam = b.lam_on(ctx)
    return np.maximum.reduce([excess(lower, lam), relative(middle, lam), excess(lam, upper)])


@check("S99", method="float", printed=S99_PRINTED, mutants=S99_MUTANTS, backend=True)
def s99_chain_against_hessian(ctx: Context, formula: Relaxation) -> Measurement:
    """Against lambda_max of the finite-difference Hessian at minima of every family (Sigma_x = I): the
    value of (S98) is below it, the max of the printed objective over ||B||_F = 1 (dense eigensolver of
    its quadratic form) equals it, the separable max is above it; all of it on ``ctx.xp`` (the minima
    found by the greedy search are found on the host). Slacks and ratios in details (host)."""
    batches = batches_for(ctx) + searched_for(ctx)
    first = lambda b: (b.lam - s99_parts(S99_PRINTED, b)[0]) / b.lam
    second = lambda b: s99_parts(S99_PRINTED, b)[2] / b.lam - 1
    return measure(batches, lambda b: s99_residual(formula, b, ctx), FD_RTOL, FD_REASON,
                   extra=lambda b, i: {"lambda_max": b.lam[i]},
                   first_inequality_min_slack=min_by(batches, first, lambda b: b.family),
                   second_inequality_min_slack=min_by(batches, second, lambda b: f"m={b.shape.m}"),
                   second_inequality_max_ratio_upper_over_lambda=max_by(batches, lambda b: second(b) + 1,
                                                                        lambda b: f"m={b.shape.m}"),
                   tightness="both inequalities are equalities at the flattest families (slack ~ 0); the second "
                             "is an identity for m <= 2 (slack 0 on every minimum), strict for m >= 3")


@check("S99", method="hypothesis", printed=S99_PRINTED, mutants=S99_MUTANTS)
def s99_search(ctx: Context, formula: Relaxation) -> Measurement:
    """Hypothesis search over widths, ranks and kinds of minima (Sigma_x = I) for a violation of either
    inequality or of the equality of (S99), against the finite-difference Hessian; targeted towards a large
    ratio (separable max) / lambda_max, whose largest value found is the best reverse constant (details)."""
    seen = {"first_min_slack": np.inf, "second_min_slack": np.inf, "max_upper_over_lambda": {}}

    def residual(spec: instances.Spec) -> float:
        W, data = instances.realize(spec)
        b = single_batch(spec, W, data)
        lower, middle, upper = s99_parts(formula, b)
        lam = float(b.lam[0])
        ratio = float(upper[0]) / lam
        target(ratio, label="separable max / lambda_max")
        seen["first_min_slack"] = min(seen["first_min_slack"], (lam - float(lower[0])) / lam)
        seen["second_min_slack"] = min(seen["second_min_slack"], ratio - 1)
        key = f"m={spec.depth}"
        seen["max_upper_over_lambda"][key] = max(seen["max_upper_over_lambda"].get(key, 0.0), ratio)
        return float(s99_residual(formula, b)[0])

    m = search(ctx, small_specs(), residual, FD_RTOL, FD_REASON, shape=lambda s: s.label())
    m.details = {**m.details, **seen,
                 "best_constants": "lower <= lambda_max and lambda_max <= separable max are both attained "
                                   "(constant 1); "
                                   "separable max <= m lambda_max always (each term is at most lambda_max), and the "
                                   "largest ratio found is listed per depth"}
    return m


def single_batch(spec: instances.Spec, weights: Sequence[np.ndarray], data: ln.Data) -> Batch:
    """One realised spec as a batch of size 1."""
    lifted = ln.Data(*(np.asarray(x)[None] for x in (data.Sigma_x, data.Sigma_yx, data.T, data.Sigma_x_half, data.y2)))
    return Batch(spec.minimum, Shape(spec.dims, spec.rank), spec.sigma, [w[None] for w in weights], lifted, spec.seed)


@check("S99", method="float", printed=S99_PRINTED, mutants=S99_MUTANTS, without="Sigma_x = I", backend=True)
def s99_with_general_sigma(ctx: Context, formula: Relaxation) -> Measurement:
    """The chain of (S99) against the finite-difference Hessian of the loss with Sigma_x = I, c I, SPD and
    ill-conditioned, on ``ctx.xp``: the equality step is (S56) with Sigma_x^{1/2} dropped."""
    batches = sigma_batches(ctx)
    res = lambda b: s99_residual(formula, b, ctx)
    return smallest_failure(batches, res, FD_RTOL, FD_REASON,
                            max_residual_by_sigma=max_by(batches, res, lambda b: b.sigma))


# ----------------------------------------------------------------------------------------------------
# S100: one term of the separable problem
# ----------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def arbitrary_weight_batches(seed: int, n: int) -> tuple[Batch, ...]:
    """Gaussian weights (not minima) with layer scales exp(U(-1.5, 1.5)): S100 and S101 hold for any matrices."""
    out = []
    for shape in SHAPES:
        rng = np.random.default_rng(derive_seed(seed, "section VIII arbitrary", shape.label()))
        W = [rng.standard_normal((n, shape.dims[k + 1], shape.dims[k])) * np.exp(rng.uniform(-1.5, 1.5, (n, 1, 1)))
             for k in range(shape.m)]
        R = np.broadcast_to(np.eye(shape.dims[0]), (n, shape.dims[0], shape.dims[0])).copy()
        out.append(Batch("arbitrary weights", shape, "identity", W, ln.from_target(ln.end_to_end(W), R), seed))
    return tuple(out)


def any_weights(ctx: Context) -> list[Batch]:
    n = per_family(ctx, len(FAMILIES) + 1, len(SHAPES))
    return list(arbitrary_weight_batches(ctx.seed, n)) + batches_for(ctx)


def per_layer(ctx: Context, b: Batch, sides: Callable[[list, Any, int], tuple]) -> list[tuple[np.ndarray, ...]]:
    """``sides(weights, T, k)`` for k = 1..m, computed on ``ctx.xp``, back on the host."""
    m = b.shape.m
    flat = b.on_backend(ctx, lambda W, data, T: tuple(x for k in range(1, m + 1) for x in sides(W, T, k)))
    width = len(flat) // m
    return [flat[width * j:width * (j + 1)] for j in range(m)]


def s100_residual(tv: TermValue, b: Batch, ctx: Context | None = None) -> np.ndarray:
    def sides(W: list, T: Any, k: int) -> tuple:
        truth = ln.namespace(*W).linalg.eigvalsh(quadratic_form(tv.term, W, k))[..., -1]
        return tv.value(above(W, k), below(W, k)), truth

    return np.max([relative(value, truth) for value, truth in per_layer(ctx or Context(), b, sides)], axis=0)


@check("S100", method="float", printed=S100_PRINTED, mutants=S100_MUTANTS, backend=True)
def s100_value_against_eigensolver(ctx: Context, formula: TermValue) -> Measurement:
    """For every k, the max of the printed objective of (S100) over ||B_k||_F = 1 (dense eigensolver of its
    quadratic form) against its value from (S87), sigma_max(A_k)^2 sigma_max(B_k)^2 (SVD), on arbitrary
    weights and on minima of every family; both on ``ctx.xp``."""
    return measure(any_weights(ctx), lambda b: s100_residual(formula, b, ctx), SVD_RTOL, SVD_REASON)


@check("S100", method="mpmath", printed=S100_PRINTED,
       mutants={"objective with products off by one": S100_MUTANTS["objective with products off by one"],
                "squares dropped": TermValue(term_printed, lambda a, b, norm=mp_smax: norm(a) * norm(b))})
def s100_at_50_digits(ctx: Context, formula: TermValue) -> Measurement:
    """At ctx.dps digits, on minima of several families and shapes: the top eigenvalue of the quadratic form
    of (S100) (mpmath eigsy) against sigma_max(A_k)^2 sigma_max(B_k)^2 (mpmath svd_r)."""
    def residual(inst: MpInstance) -> Any:
        worst = mpmath.mpf(0)
        for k in range(1, inst.shape.m + 1):
            G = quadratic_form(formula.term, inst.weights, k)
            truth = max(mpmath.eigsy(mpmath.matrix(G.tolist()), eigvals_only=True))
            value = formula.value(above(inst.weights, k), below(inst.weights, k), norm=mp_smax)
            worst = max(worst, abs(value - truth) / truth)
        return worst

    return mp_measurement(ctx, ["rotated flattest", "random (S104)"], residual)


# ----------------------------------------------------------------------------------------------------
# S101: submultiplicativity
# ----------------------------------------------------------------------------------------------------


def s101_sides(formula: Callable, weights: Sequence[Any], k: int, norm: Callable = smax_float) -> tuple[Any, Any]:
    return formula([norm(W) for W in weights], norm(above(weights, k)), norm(below(weights, k)), k)


def s101_residual(formula: Callable, b: Batch, ctx: Context | None = None) -> np.ndarray:
    sides = per_layer(ctx or Context(), b, lambda W, T, k: s101_sides(formula, W, k))
    return np.max([excess(*pair) for pair in sides], axis=0)


def s101_ratio(b: Batch) -> np.ndarray:
    """min over k of lhs / rhs (1 = tight)."""
    return np.min([np.divide(*s101_sides(s101_printed, b.weights, k)) for k in range(1, b.shape.m + 1)], axis=0)


@check("S101", method="float", printed=s101_printed, mutants=S101_MUTANTS, backend=True)
def s101_on_weights(ctx: Context, formula) -> Measurement:
    """sigma_max(A_k)^2 sigma_max(B_k)^2 against prod_{i != k} sigma_max(W_i)^2 (float64 SVD) for every k,
    on ``ctx.xp``, on arbitrary weights and minima of every family; slack (lhs/rhs) per family in details
    (host)."""
    batches = any_weights(ctx)
    return measure(batches, lambda b: s101_residual(formula, b, ctx), SVD_RTOL, SVD_REASON,
                   max_ratio_lhs_over_rhs_by_family=max_by(batches, lambda b: np.max(
                       [np.divide(*s101_sides(s101_printed, b.weights, k)) for k in range(1, b.shape.m + 1)], axis=0),
                       lambda b: b.family),
                   min_ratio_lhs_over_rhs_by_family=min_by(batches, s101_ratio, lambda b: b.family),
                   tightness="attained (ratio 1) at canonical and every hypothesis family; the ratio is 0 when "
                             "a partial product vanishes, so no reverse constant exists")


@check("S101", method="hypothesis", printed=s101_printed, mutants=S101_MUTANTS)
def s101_search(ctx: Context, formula) -> Measurement:
    """Hypothesis search over chains of Gaussian matrices (depth 1-5, widths 1-4, layer scales 0.1-10)
    for a k where sigma_max(A_k)^2 sigma_max(B_k)^2 exceeds prod_{i != k} sigma_max(W_i)^2."""
    chain = st.tuples(strategies.dims(depth=st.integers(1, 5), width=st.integers(1, 4)),
                      st.integers(0, 2**32 - 1), st.floats(-2.3, 2.3))

    closest: dict[str, float] = {}

    def residual(example) -> float:
        dims, seed, log_scale = example
        rng = np.random.default_rng(seed)
        W = [rng.standard_normal((dims[k + 1], dims[k])) * np.exp(log_scale * rng.uniform(-1, 1))
             for k in range(len(dims) - 1)]
        sides = [s101_sides(formula, W, k) for k in range(1, len(W) + 1)]
        ratio = max(float(lhs / rhs) for lhs, rhs in sides if rhs > 0) if any(rhs > 0 for _, rhs in sides) else 0.0
        if len(W) >= 3:  # for m <= 2 (S101) is an identity; tightness is only a question for m >= 3
            target(ratio, label="lhs / rhs, m >= 3")
            key = f"m={len(W)}"
            closest[key] = max(closest.get(key, 0.0), ratio)
        return float(max(excess(lhs, rhs) for lhs, rhs in sides))

    m = search(ctx, chain, residual, SVD_RTOL, SVD_REASON, shape=lambda ex: "x".join(map(str, ex[0])))
    m.details = {**m.details, "max_lhs_over_rhs_by_depth": closest,
                 "tightness": "(S101) is an identity for m <= 2; for m >= 3 equality needs aligned singular vectors "
                              "(attained by the flattest families, see s101_on_weights)"}
    return m


@check("S101", method="mpmath", printed=s101_printed, mutants=S101_MUTANTS)
def s101_at_50_digits(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits (mpmath svd_r): the inequality on rotated flattest and random (S104) minima; at the
    flattest ones it is an equality to 40 digits (tight), which float64 cannot resolve."""
    def residual(inst: MpInstance) -> Any:
        worst = mpmath.mpf(0)
        for k in range(1, inst.shape.m + 1):
            lhs, rhs = s101_sides(formula, inst.weights, k, norm=mp_smax)
            worst = max(worst, (lhs - rhs) / rhs)
            if inst.family == "rotated flattest":
                worst = max(worst, abs(lhs - rhs) / rhs)  # tightness at the flattest minima
        return worst

    return mp_measurement(ctx, ["rotated flattest", "random (S104)"], residual)


# ----------------------------------------------------------------------------------------------------
# S102: the product under the hypothesis
# ----------------------------------------------------------------------------------------------------


def s102_symbolic_residual(members: tuple) -> sp.Expr:
    a, b, c = (sp.powsimp(sp.simplify(x), force=True) for x in members)
    return sp.simplify(a - b) != 0 or sp.simplify(b - c) != 0


@check("S102", method="sympy", printed=s102_printed, mutants=S102_MUTANTS)
def s102_each_depth(ctx: Context, formula) -> Measurement:
    """With sigma_max(W_i) = s^{1/m} (s > 0 symbolic, and s = 0 for m >= 2), the three members of (S102)
    are equal, exactly, for every m = 1..max_depth and k = 1..m."""
    s = sp.Symbol("s", positive=True)
    shapes = []
    for m in range(1, ctx.profile.max_depth + 1):
        M = sp.Integer(m)
        for k in range(1, m + 1):
            members = formula(lambda i: s ** (1 / M), s, M, k)
            zero = [x.subs(s, 0) if m >= 2 else x.subs(s, 1) for x in members]
            if s102_symbolic_residual(members) or len(set(zero)) != 1:
                return Measurement(1.0, 0.0, EXACT, len(shapes) + 1, shapes + [f"m={m}"],
                                   counterexample={"m": m, "k": k, "members": [str(x) for x in members]})
        shapes.append(f"m={m}")
    return Measurement(0.0, 0.0, EXACT, len(shapes), shapes)


@check("S102", method="sympy", printed=s102_printed, mutants=S102_MUTANTS, proves=True)
def s102_every_depth(ctx: Context, formula) -> Measurement:
    """With m a symbolic positive integer, k a symbolic index and s = sigma_max(T) > 0, the members of (S102)
    are equal as sympy expressions (products as sympy Product): a proof for every depth."""
    s = sp.Symbol("s", positive=True)
    m = sp.Symbol("m", integer=True, positive=True)
    k = sp.Symbol("k", integer=True, positive=True)
    members = formula(lambda i: s ** (1 / m), s, m, k, prod=symbolic_product_except)
    bad = s102_symbolic_residual(members)
    return Measurement(float(bool(bad)), 0.0, EXACT, 1, ["m symbolic"],
                       counterexample={"members": [str(x) for x in members]} if bad else None)


@check("S102", method="float", printed=s102_printed, mutants=S102_MUTANTS, backend=True)
def s102_from_weights(ctx: Context, formula) -> Measurement:
    """On the minima of every family that satisfies the hypothesis (verified here from the weights: the
    first member uses sigma_max(W_i) by SVD), the three members of (S102) agree for every k; the members
    are computed on ``ctx.xp``."""
    batches = batches_for(ctx, tuple(HYPOTHESIS_FAMILIES))

    def residual(b: Batch) -> np.ndarray:
        def members(W: list, T: Any, k: int) -> tuple:
            return formula(lambda i: smax_float(W[i - 1]), smax_float(T), b.shape.m, k)

        worst = [np.maximum(relative(a, c3), relative(c2, c3)) for a, c2, c3 in per_layer(ctx, b, members)]
        return np.max(worst, axis=0)

    return measure(batches, residual, 1e-10, "float64 SVD of constructed layers, m-fold products: ~1e-14",
                   max_hypothesis_gap=max_by(batches, lambda b: np.max(np.abs(b.rho - 1), axis=-1), lambda b: b.family))


# ----------------------------------------------------------------------------------------------------
# S103 and Theorem 4
# ----------------------------------------------------------------------------------------------------


@check("S103", method="float", printed=flattest_value_printed, mutants=VALUE_MUTANTS, backend=True)
def s103_on_hypothesis_families(ctx: Context, formula) -> Measurement:
    """At minima of the five families satisfying the hypothesis (Sigma_x = I; square and rectangular widths,
    full and deficient rank, repeated sigma_max(T)), lambda_max of the finite-difference Hessian against (S103),
    both on ``ctx.xp``."""
    batches = batches_for(ctx, tuple(HYPOTHESIS_FAMILIES))
    return measure(batches, lambda b: relative(b.lam_on(ctx), value_on(ctx, formula, b)), FD_RTOL, FD_REASON,
                   extra=lambda b, i: {"lambda_max": b.lam[i]})


@check("S103", method="mpmath", printed=flattest_value_printed, mutants=VALUE_MUTANTS)
def s103_at_50_digits(ctx: Context, formula) -> Measurement:
    """At ctx.dps digits: lambda_max of the hyper-dual Hessian (mpmath eigsy) at canonical, Householder-rotated
    and non-normal-lower-block minima (hypothesis checked by mpmath svd_r) against (S103)."""
    def residual(inst: MpInstance) -> Any:
        root = mpmath.root(inst.smax, inst.shape.m)
        gap = max(abs(mp_smax(W) - root) / root for W in inst.weights)
        value = formula(inst.smax, mpmath.mpf(inst.shape.m))
        return max(gap, abs(inst.lam - value) / value)

    return mp_measurement(ctx, ["canonical", "rotated flattest", "non-normal lower block"], residual)


def scalar_point(m: int, t: sp.Symbol) -> tuple[list, Any]:
    """A scalar global minimum with |w_k| = t = |tau|^{1/m}: signs alternate from the first layer on."""
    signs = [(-1) ** k for k in range(m)]
    return [e * t for e in signs], sp.Mul(*signs) * t**m


def scalar_sharpness(m: int, sx2: Any) -> tuple[sp.Matrix, Any, Any]:
    """The sympy Hessian of the scalar loss at the point above, its trace, and tau."""
    t = sp.Symbol("t", positive=True)
    w, sx2_sym, sxy, _ = sn.symbols(m)
    point, tau = scalar_point(m, t)
    H = sn.symbolic_hessian(m).subs({**dict(zip(w, point)), sxy: tau * sx2_sym}).subs(sx2_sym, sx2)
    return sp.expand(H), sp.expand(H.trace()), tau


def scalar_s103_measurement(ctx: Context, formula, sx2: Any) -> Measurement:
    """sympy: H^2 = tr(H) H (so the eigenvalues are 0 and tr H) and tr H against (S103) with sigma_max = |tau|."""
    shapes = []
    for m in range(1, ctx.profile.max_depth + 1):
        H, trace, tau = scalar_sharpness(m, sx2)
        t = next(iter(tau.free_symbols))
        rank_one = sp.expand(H * H - trace * H) == sp.zeros(m, m)
        diff = sp.simplify(sp.powsimp(trace - formula(t**m, sp.Integer(m)), force=True))
        if not rank_one or diff != 0:
            return Measurement(1.0, 0.0, EXACT, m, shapes + [f"m={m}"],
                               counterexample={"m": m, "lambda_max": str(trace),
                                               "printed": str(formula(t**m, sp.Integer(m))),
                                               "difference": str(diff), "sigma_x^2": str(sx2)})
        shapes.append(f"m={m}")
    return Measurement(0.0, 0.0, EXACT, len(shapes), shapes)


@check("S103", method="sympy", printed=flattest_value_printed, mutants=VALUE_MUTANTS)
def s103_scalar_networks(ctx: Context, formula) -> Measurement:
    """Scalar networks (d_x = d_y = 1, sigma_x^2 = 1), m = 1..max_depth: at w_k = +-|tau|^{1/m} (any tau,
    symbolic) sympy's Hessian of the loss satisfies H^2 = tr(H) H, so lambda_max = tr H, equal to (S103)."""
    return scalar_s103_measurement(ctx, formula, sp.Integer(1))


@check("S103", method="sympy", printed=flattest_value_printed, mutants=VALUE_MUTANTS, without="Sigma_x = I",
       name="s103_scalar_networks_any_sigma")
def s103_scalar_networks_any_sigma(ctx: Context, formula) -> Measurement:
    """As above with sigma_x^2 > 0 symbolic: lambda_max = 2m sigma_x^2 |tau|^{2(1-1/m)}, not (S103) unless
    sigma_x^2 = 1; the smallest counterexample is m = 1 (lambda_max = 2 sigma_x^2 against 2)."""
    return scalar_s103_measurement(ctx, formula, sn.symbols(1)[1])


# --- Sigma_x != I ------------------------------------------------------------------------------------

SIGMA_SHAPES = (Shape((1, 1), 1), Shape((2, 1, 1), 1), Shape((2, 2, 2), 2), Shape((3, 2, 3), 2),
                Shape((2, 2, 2, 2), 2))
SIGMA_KINDS = ("identity", "scaled", "spd", "ill-conditioned")


SIGMA_FAMILIES = ("canonical", "rotated flattest", "rebalanced flattest")


@lru_cache(maxsize=8)
def sigma_batches_cached(seed: int, n: int, families: tuple[str, ...], sigmas: tuple[str, ...]) -> tuple[Batch, ...]:
    return tuple(build_batch(f, s, n, sigma, seed) for s in SIGMA_SHAPES for sigma in sigmas for f in families)


def sigma_batches(ctx: Context, families: Sequence[str] = SIGMA_FAMILIES,
                  sigmas: Sequence[str] = SIGMA_KINDS) -> list[Batch]:
    """Hypothesis-satisfying minima with every kind of Sigma_x, together at least ``ctx.profile.instances``."""
    n = batch_size(ctx, len(SIGMA_SHAPES) * len(families) * len(sigmas))
    return list(sigma_batches_cached(ctx.seed, n, tuple(families), tuple(sigmas)))


def smallest_failure(batches: Sequence[Batch], residual: Callable[[Batch], np.ndarray], tolerance: float,
                     reason: str, **details: Any) -> Measurement:
    """Like ``measure``, but the counterexample kept is the failing instance of the smallest shape
    (fewest weights, then smallest d_x d_y), the worst one there."""
    results = [(b, np.broadcast_to(np.asarray(residual(b), dtype=float), (b.size,))) for b in batches]
    worst = max(float(np.max(r)) for _, r in results)
    failing = [(sum(a * c for a, c in zip(b.shape.dims, b.shape.dims[1:])), b.shape.dims[0] * b.shape.dims[-1], b, r)
               for b, r in results if np.max(r) > tolerance]
    counterexample = None
    if failing:
        _, _, b, r = min(failing, key=lambda x: (x[0], x[1]))
        i = int(np.argmax(r))
        counterexample = b.instance(i, lambda_max=b.lam[i], printed=flattest_value_printed(b.smax[i], b.shape.m),
                                    residual=r[i])
    return Measurement(residual=worst, tolerance=tolerance, tolerance_reason=reason,
                       instances=sum(b.size for b in batches), shapes=sorted({b.label for b in batches}),
                       counterexample=counterexample, details=details)


def balanced_is_not_flattest() -> dict:
    """The smallest network where the hypothesis holds but w is not flattest once Sigma_x != I:
    dims (2, 1, 1), T = [1, 0], Sigma_x = [[2, 1], [1, 2]]. On its minima W_2 = [a], W_1 = T / a, and
    lambda_max = 2 lambda_max(a^2 Sigma_x + Sigma_x^{1/2} T^T T Sigma_x^{1/2} / a^2) (checked against the
    finite-difference Hessian); a one-dimensional minimisation gives the flattest value."""
    T = np.array([[1.0, 0.0]])
    Sx = np.array([[2.0, 1.0], [1.0, 2.0]])
    R = ln.spd_sqrt(Sx)
    data = ln.from_target(T, R)
    weights = lambda a: [T / a, np.array([[a]])]
    lam = lambda a: float(true_lambda_max(weights(a), data))
    best = minimize_scalar(lambda x: lam(np.exp(x)), bounds=(-3, 3), method="bounded", options={"xatol": 1e-10})
    a_balanced = math.sqrt(float(smax_float(T)))  # sigma_max(W_2) = |a| = sigma_max(T)^{1/2}
    return to_jsonable({"dims": (2, 1, 1), "T": T, "Sigma_x": Sx, "balanced_weights": weights(a_balanced),
                        "lambda_max_balanced": lam(a_balanced), "flatter_weights": weights(float(np.exp(best.x))),
                        "lambda_max_min_over_Omega": float(best.fun),
                        "printed": float(flattest_value_printed(float(smax_float(T)), 2))})


def searched_minimum_estimate(b: Batch, i: int, rng: np.random.Generator, starts: int = 2,
                              iterations: int = 2000) -> float:
    """min lambda_max over Omega estimated by the greedy search of Section IX, started at the instance itself and
    at random minima; lambda_max of the result from the finite-difference Hessian (an upper bound on the
    minimum: the result is a global minimum). rtol = -1 disables the search's stopping test, which compares
    with the printed value (below the minimum once Sigma_x != I)."""
    T, R = b.T[i], b.data.Sigma_x_half[i]
    best = np.inf
    for s in range(starts):
        start = [W[i] for W in b.weights] if s == 0 else None
        W, _ = flattest_search.search(T, b.shape.dims, R, rng, rtol=-1.0, max_iterations=iterations, start=start)
        best = min(best, float(true_lambda_max(W, ln.from_target(T, R))))
    return best


def sigma_estimates(ctx: Context) -> list[dict]:
    """Printed value, lambda_max at a hypothesis-satisfying (canonical) minimum and the estimated flattest value,
    for one instance per tiny shape with m >= 2, d_x >= 2 and SPD Sigma_x (for Sigma_x = c I the flattest
    value is exactly c times the printed one: the loss scales by c)."""
    out = []
    rng = ctx.rng("estimates")
    for b in sigma_batches(ctx):
        if b.family != "canonical" or b.sigma not in ("spd", "ill-conditioned") or b.shape.m < 2 \
                or b.shape.dims[0] < 2 or b.shape.dims[0] * b.shape.dims[-1] > 4:
            continue
        estimate = searched_minimum_estimate(b, 0, rng)
        out.append({"shape": b.shape.label(), "Sigma_x": b.sigma,
                    "printed": float(flattest_value_printed(b.smax[0], b.shape.m)),
                    "lambda_max_balanced": float(b.lam[0]), "min_over_Omega_estimate": estimate,
                    "balanced_is_flattest": bool(estimate >= b.lam[0] * (1 - 1e-6))})
    return out


def scaled_sigma_ratio(batches: Sequence[Batch]) -> float:
    """max over Sigma_x = c I instances of |lambda_max / (c value) - 1|: the value scales with c exactly."""
    worst = 0.0
    for b in batches:
        if b.sigma == "scaled":
            c = b.data.Sigma_x[:, 0, 0]
            worst = max(worst, float(np.max(relative(b.lam, c * flattest_value_printed(b.smax, b.shape.m)))))
    return worst


@check("S103", method="float", printed=flattest_value_printed, mutants=VALUE_MUTANTS, without="Sigma_x = I",
       name="s103_with_general_sigma", backend=True)
def s103_with_general_sigma(ctx: Context, formula) -> Measurement:
    """At hypothesis-satisfying minima (canonical, rotated, rebalanced) with Sigma_x = I, c I, SPD and
    ill-conditioned, lambda_max of the finite-difference Hessian of the full loss against (S103), both on
    ``ctx.xp``."""
    batches = sigma_batches(ctx)
    res = lambda b: relative(b.lam_on(ctx), value_on(ctx, formula, b))
    return smallest_failure(batches, res, FD_RTOL, FD_REASON,
                            max_residual_by_sigma=max_by(batches, res, lambda b: b.sigma))


def implication_residual(statement: Implication, b: Batch, ctx: Context | None = None) -> np.ndarray:
    """Where the hypothesis holds, the relative error of the conclusion; where it does not, 0 (vacuous).
    A family constructed to satisfy the hypothesis where it does not hold counts as a failure (inf):
    the hypothesis is verified from the weights, not assumed. With ``ctx``, hypothesis, value and
    lambda_max are computed on its backend."""
    ctx = ctx or Context()
    holds = b.on_backend(ctx, lambda W, data, T: statement.hypothesis(W, T))
    err = relative(b.lam_on(ctx), value_on(ctx, statement.value, b))
    out = np.where(holds, err, 0.0)
    if b.family in HYPOTHESIS_FAMILIES:
        out = np.where(holds, out, np.inf)
    return out


def negative_evidence(batches: Sequence[Batch]) -> dict:
    """On minima where the hypothesis fails: how often the conclusion fails too, and how close it gets."""
    out = {}
    for name in NEGATIVE_FAMILIES:
        fails, concl, count, closest = 0, 0, 0, np.inf
        for b in batches:
            if b.family != name:
                continue
            hyp_fails = ~hypothesis_printed(b.weights, b.T)
            ratio = b.lam / flattest_value_printed(b.smax, b.shape.m)
            fails += int(hyp_fails.sum())
            concl += int((hyp_fails & (ratio > 1 + FD_RTOL)).sum())
            count += b.size
            if hyp_fails.any():
                closest = min(closest, float(ratio[hyp_fails].min()))
        out[name] = {"instances": count, "hypothesis_fails": fails, "conclusion_fails_too": concl,
                     "min_lambda_over_value_where_hypothesis_fails": closest}
    return out


@check("Theorem 4", method="float", printed=THEOREM4_PRINTED, mutants=THEOREM4_MUTANTS, backend=True)
def theorem4_implication(ctx: Context, statement: Implication) -> Measurement:
    """On minima of every family (Sigma_x = I): where the hypothesis holds (checked by SVD of the weights; it
    must hold on the five families built to satisfy it), lambda_max of the finite-difference Hessian equals
    the flattest value; all of it on ``ctx.xp``. Negative evidence: on random (S104) and unbalanced-scaling
    minima the hypothesis fails and so does the conclusion (details, on the host)."""
    batches = batches_for(ctx)
    return measure(batches, lambda b: implication_residual(statement, b, ctx), FD_RTOL, FD_REASON,
                   extra=lambda b, i: {"lambda_max": b.lam[i], "rho": b.rho[i]},
                   negative_evidence=negative_evidence(batches),
                   converse=converse_evidence())


@check("Theorem 4", method="hypothesis", printed=THEOREM4_PRINTED, mutants={
    k: v for k, v in THEOREM4_MUTANTS.items() if not k.startswith("hypothesis")})
def theorem4_search(ctx: Context, statement: Implication) -> Measurement:
    """Hypothesis search over widths, ranks of T and the library's flattest generators (Sigma_x = I) for a
    minimum satisfying the hypothesis whose finite-difference lambda_max differs from the flattest value."""
    flattest = st.sampled_from(("canonical", "rotated flattest", "rebalanced flattest"))

    def residual(spec: instances.Spec) -> float:
        W, data = instances.realize(spec)
        return float(implication_residual(statement, single_batch(spec, W, data))[0])

    return search(ctx, small_specs(flattest), residual, FD_RTOL, FD_REASON, shape=lambda s: s.label())


@check("Theorem 4", method="simulation", printed=flattest_value_printed, mutants=VALUE_MUTANTS)
def theorem4_on_found_minima(ctx: Context, formula) -> Measurement:
    """Minima found by the greedy search of Section IX (rtol 1e-4, Sigma_x = I) satisfy the hypothesis only
    approximately; the proof then gives value <= lambda_max <= value (1/m) sum_k prod_{i!=k} rho_i^2
    (rho_i = sigma_max(W_i)/sigma_max(T)^{1/m}), checked against the finite-difference Hessian. How balanced
    the found minima are (the converse) is in details."""
    batches = searched_for(ctx)

    def residual(b: Batch) -> np.ndarray:
        ratio = b.lam / formula(b.smax, b.shape.m)
        return np.maximum(excess(np.ones_like(ratio), ratio), excess(ratio, relaxation_bound(b.rho)))

    gaps = {b.shape.label(): [float(g) for g in np.max(np.abs(b.rho - 1), axis=-1)] for b in batches}
    return measure(batches, residual, FD_RTOL, FD_REASON,
                   extra=lambda b, i: {"lambda_max": b.lam[i], "rho": b.rho[i]},
                   search_gap_by_shape={b.shape.label(): [r.gap for r in b.records] for b in batches},
                   hypothesis_gap_by_shape=gaps,
                   converse="minima found flattest to 1e-4 have max_k |rho_k - 1| as listed: small for m <= 2, "
                            "up to order 1 for m >= 3 (the converse of Theorem 4 fails there)")


@check("Theorem 4", method="float", printed=THEOREM4_PRINTED, mutants=THEOREM4_MUTANTS, without="Sigma_x = I",
       name="theorem4_with_general_sigma", backend=True)
def theorem4_with_general_sigma(ctx: Context, statement: Implication) -> Measurement:
    """The implication on hypothesis-satisfying minima with Sigma_x = I, c I, SPD and ill-conditioned
    (finite-difference Hessian of the full loss). For Sigma_x = c I lambda_max = c times the value (still
    flattest); for SPD Sigma_x the balanced minimum is not even flattest: details give, beside the printed
    value, lambda_max there and the min over Omega (one-dimensional minimisation on dims 2x1x1; the greedy
    search with rtol = 0 on tiny shapes). The implication runs on ``ctx.xp``; the minimisations on the host."""
    batches = sigma_batches(ctx)
    res = lambda b: implication_residual(statement, b, ctx)
    printed = statement is THEOREM4_PRINTED  # the estimates are slow: only with the printed statement
    m = smallest_failure(batches, res, FD_RTOL, FD_REASON,
                         max_residual_by_sigma=max_by(batches, res, lambda b: b.sigma),
                         scaled_sigma_lambda_over_c_value_minus_1=scaled_sigma_ratio(batches),
                         estimates=sigma_estimates(ctx) if printed else "computed for the printed statement")
    if m.counterexample is not None and printed:
        m.counterexample = {**m.counterexample, "balanced_is_not_flattest": balanced_is_not_flattest()}
    return m


# ----------------------------------------------------------------------------------------------------
# The converse (reported, not a claim of the paper)
# ----------------------------------------------------------------------------------------------------


def converse_counterexample(a: Fraction = Fraction(4), b: Fraction = Fraction(1, 5)) -> list[np.ndarray]:
    """A flattest minimum violating the hypothesis (m = 3, square, full-rank T): W_1 = W_3 = diag(1, b),
    W_2 = diag(1, a), T = diag(1, a b^2). sigma_max(W_2) = a > 1 = sigma_max(T)^{1/3}, yet for a diagonal
    network lambda_max = 2 max_{i,j} sum_k (prod_{l>k} w_{l,i})^2 (prod_{l<k} w_{l,j})^2, which is
    2 * 3 = 6, the flattest value, as long as a^2 b^2 + b^2 + 1 <= 3 (exact rationals)."""
    diag = lambda x: np.array([[Fraction(1), Fraction(0)], [Fraction(0), Fraction(x)]], dtype=object)
    return [diag(b), diag(a), diag(b)]


def converse_evidence() -> dict:
    """lambda_max of the finite-difference Hessian at ``converse_counterexample`` against the flattest value."""
    W = [np.asarray(x, dtype=float) for x in converse_counterexample()]
    T = ln.end_to_end(W)
    lam = float(true_lambda_max(W, ln.from_target(T, np.eye(2))))
    return {"weights": [w.tolist() for w in W], "lambda_max": lam,
            "flattest_value": float(flattest_value_printed(float(smax_float(T)), 3)),
            "rho": top_ratios(W, T).tolist(),
            "note": "flattest minimum with sigma_max(W_2) = 4 sigma_max(T)^{1/3}: the converse of Theorem 4 fails "
                    "for m >= 3; for m <= 2 lambda_max = 2(sigma_max(W_1)^2 + sigma_max(W_2)^2) and it holds"}
