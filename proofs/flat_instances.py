"""Certified instances for the flat-minimum theorems (Sections VI-VIII): every kind of global minimum.

A :class:`Family` is a batch of global minima of one shape with its data and its top singular pair,
tagged with a *role* saying what it is evidence for:

- ``flattest``: flattest minima with Sigma_x = I, certified by lambda_max(H_w) (dense eigensolver of
  Lemma 3's small operator) equal to the flattest value 2 m sigma_max(T)^{2(1-1/m)}:
  the canonical solution (27), rotated and rebalanced flattest minima (``proofs.minima``), two
  extremal constructions (rank-deficient T) on which the bounds of (S88) and of (S91) are attained,
  and minima FOUND by the greedy search of (S105)-(S106) followed by :func:`flattest_refine.refine`;
- ``scaled``: the same with Sigma_x = c I (flattest value c times the printed one);
- ``spd``: local minimisers of lambda_max over the global minima for a general SPD Sigma_x (search +
  refine); the printed value is not their sharpness, so they are evidence only;
- ``random``: random global minima (S104), certified NOT flattest (gap > 1e-3);
- ``weights``: Gaussian weights (a global minimum of T := W_m ... W_1; for identities valid anywhere);
- ``converse``: minima whose u-v path is balanced and aligned (all conclusions of Lemmas S1-S2 and
  Theorems 2-3 hold) while the other singular directions are unbalanced: certified NOT flattest;
- ``zero target``: flattest minima of T = 0 (lambda_max = 0), outside sigma_max(T) > 0;
- ``unpaired``: a repeated sigma_max with u, v drawn independently from the top subspaces (not a pair).

Where sigma_max(T) is repeated, (u, v) is a random *consistent* pair from the top subspaces (a new
choice per instance), so a pass holds for every choice tried. :func:`float_bank` builds the float64
families (batched), :func:`mp_bank` a few instances in mpmath at ``dps`` digits, constructed so
that they are flattest minima to that precision (orthogonal factors from Cayley transforms).
Both are cached on (seed, sizes): all checks of a run share one bank, and every instance is
reproducible from the master seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Sequence

import mpmath
import numpy as np

from verify.context import derive_seed
from verify.arrays import to_backend
from verify.measure import to_jsonable

from . import flat_properties as fp
from . import flattest_refine, flattest_search, hessian_reference, instances, lemma3, minima
from . import linear_network as ln

FLOAT_TOL = 1e-9
FLOAT_TOL_REASON = ("float64: a relative 1e-9 after at most 8 layer products, norms and one SVD "
                    "(observed <= 1e-12 on constructed minima)")
FOUND_TOL_FACTOR = 100.0
FOUND_TOL_REASON = (f"found minima are flattest only up to their certified gap g = lambda_max/flattest - 1; "
                    f"first-order properties deviate by O(sqrt g): tolerance 1e-9 + {FOUND_TOL_FACTOR:g} sqrt(g)")
NOT_FLAT_GAP = 1e-3
CERTIFIED_GAP = 1e-9  # |lambda_max / flattest value - 1| of a certified constructed flattest minimum


@dataclass(frozen=True)
class Family:
    """A batch of n global minima of one shape: weights W_k (n, d_k, d_{k-1}), target T (n, d_y, d_x),
    Sigma_x^{1/2} = R (n, d_x, d_x), top pair sigma (n,), u (n, d_y), v (n, d_x), lambda_max(H_w) for
    that data, the flattest value for that Sigma_x (nan where unknown) and per-instance tolerances."""

    name: str
    role: str
    dims: tuple[int, ...]
    W: list
    T: Any
    R: Any
    sigma: Any
    u: Any
    v: Any
    lam: np.ndarray
    target: np.ndarray
    tol: np.ndarray
    tol_reason: str = FLOAT_TOL_REASON
    meta: dict = field(default_factory=dict)

    @property
    def m(self) -> int:
        return len(self.W)

    @property
    def n(self) -> int:
        return int(self.T.shape[0])

    @property
    def exact(self) -> bool:
        return fp.is_exact(self.T)

    @property
    def gap(self) -> np.ndarray:
        """lambda_max / flattest value - 1 (nan where the flattest value is unknown or 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.lam / self.target - 1

    @property
    def label(self) -> str:
        return f"{self.name} dims={'x'.join(map(str, self.dims))}"

    def instance(self, i: int) -> dict[str, Any]:
        """The replayable data of instance i (mpf entries as decimal strings)."""
        def plain(x):
            return to_jsonable(np.vectorize(str, otypes=[object])(x) if fp.is_exact(x) else x)
        return {"family": self.name, "role": self.role, "dims": list(self.dims),
                "W": [plain(Wk[i]) for Wk in self.W], "T": plain(self.T[i]), "Sigma_x_half": plain(self.R[i]),
                "u": plain(self.u[i]), "v": plain(self.v[i]), "sigma_max": plain(self.sigma[i]),
                "lambda_max": float(self.lam[i]), "flatness_gap": float(self.gap[i])}

    def _each(self, fn: Any, tol: Any = None, **changes: Any) -> "Family":
        """The family with ``fn`` applied to every per-instance array (``tol`` to the tolerances)."""
        tol = tol or fn
        return replace(self, W=[fn(Wk) for Wk in self.W], T=fn(self.T), R=fn(self.R), sigma=fn(self.sigma),
                       u=fn(self.u), v=fn(self.v), lam=fn(self.lam), target=fn(self.target), tol=tol(self.tol),
                       **changes)

    def take(self, mask: np.ndarray, name: str | None = None) -> "Family":
        idx = np.flatnonzero(mask)
        return self._each(lambda a: a[idx], name=name or self.name)

    def rows(self, start: int, stop: int) -> "Family":
        """Instances start, ..., stop - 1 (views)."""
        return self._each(lambda a: a[start:stop])

    def on(self, xp: Any) -> "Family":
        """The float64 arrays in the Array-API namespace ``xp``; the tolerances stay NumPy (host)."""
        return self._each(lambda a: to_backend(xp, a), tol=lambda t: t)

    def numbers_per_instance(self) -> int:
        """A bound on the float64 numbers one instance needs while a statement is evaluated: the largest
        intermediate is the Kronecker matrix of the quadratic form of (S85), (d_x d_y)^2 per layer."""
        return 4 * len(self.dims) * max(self.dims) ** 4


@dataclass(frozen=True)
class Bank:
    families: tuple[Family, ...]
    meta: dict

    def role(self, *roles: str) -> list[Family]:
        return [f for f in self.families if f.role in roles]


# --- targets and pairs -----------------------------------------------------------------------------------

def repeated_top_target(rng: np.random.Generator, n: int, d_y: int, d_x: int, rank: int) -> np.ndarray:
    """T = U diag(s) V^T with s_1 = s_2 (a repeated sigma_max) and smaller s_3.. (rank >= 2)."""
    d = min(d_y, d_x)
    top = rng.uniform(0.5, 3.0, (n, 1))
    s = np.concatenate([top, top, top * rng.uniform(0.05, 0.9, (n, d - 2))], axis=-1)
    s[:, rank:] = 0
    U = minima.random_orthogonal(rng, (n,), d_y)[..., :d]
    V = minima.random_orthogonal(rng, (n,), d_x)[..., :d]
    return (U * s[:, None, :]) @ np.swapaxes(V, -1, -2)


def consistent_pairs(T: np.ndarray, rng: np.random.Generator, repeated: bool) -> tuple[np.ndarray, ...]:
    """sigma, u, v per instance: the sign-fixed pair, or a random pair from a repeated top subspace."""
    if not repeated:
        return fp.top_singular_triplet(T)
    trip = [fp.random_top_pair(t, rng) for t in T]
    return tuple(np.array([x[i] for x in trip]) for i in range(3))


def unpaired(T: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """u = U_top a, v = V_top b with a orthogonal to b: top singular vectors that are not a pair."""
    out = []
    for t in T:
        sigma, U_top, V_top, r = fp.top_subspace(t)
        a = rng.standard_normal(r)
        a /= np.linalg.norm(a)
        b = rng.standard_normal(r)
        b -= (b @ a) * a
        b /= np.linalg.norm(b)
        out.append((sigma, U_top @ a, V_top @ b))
    return tuple(np.array([x[i] for x in out]) for i in range(3))


def lambda_max(W: Sequence[np.ndarray], T: np.ndarray, R: np.ndarray) -> np.ndarray:
    return np.asarray(lemma3.lambda_max(W, ln.from_target(T, R)), dtype=float)


def make_family(name: str, role: str, W: Sequence[np.ndarray], R: np.ndarray, rng: np.random.Generator,
                repeated: bool = False, scale: np.ndarray | float = 1.0, tol: np.ndarray | float = FLOAT_TOL,
                tol_reason: str = FLOAT_TOL_REASON, **meta: Any) -> Family:
    """A float family from weights: T := W_m ... W_1 (so W is a global minimum of that data exactly)."""
    W = [np.asarray(Wk, dtype=float) for Wk in W]
    T = ln.end_to_end(W)
    sigma, u, v = consistent_pairs(T, rng, repeated)
    lam = lambda_max(W, T, R)
    target = np.asarray(lemma3.flattest_value(T, len(W)), dtype=float) * scale
    n = T.shape[0]
    return Family(name, role, ln.widths(W), W, T, R, sigma, u, v, lam, target,
                  np.broadcast_to(np.asarray(tol, dtype=float), (n,)).copy(), tol_reason, meta)


def identity_half(n: int, d: int) -> np.ndarray:
    return np.broadcast_to(np.eye(d), (n, d, d)).copy()


# --- constructed minima -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    dims: tuple[int, ...]
    rank: int
    repeated: bool = False

    def target(self, rng: np.random.Generator, n: int) -> np.ndarray:
        d_x, d_y = self.dims[0], self.dims[-1]
        if self.repeated:
            return repeated_top_target(rng, n, d_y, d_x, self.rank)
        return instances.random_target(rng, (n,), d_y, d_x, self.rank)

    def describe(self) -> str:
        top = ", sigma_1 = sigma_2" if self.repeated else ""
        return f"{'x'.join(map(str, self.dims))} rank {self.rank}{top}"


#: The domain explored by the float families: square and rectangular widths, m = 1..8, full and
#: deficient rank, a repeated top singular value.
SHAPES = (
    Shape((3, 3, 3, 3), 3),
    Shape((2, 4, 3, 5), 2),
    Shape((4, 2, 3, 2), 2),
    Shape((3, 3), 3),
    Shape((2, 2, 2), 2),
    Shape((4, 4, 4, 4), 2),
    Shape((3, 2, 2, 2, 3), 1),
    Shape((2,) * 9, 2),
    Shape((3, 3, 3, 3), 3, repeated=True),
    Shape((2, 2, 2, 2, 2), 2, repeated=True),
)
FLATTEST_GENERATORS = ("canonical", "rotated flattest", "rebalanced flattest")


def constructed_families(rng: np.random.Generator, per_shape: int) -> list[Family]:
    out = []
    for shape in SHAPES:
        d_x = shape.dims[0]
        for gen in FLATTEST_GENERATORS:
            T = shape.target(rng, per_shape)
            W = minima.GENERATORS[gen](T, shape.dims, rng)
            fam = make_family(gen, "flattest", W, identity_half(per_shape, d_x), rng, shape.repeated,
                              shape=shape.describe())
            certified = np.abs(fam.gap) <= CERTIFIED_GAP
            dropped = int(np.sum(~certified))
            out.append(replace(fam.take(certified), meta={**fam.meta, "not flattest, dropped": dropped}))
        T = shape.target(rng, per_shape)
        random = make_family("random (S104)", "random", minima.random_minimum(T, shape.dims, rng),
                             identity_half(per_shape, d_x), rng, shape.repeated, shape=shape.describe())
        out.append(random.take(random.gap > NOT_FLAT_GAP))  # certified not flattest (none for m = 1)
        W = [rng.standard_normal((per_shape, b, a)) for a, b in zip(shape.dims[:-1], shape.dims[1:])]
        out.append(make_family("Gaussian weights", "weights", W, identity_half(per_shape, d_x), rng,
                               shape=shape.describe()))
    return out


def rotate(W: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """O_m^T-free conjugation W_k -> O_k^T W_k O_{k-1} with Haar O_0..O_m: keeps every singular value
    of every layer and of every partial product (T becomes O_m^T T O_0)."""
    n = W[0].shape[0]
    dims = ln.widths(W)
    O = [minima.random_orthogonal(rng, (n,), d) for d in dims]
    return [np.swapaxes(O[k + 1], -1, -2) @ Wk @ O[k] for k, Wk in enumerate(W)]


def diagonal_network(values: np.ndarray) -> list[np.ndarray]:
    """Layers diag(values[:, k, :]) (n, m, d) -> list of (n, d, d)."""
    return [np.einsum("nq,qr->nqr", values[:, k, :], np.eye(values.shape[-1])) for k in range(values.shape[1])]


def extremal_prefix_values(m: int, c: Any, root: Any) -> list[list[Any]]:
    """Layer values (2 per layer) of a flattest minimum of T = diag(c^m, 0) with
    sigma_max(W_1) = sqrt(m-1) c: W_1 = diag(c, sqrt(m-1) c), W_l = diag(c, 0) for l >= 2.
    In the small operator of this diagonal net the (i, j) = (1, 2) eigenvalue is
    2 (c^{2(m-1)} + (m-1) c^{2(m-1)}) = 2 m c^{2(m-1)}, equal to the top (1, 1) one: flattest, and the
    intermediate gain sigma_max(W_1) / sigma^{1/m} = sqrt(m-1) attains the sharp constant of (S91)."""
    return [[c, root(m - 1) * c]] + [[c, 0 * c] for _ in range(m - 1)]


def extremal_product_values(c: Any, root: Any) -> list[list[Any]]:
    """m = 3, T = diag(c^3, 0): W_1 = diag(c, 3^{1/4} c), W_2 = diag(c, 0), W_3 = diag(c, 3^{1/4} c).
    Eigenvalues of the small operator: (1,1) and (2,2) give 6 c^4 (flattest), (1,2) and (2,1) give
    2 (1 + sqrt 3) c^4; and sigma_max(W_1) sigma_max(W_3) = sqrt(3) c^2 = sqrt(m) sigma^{(m-1)/m}:
    (S88) and (S89) hold with equality at k = 2."""
    a = root(root(3)) * c
    return [[c, a], [c, 0 * c], [c, a]]


def extremal_families(rng: np.random.Generator, per_shape: int) -> list[Family]:
    out = []
    for m in (2, 3, 5, 8):
        c = rng.uniform(0.6, 1.6, per_shape)
        values = np.array([extremal_prefix_values(m, ci, np.sqrt) for ci in c])
        W = rotate(diagonal_network(values), rng)
        out.append(make_family("extremal: sigma_max(W_1) = sqrt(m-1) sigma^{1/m}", "flattest", W,
                               identity_half(per_shape, 2), rng))
    c = rng.uniform(0.6, 1.6, per_shape)
    W = rotate(diagonal_network(np.array([extremal_product_values(ci, np.sqrt) for ci in c])), rng)
    out.append(make_family("extremal: (S88) with equality, m = 3", "flattest", W, identity_half(per_shape, 2), rng))
    return out


def converse_families(rng: np.random.Generator, per_shape: int) -> list[Family]:
    """Minima with a balanced, aligned u-v path and unbalanced other directions (not flattest), and
    the 2x2 example W_1 = diag(sqrt 2, 1.9), W_2 = diag(sqrt 2, 1/1.9) (T = diag(2, 1))."""
    out = []
    for dims in ((3, 3, 3, 3), (2, 3, 2), (2, 2, 2, 2, 2)):
        m, d = len(dims) - 1, min(dims)
        top = rng.uniform(0.6, 1.6, (per_shape, 1, 1))
        z = rng.standard_normal((per_shape, m, d - 1)) * 1.5
        z -= z.mean(axis=1, keepdims=True)
        shrink = rng.uniform(0.1, 0.9, (per_shape, 1, d - 1)) ** (1 / m)  # prod over layers < top^m
        values = np.concatenate([np.repeat(top, m, axis=1), top * shrink * np.exp(z)], axis=-1)
        T = instances.random_target(rng, (per_shape,), dims[-1], dims[0], d)
        W = minima.rotated_flattest(T, dims, rng, layer_values=values)
        fam = make_family("converse candidates: balanced u-v path, unbalanced elsewhere", "converse", W,
                          identity_half(per_shape, dims[0]), rng)
        out.append(fam.take(fam.gap > NOT_FLAT_GAP))
    W = [np.diag([np.sqrt(2), 1.9])[None], np.diag([np.sqrt(2), 1 / 1.9])[None]]
    out.append(make_family("converse: W1 = diag(sqrt2, 1.9), W2 = diag(sqrt2, 1/1.9)", "converse", W,
                           identity_half(1, 2), rng))
    return out


def zero_target_families(rng: np.random.Generator) -> list[Family]:
    """Flattest minima of T = 0 (lambda_max = 0): m = 3 scalar (1, 0, 0), m = 3 with W_1 Gaussian and
    W_2 = W_3 = 0, m = 2 with W = 0 (the only flattest minimum there). Lemma 3's Phi_k = B_k (x) A_k^T
    vanishes for every k, so lambda_max = 0 exactly; sympy's Hessian of the scalar loss at (1, 0, 0)
    confirms it independently (``meta``)."""
    nets = [
        [np.ones((1, 1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1, 1))],
        [rng.standard_normal((4, 2, 2)), np.zeros((4, 2, 2)), np.zeros((4, 2, 2))],
        [np.zeros((2, 2, 2)), np.zeros((2, 2, 2))],
    ]
    out = []
    for W in nets:
        n, d = W[0].shape[0], W[0].shape[-1]
        fam = make_family("zero target T = 0", "zero target", W, identity_half(n, d), rng)
        out.append(replace(fam, target=np.zeros(n)))
    scalar = [Wk[0] for Wk in nets[0]]
    H = hessian_reference.sympy_hessian(scalar, ln.from_target(np.zeros((1, 1)), np.eye(1)))
    out[0] = replace(out[0], meta={"sympy Hessian at (1, 0, 0) is exactly zero": bool(all(x == 0 for x in H))})
    return out


# --- found minima ---------------------------------------------------------------------------------------

FOUND_SHAPES = (
    Shape((2, 2, 2), 2),
    Shape((2, 3, 2), 2),
    Shape((3, 4, 2), 2),
    Shape((3, 3, 3, 3), 3),
    Shape((3, 3, 3, 3), 2),
    Shape((2, 2, 2, 2, 2), 2),
    Shape((3, 3, 3), 3, repeated=True),
)


def found_minimum(T: np.ndarray, dims: tuple[int, ...], R: np.ndarray, rng: np.random.Generator,
                  iterations: int) -> list[np.ndarray]:
    """The greedy search of (S105)-(S106) (relative gap 1e-3 or ``iterations`` steps), then refine."""
    W, _ = flattest_search.search(T, dims, R, rng, rtol=1e-3, max_iterations=iterations)
    return flattest_refine.refine(W, R)[0]


def found_family(shape: Shape, count: int, kind: str, rng: np.random.Generator) -> Family:
    """``count`` found minima of one shape for Sigma_x of ``kind`` (identity, scaled or spd)."""
    d_x = shape.dims[0]
    T = shape.target(rng, count)
    R = instances.random_sigma_half(rng, (count,), d_x, kind)
    W = [found_minimum(T[i], shape.dims, R[i], rng, 3000 if kind == "identity" else 1500) for i in range(count)]
    W = [np.stack([w[k] for w in W]) for k in range(len(shape.dims) - 1)]
    scale = R[:, 0, 0] ** 2 if kind == "scaled" else (np.nan if kind == "spd" else 1.0)
    role = {"identity": "flattest", "scaled": "scaled", "spd": "spd"}[kind]
    fam = make_family(f"found (S105-S106 search + refine), Sigma_x {kind}", role, W, R, rng, shape.repeated,
                      scale=scale, tol_reason=FOUND_TOL_REASON, shape=shape.describe())
    if kind == "spd":
        return fam
    gap = np.maximum(fam.gap, 0.0)
    return replace(fam, tol=FLOAT_TOL + FOUND_TOL_FACTOR * np.sqrt(gap + np.finfo(float).eps))


def found_families(rng: np.random.Generator, count: int) -> list[Family]:
    out = [found_family(shape, count, "identity", rng) for shape in FOUND_SHAPES]
    out += [found_family(Shape((2, 2, 2, 2), 2), count, "scaled", rng)]
    out += [found_family(shape, max(1, count // 2), "spd", rng) for shape in (Shape((2, 2, 2), 2), Shape((3, 3, 3), 3),
                                                                               Shape((2, 2, 2, 2), 2))]
    return out


def scaled_copies(families: Sequence[Family], rng: np.random.Generator) -> list[Family]:
    """The constructed flattest minima again with Sigma_x = c I: the same weights, lambda_max times c."""
    out = []
    for f in families:
        c = np.exp(rng.uniform(np.log(0.1), np.log(10.0), f.n))
        R = np.sqrt(c)[:, None, None] * f.R
        out.append(replace(f, name=f"{f.name}, Sigma_x = c I", role="scaled", R=R,
                           lam=lambda_max(f.W, f.T, R), target=f.target * c))
    return out


def unpaired_copies(families: Sequence[Family], rng: np.random.Generator) -> list[Family]:
    out = []
    for f in families:
        sigma, u, v = unpaired(f.T, rng)
        out.append(replace(f, name=f"{f.name}, unpaired u, v", role="unpaired", sigma=sigma, u=u, v=v))
    return out


def cross_check_lambda(families: Sequence[Family], per_family: int = 2) -> float:
    """Largest relative difference between lambda_max from Lemma 3's small operator and from the
    finite-difference Hessian of the loss (an independent route) on a few instances per family."""
    worst = 0.0
    for f in families:
        idx = np.arange(min(per_family, f.n))
        W = [Wk[idx] for Wk in f.W]
        H = hessian_reference.finite_difference_hessian(W, ln.from_target(f.T[idx], f.R[idx]))
        lam = np.linalg.eigvalsh(H)[..., -1]
        worst = max(worst, float(np.max(np.abs(lam - f.lam[idx]) / np.maximum(f.lam[idx], 1e-300))))
    return worst


@lru_cache(maxsize=4)
def float_bank(seed: int, instances_per_check: int) -> Bank:
    """All float families, sized so that the flattest constructed families hold about
    ``instances_per_check`` instances in all (rounded up; with the extremal and found minima every check
    on the flattest minima sees at least that many); found minima: 1-6 per shape."""
    rng = np.random.default_rng(derive_seed(seed, "flat minima bank"))
    per_shape = max(2, -(-instances_per_check // (len(SHAPES) * len(FLATTEST_GENERATORS))))
    found_count = int(np.clip(instances_per_check // 500, 1, 6))
    constructed = constructed_families(rng, per_shape)
    extremal = extremal_families(rng, max(2, per_shape // 4))
    found = found_families(rng, found_count)
    flat_constructed = [f for f in constructed if f.role == "flattest"]
    repeated = [f for f in flat_constructed if "sigma_1 = sigma_2" in f.meta.get("shape", "")]
    families = (constructed + extremal + found + scaled_copies(flat_constructed[::3], rng)
                + unpaired_copies(repeated, rng) + converse_families(rng, max(4, per_shape // 2))
                + zero_target_families(rng))
    families = [f for f in families if f.n]
    certified = [f for f in families if f.role in ("flattest", "scaled") and f.n]
    worst = max(certified, key=lambda f: float(np.max(np.abs(f.gap))))
    meta = {
        "max |flatness gap| of the flattest families": {"gap": float(np.max(np.abs(worst.gap))), "at": worst.label},
        "min flatness gap of the random (S104) families":
            min(float(np.min(f.gap)) for f in families if f.role == "random"),
        "lambda_max: Lemma 3 operator vs finite-difference Hessian (max rel. diff)":
            cross_check_lambda([f for f in families if f.role in ("flattest", "random") and f.n][::4]),
    }
    dropped = {f.label: f.meta["not flattest, dropped"] for f in families if f.meta.get("not flattest, dropped")}
    meta["generated as flattest but not flattest (dropped; see minima.rebalanced_values)"] = dropped
    bad = [f.label for f in certified if f.name.startswith("extremal") and np.max(np.abs(f.gap)) > CERTIFIED_GAP]
    if bad:
        raise AssertionError(f"extremal constructions not certified flattest: {bad}")
    return Bank(tuple(families), meta)


# --- high precision ---------------------------------------------------------------------------------------

def mp_array(x: Any) -> np.ndarray:
    return np.vectorize(mpmath.mpf, otypes=[object])(np.asarray(x, dtype=float))


def cayley_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """An orthogonal d x d matrix in mpf at the working precision: (I - K)(I + K)^{-1}, K skew."""
    K = rng.standard_normal((d, d))
    K = mpmath.matrix(((K - K.T) / 2).tolist())
    eye = mpmath.eye(d)
    Q = (eye - K) * mpmath.inverse(eye + K)
    return np.array(Q.tolist(), dtype=object)


def mp_network(values: Sequence[Sequence[Any]], dims: Sequence[int], rng: np.random.Generator,
               rotate_hidden: bool = True) -> list[np.ndarray]:
    """W_k = O_k^T D_k O_{k-1} in mpf with D_k the d_k x d_{k-1} diagonal of values[k] and Cayley
    orthogonal O_0..O_m (hidden ones the identity unless ``rotate_hidden``): a network whose layers
    and partial products have exactly the singular values set by ``values`` (to the precision)."""
    m = len(dims) - 1
    O = [cayley_orthogonal(rng, d) if (rotate_hidden or k in (0, m)) else np.eye(d, dtype=int).astype(object)
         for k, d in enumerate(dims)]
    W = []
    for k in range(m):
        D = np.zeros((dims[k + 1], dims[k]), dtype=object)
        D[:] = mpmath.mpf(0)
        for q, val in enumerate(values[k][:min(dims[k], dims[k + 1])]):
            D[q, q] = mpmath.mpf(val)
        W.append(O[k + 1].T @ D @ O[k])
    return W


def mp_lambda_max(W: Sequence[np.ndarray], R: np.ndarray) -> mpmath.mpf:
    """lambda_max of Lemma 3's small operator 2 Phi^T Phi, by mpmath's symmetric eigensolver."""
    S = lemma3.small_operator(list(W), ln.from_target(ln.end_to_end(list(W)), R))
    return max(mpmath.eigsy(mpmath.matrix(S.tolist()), eigvals_only=True))


def mp_family(name: str, role: str, nets: Sequence[Sequence[np.ndarray]], tol: float, **meta: Any) -> Family:
    W = [np.stack([net[k] for net in nets]) for k in range(len(nets[0]))]
    T = ln.end_to_end(W)
    d_x = T.shape[-1]
    R = np.stack([np.eye(d_x, dtype=int).astype(object) * mpmath.mpf(1)] * len(nets))
    sigma, u, v = fp.top_singular_triplet(T)
    lam = np.array([mp_lambda_max([Wk[i] for Wk in W], R[i]) for i in range(len(nets))], dtype=object)
    m = len(W)
    target = np.array([2 * m * s ** (2 * (1 - mpmath.mpf(1) / m)) for s in sigma], dtype=object)
    return Family(name, role, ln.widths(W), W, T, R, sigma, u, v, lam, target,
                  np.full(len(nets), tol), f"mpmath at {mpmath.mp.dps} digits: 1e-{mpmath.mp.dps - 10}", meta)


def float_values(rng: np.random.Generator, dims: tuple[int, ...], rank: int, kind: str) -> np.ndarray:
    """Layer values (m, q) for the mp constructions: canonical sigma_q^{1/m}, or rebalanced."""
    m, q = len(dims) - 1, min(dims)
    s = np.sort(rng.uniform(0.2, 2.0, q))[::-1]
    if kind == "repeated":
        s[1] = s[0]
    s[rank:] = 0
    if kind == "rebalanced":  # with sigma_1 >= 1: rebalanced_values overshoots the top when s_1 < 1 and rank < q
        scale = 1.5 / s[0]
        return minima.rebalanced_values(s * scale, m, rng) / scale ** (1 / m)
    return np.repeat((s ** (1 / m))[None, :], m, axis=0)


MP_SPECS = (
    ("canonical", (3, 3, 3, 3), 3, "canonical", False),
    ("rotated flattest", (2, 3, 4), 2, "canonical", True),
    ("rebalanced flattest", (3, 4, 2), 2, "rebalanced", True),
    ("rebalanced flattest", (3, 3, 3), 2, "rebalanced", True),
    ("rotated flattest, sigma_1 = sigma_2", (2, 2, 2, 2), 2, "repeated", True),
    ("canonical", (2, 3), 2, "canonical", False),
    ("rebalanced flattest", (2, 2, 2, 2, 2, 2), 2, "rebalanced", True),
)


@lru_cache(maxsize=2)
def mp_bank(seed: int, dps: int, per_spec: int = 2) -> Bank:
    """A few flattest minima (and random minima) in mpmath at ``dps`` digits, certified by
    lambda_max(H_w) from mpmath's eigensolver; tolerance 10^-(dps-10)."""
    rng = np.random.default_rng(derive_seed(seed, "flat minima bank, mpmath"))
    tol = 10.0 ** (-(dps - 10))
    families = []
    with mpmath.workdps(dps):
        for name, dims, rank, kind, rotate_hidden in MP_SPECS:
            nets = [mp_network(float_values(rng, dims, rank, kind), dims, rng, rotate_hidden) for _ in range(per_spec)]
            families.append(mp_family(name, "flattest", nets, tol, shape=f"{dims} rank {rank}"))
        for m in (3, 4):
            nets = [mp_network(extremal_prefix_values(m, mpmath.mpf(rng.uniform(0.6, 1.6)), mpmath.sqrt),
                               (2,) * (m + 1), rng) for _ in range(per_spec)]
            families.append(mp_family("extremal: sigma_max(W_1) = sqrt(m-1) sigma^{1/m}", "flattest", nets, tol))
        nets = [mp_network(extremal_product_values(mpmath.mpf(rng.uniform(0.6, 1.6)), mpmath.sqrt), (2,) * 4, rng)
                for _ in range(per_spec)]
        families.append(mp_family("extremal: (S88) with equality, m = 3", "flattest", nets, tol))
        for dims in ((2, 2, 2, 2), (3, 3, 3)):
            nets = []
            for _ in range(per_spec):
                G = [mp_array(rng.standard_normal((b, a))) for a, b in zip(dims[:-1], dims[1:])]
                nets.append(G)
            families.append(mp_family("Gaussian weights (a random minimum)", "random", nets, tol))
        gaps = {f.label: float(abs(f.gap).max()) for f in families if f.role == "flattest"}
    bad = [k for k, g in gaps.items() if g > tol]
    if bad:
        raise AssertionError(f"mpmath families not certified flattest: {bad}")
    return Bank(tuple(families), {"max flatness gap of the flattest families": gaps})


# --- searching the flattest minima for extreme intermediate gains -------------------------------------

@lru_cache(maxsize=4)
def extreme_search_families(seed: int, starts: int) -> tuple[Family, ...]:
    """Flattest minima found by :func:`flattest_refine.maximize_on_flattest` (dims 3x3x3x3, rank T = 2,
    k = 2) maximising the intermediate gain sigma_max(P_1) (S91) and the product
    sigma_max(P_1) sigma_max(S_2) (S88), from ``starts`` random rebalanced flattest minima each.
    The optimiser does not know the extremal constructions; it shows how close a search gets."""
    rng = np.random.default_rng(derive_seed(seed, "flat minima bank, extreme search"))
    dims, k = (3, 3, 3, 3), 2
    out = []
    for product in (False, True):
        found = []
        for _ in range(starts):
            T = instances.random_target(rng, (), 3, 3, 2)
            sigma, u, v = fp.top_singular_triplet(T)
            R = np.eye(3)
            W = minima.rebalanced_flattest(T, dims, rng)
            W = flattest_refine.maximize_on_flattest(
                W, R, float(lemma3.flattest_value(T, 3)),
                lambda Wx: flattest_refine.off_path_log_gain(Wx, u, v, k, product))
            found.append(W)
        W = [np.stack([w[i] for w in found]) for i in range(3)]
        what = "sigma_max(P_1) sigma_max(S_2)" if product else "sigma_max(P_1)"
        fam = make_family(f"search: maximise {what} over flattest minima", "flattest", W,
                          identity_half(starts, 3), rng, tol_reason=FOUND_TOL_REASON)
        gap = np.maximum(fam.gap, 0.0)
        out.append(replace(fam, tol=FLOAT_TOL + FOUND_TOL_FACTOR * np.sqrt(gap + np.finfo(float).eps)))
    return tuple(out)
