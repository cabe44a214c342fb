"""Rigorous real numbers for certificates: exact spectra of rational symmetric matrices and
closed forms, compared with ball arithmetic (python-flint).

A symmetric rational matrix H has a characteristic polynomial over Q. FLINT computes it
exactly (``fmpq_mat.charpoly``) and factors it into irreducible integer polynomials with exact
multiplicities, so clusters of equal eigenvalues (the many zero eigenvalues of a Hessian at a
global minimum, a repeated top eigenvalue when sigma_1 = sigma_2) are exact factors ``p^k``,
never ill-conditioned blobs. Each irreducible factor has simple roots, all real (H is
symmetric); FLINT isolates them (``fmpz_poly.complex_roots``) in disjoint balls, refined to any
precision. An eigenvalue is thus an algebraic number given by its factor and a ball holding
that factor's root and no other; a root of a linear factor is an exact rational, radius 0.

Closed forms such as 2m sigma^{2(1-1/m)} are evaluated twice: in sympy on exact rationals (a
rational result is exact) and in arb balls (always). :func:`compare` decides the order of two
such numbers: exactly when both are rational, otherwise by refining the balls until they are
disjoint; two different numbers always separate, two equal irrational numbers never do and stay
undecided (``None``), which no certificate accepts.

>>> from fractions import Fraction
>>> s = spectrum([[2, 1], [1, 2]])
>>> s.top().exact, s.top().multiplicity
(Fraction(3, 1), 1)
>>> compare(spectrum([[1, 1], [1, 0]]).top(), rational(Fraction(8, 5)))  # the golden ratio > 8/5
1
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import sympy as sp
from flint import arb, ctx, fmpq, fmpq_mat, fmpz_poly

#: Working precisions (bits) tried in turn when balls must be separated.
PRECISIONS = (128, 256, 1024, 4096)
MAX_PRECISION = 1 << 16


class CertificateError(ArithmeticError):
    """A certificate cannot be established (e.g. a non-symmetric matrix)."""


class Real(Protocol):
    """A real number known exactly (``exact``) or only through balls of any precision."""

    @property
    def exact(self) -> Fraction | None: ...

    def ball(self, prec: int) -> arb: ...


def to_fmpq(x: Any) -> fmpq:
    """A Fraction, int or fmpq (also a 0-d object array) as an fmpq; floats are refused."""
    if isinstance(x, np.ndarray):
        x = x[()]
    if isinstance(x, fmpq):
        return x
    if isinstance(x, (int, np.integer, Fraction, sp.Rational)):
        f = Fraction(int(x.p), int(x.q)) if isinstance(x, sp.Rational) else Fraction(x)
        return fmpq(f.numerator, f.denominator)
    raise CertificateError(f"a certificate needs exact rationals, got {type(x).__name__}")


def to_fraction(x: fmpq) -> Fraction:
    return Fraction(int(x.p), int(x.q))


def rational_matrix(A: Any) -> fmpq_mat:
    """A 2-d array (object array of Fractions, nested lists of ints) as an exact fmpq_mat."""
    A = np.asarray(A, dtype=object)
    if A.ndim != 2:
        raise CertificateError(f"expected a matrix, got shape {A.shape}")
    return fmpq_mat(A.shape[0], A.shape[1], [to_fmpq(x) for x in A.ravel()])


def radius(ball: arb) -> float:
    """The radius of a ball as a float (the nearest double)."""
    return float(ball.rad().upper())


@dataclass(frozen=True)
class Rational:
    """An exact rational as a Real."""

    value: Fraction

    @property
    def exact(self) -> Fraction:
        return self.value

    def ball(self, prec: int) -> arb:
        with ctx.workprec(prec):
            return arb(fmpq(self.value.numerator, self.value.denominator))


def rational(x: Any) -> Rational:
    return Rational(to_fraction(to_fmpq(x)))


def _real_roots(poly: fmpz_poly, prec: int) -> list[arb]:
    """Balls of the real parts of the isolated roots of a squarefree polynomial whose roots are
    all real; each ball holds exactly one root (the complex boxes are disjoint and hold one
    root each, so a real part interval cannot hold a second real root)."""
    with ctx.workprec(prec):
        return [root.real for root, _ in poly.complex_roots()]


@dataclass(frozen=True)
class Eigenvalue:
    """A root of the irreducible ``factor`` of a characteristic polynomial, isolated by ``seed``
    (a ball holding it and no other root of the factor), with its multiplicity as eigenvalue."""

    factor: fmpz_poly
    seed: arb
    multiplicity: int

    @property
    def exact(self) -> Fraction | None:
        if self.factor.degree() != 1:
            return None  # an irreducible factor of degree >= 2 has no rational root
        b, a = self.factor.coeffs()
        return Fraction(-int(b), int(a))

    def ball(self, prec: int) -> arb:
        """An enclosure at precision ``prec``: the refined root ball that meets the seed (the only
        one, once the balls are small enough: the other roots lie at a distance)."""
        if self.exact is not None:
            return Rational(self.exact).ball(prec)
        while prec <= MAX_PRECISION:
            hits = [b for b in _real_roots(self.factor, prec) if b.overlaps(self.seed)]
            if len(hits) == 1:
                return hits[0]
            prec *= 2
        raise CertificateError(f"cannot re-isolate the root of {self.factor} at {MAX_PRECISION} bits")

    @property
    def radius(self) -> float:
        return 0.0 if self.exact is not None else radius(self.seed)

    def describe(self) -> str:
        value = str(self.exact) if self.exact is not None else self.seed.str(20, radius=True)
        return f"{value} (multiplicity {self.multiplicity}, factor of degree {self.factor.degree()})"


def _primitive(poly: Any) -> fmpz_poly:
    """A factor with rational coefficients as a primitive integer polynomial, leading coefficient > 0."""
    p = poly.numer()
    c = p.content() * (-1 if p.leading_coefficient() < 0 else 1)
    return fmpz_poly([x // c for x in p.coeffs()])


@dataclass(frozen=True)
class Spectrum:
    """The exact spectrum of a symmetric rational matrix: char(H) = prod factor^multiplicity."""

    size: int
    factors: tuple[tuple[fmpz_poly, int], ...]

    def kernel_dimension(self) -> int:
        """The exact multiplicity of the eigenvalue 0."""
        return sum(e for f, e in self.factors if f == fmpz_poly([0, 1]))

    def eigenvalues(self, prec: int = PRECISIONS[0]) -> list[Eigenvalue]:
        """Every distinct eigenvalue, unordered, with its ball at ``prec``."""
        return [Eigenvalue(f, b, e) for f, e in self.factors for b in _real_roots(f, prec)]

    def top(self) -> Eigenvalue:
        """lambda_max: the eigenvalue whose ball lies above every other ball, refined until one does
        (distinct algebraic numbers always separate)."""
        for prec in PRECISIONS:
            values = self.eigenvalues(prec)
            for candidate in values:
                if all(other is candidate or candidate.seed > other.seed for other in values):
                    return candidate
        raise CertificateError(f"lambda_max not separated from the other eigenvalues at {PRECISIONS[-1]} bits")

    def describe(self) -> dict[str, Any]:
        return {"size": self.size, "lambda_max": self.top().describe(), "zero eigenvalues": self.kernel_dimension(),
                "irreducible factors (degree^multiplicity)": " ".join(
                    f"{f.degree()}^{e}" for f, e in sorted(self.factors, key=lambda fe: (fe[0].degree(), -fe[1])))}


def spectrum(H: Any) -> Spectrum:
    """The exact spectrum of a symmetric rational matrix (an object array of Fractions, an
    fmpq_mat or nested lists of ints)."""
    M = H if isinstance(H, fmpq_mat) else rational_matrix(H)
    if M.nrows() != M.ncols() or M != M.transpose():
        raise CertificateError("the spectrum certificate needs a symmetric matrix")
    _, factors = M.charpoly().factor()
    return Spectrum(M.nrows(), tuple((_primitive(f), int(e)) for f, e in factors))


def lambda_max(H: Any) -> Eigenvalue:
    return spectrum(H).top()


@dataclass(frozen=True)
class ClosedForm:
    """A closed form f(*args) of rational arguments: exact when sympy finds a rational value,
    and as a ball at any precision (arb arithmetic is rigorous for +, -, *, /, ** and sqrt)."""

    formula: Callable[..., Any]
    args: tuple[Fraction, ...]

    @cached_property
    def exact(self) -> Fraction | None:
        value = sp.sympify(self.formula(*(sp.Rational(a.numerator, a.denominator) for a in self.args)))
        return Fraction(int(value.p), int(value.q)) if value.is_Rational else None

    def ball(self, prec: int) -> arb:
        with ctx.workprec(prec):
            value = self.formula(*(arb(fmpq(a.numerator, a.denominator)) for a in self.args))
            return value if isinstance(value, arb) else arb(to_fmpq(value))


def closed_form(formula: Callable[..., Any], *args: Any) -> ClosedForm:
    return ClosedForm(formula, tuple(to_fraction(to_fmpq(a)) for a in args))


def sqrt(x: Any) -> Any:
    """Square root for closed forms: exact in sympy, a ball in arb."""
    return x.sqrt() if isinstance(x, arb) else sp.sqrt(x)


def compare(a: Real, b: Real) -> int | None:
    """The sign of a - b, proved: exact for two rationals, else from disjoint balls at a
    precision of PRECISIONS; None when the balls still meet at the highest precision."""
    if a.exact is not None and b.exact is not None:
        return (a.exact > b.exact) - (a.exact < b.exact)
    for prec in PRECISIONS:
        x, y = a.ball(prec), b.ball(prec)
        if x < y:
            return -1
        if x > y:
            return 1
    return None


def gap(a: Real, b: Real) -> float:
    """A lower bound on |a - b| (0 when the balls meet): how far apart a refuted equality is."""
    if a.exact is not None and b.exact is not None:
        return float(abs(a.exact - b.exact))
    x, y = a.ball(PRECISIONS[0]), b.ball(PRECISIONS[0])
    if x.overlaps(y):
        return 0.0
    d = (x - y) if x > y else (y - x)
    return float(d.lower())


def enclosure_radius(values: Sequence[Real], prec: int = PRECISIONS[0]) -> float:
    """The largest radius among the enclosures of ``values`` (0 for exact rationals)."""
    return max((0.0 if v.exact is not None else radius(v.ball(prec)) for v in values), default=0.0)
