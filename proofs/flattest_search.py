"""The greedy search for flattest minima of Section IX.1, (S105)-(S106).

Start at a global minimum (S105): random Gaussian A_1..A_m, W_i = A_i except
one random layer j, W_j = (A_m...A_{j+1})^{-1} T (A_{j-1}...A_1)^{-1} (square
widths; for rectangular widths the start is a random minimum (S104) instead).
Then take random steps that stay on the manifold of global minima (S106),

    W_m <- W_m (I + eps A_{m-1}),  W_i <- (I + eps A_i)^{-1} W_i (I + eps A_{i-1}),
    W_1 <- (I + eps A_1)^{-1} W_1,

accepting a step only if lambda_max(H) decreases and drawing new directions
otherwise, until lambda_max is within ``rtol`` of 2m sigma_max(T)^{2(1-1/m)}.
The supplement leaves the step size open: here eps halves after
``patience`` rejections in a row and grows by 10 % after an acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import lemma3, minima
from . import linear_network as ln


@dataclass
class SearchRecord:
    """How the search went: the objective after every accepted step."""

    target: float
    history: list[float] = field(default_factory=list)
    accepted_at: list[int] = field(default_factory=lambda: [0])  # iteration of each entry of history
    accepted: int = 0
    rejected: int = 0
    iterations: int = 0
    converged: bool = False

    @property
    def gap(self) -> float:
        """Relative distance of the final lambda_max from the flattest value."""
        return self.history[-1] / self.target - 1.0


def start_s105(T: np.ndarray, dims: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    """(S105) for square widths; a random minimum (S104) when the widths differ."""
    m = len(dims) - 1
    if len(set(dims)) != 1:
        return minima.random_minimum(T, dims, rng)
    A = [rng.standard_normal((dims[0], dims[0])) for _ in range(m)]
    j = int(rng.integers(0, m))
    above_j = ln.product(A, j + 2, m)
    below_j = ln.product(A, 1, j)
    W = list(A)
    W[j] = np.linalg.solve(above_j, T) @ np.linalg.inv(below_j)
    return W


def s106_move(W: Sequence[np.ndarray], eps: float, directions: Sequence[np.ndarray]) -> list[np.ndarray]:
    """(S106) with given directions A_1..A_{m-1} (A_i of size d_i x d_i): W_m ... W_1 is unchanged."""
    M = [np.eye(A.shape[-1]) + eps * A for A in directions]
    return minima.conjugate(W, M, [np.linalg.inv(x) for x in M])


def step_s106(W: Sequence[np.ndarray], eps: float, rng: np.random.Generator) -> list[np.ndarray]:
    """One random move (S106) with Gaussian directions."""
    return s106_move(W, eps, [rng.standard_normal((d, d)) for d in ln.widths(W)[1:-1]])


def _objective(W: Sequence[np.ndarray], data: ln.Data) -> float:
    """lambda_max, or inf where a walk has overflowed float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            value = float(lemma3.lambda_max(list(W), data))
        except np.linalg.LinAlgError:
            return float("inf")
    return value if np.isfinite(value) else float("inf")


def _decreased(proposal: float, current: float) -> bool:
    return proposal < current


def search(
    T: np.ndarray,
    dims: Sequence[int],
    Sigma_x_half: np.ndarray,
    rng: np.random.Generator,
    rtol: float = 1e-4,
    max_iterations: int = 20_000,
    eps: float = 0.1,
    patience: int = 20,
    start: Sequence[np.ndarray] | None = None,
    on_step: Callable[[SearchRecord], None] | None = None,
    step: Callable[[Sequence[np.ndarray], float, Sequence[np.ndarray]], list[np.ndarray]] = s106_move,
    accept: Callable[[float, float], bool] = _decreased,
    progress: bool = False,
) -> tuple[list[np.ndarray], SearchRecord]:
    """Greedy descent of lambda_max over the manifold of global minima; returns the
    final weights and the convergence record. ``rtol`` is relative to the printed
    flattest value, which is only the right target when Sigma_x = I. ``step`` (the move,
    given Gaussian directions) and ``accept`` (printed: lambda_max decreased) can be
    exchanged, e.g. for negative controls of the procedure. ``progress`` shows a rich
    progress bar with the current gap."""
    if progress:
        return _with_progress_bar(T, dims, Sigma_x_half, rng, rtol=rtol, max_iterations=max_iterations, eps=eps,
                                  patience=patience, start=start, on_step=on_step, step=step, accept=accept)
    minima.check_widths(T, dims)
    data = ln.from_target(T, Sigma_x_half)
    W = list(start) if start is not None else start_s105(T, dims, rng)
    record = SearchRecord(target=float(lemma3.flattest_value(T, len(dims) - 1)))
    current = _objective(W, data)
    record.history.append(current)
    misses = 0
    while record.iterations < max_iterations:
        if current <= record.target * (1 + rtol):
            record.converged = True
            break
        record.iterations += 1
        proposal = step(W, eps, [rng.standard_normal((d, d)) for d in dims[1:-1]])
        value = _objective(proposal, data)
        if accept(value, current):
            if not np.isfinite(value):
                break  # the walk overflowed: no convergence
            W, current = proposal, value
            record.accepted += 1
            record.history.append(current)
            record.accepted_at.append(record.iterations)
            eps, misses = eps * 1.1, 0
        else:
            record.rejected += 1
            misses += 1
            if misses >= patience:
                eps, misses = eps / 2, 0
        if on_step is not None:
            on_step(record)
    return W, record


def _with_progress_bar(*args, on_step: Callable[[SearchRecord], None] | None = None, max_iterations: int,
                       **kwargs) -> tuple[list[np.ndarray], SearchRecord]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

    with Progress(TextColumn("[bold]flattest search"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("", total=max_iterations)

        def update(record: SearchRecord) -> None:
            bar.update(task, completed=record.iterations,
                       description=f"gap {record.gap:.2e}, {record.accepted} accepted, {record.rejected} rejected")
            if on_step is not None:
                on_step(record)

        return search(*args, max_iterations=max_iterations, on_step=update, **kwargs)
