"""Table S1 in spirit: a small nonlinear network trained with SGD and with Adam (PyTorch).

The supplement's network and data for Fig. 6 / Table S1 are not published, so absolute numbers
cannot be reproduced. This module builds the closest honest analogue and measures what the table
reports: a fully connected network with two tanh hidden layers, trained with the quadratic loss
E||y - f(x)||^2 on data from a teacher network plus Gaussian noise, with the two methods of the table
(SGD: learning rate 1/2, no momentum; Adam: learning rate 3e-4, betas (0.8, 0.99); batch 100 for
both), over several seeds. For each run: the train and validation loss, lambda_max of the full-batch
Hessian of the training loss (Hessian-vector products by double backpropagation in float64, top
eigenvalue by Lanczos, ``proofs.eigen.lanczos_top``), and the flat-minimum properties of Theorems
2-3 measured per layer (top singular values, and the angle between the top left singular vector of
W_k and the top right singular vector of W_{k+1}).

The runs of one method are trained together as one batched network (weights of shape
(runs, d_out, d_in)): SGD and Adam act elementwise and the summed loss separates over runs, so this
is exactly several independent trainings, at the per-step cost of one. Both methods start from the
same initialisation per seed. Everything is float64 and seeded from ``verify.context.derive_seed``
(torch generators, never the global random state); results are cached per (seed, profile), so
checks and figures share one run.
PyTorch is an optional extra: import this module only where ``torch`` is available.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from verify.context import derive_seed

from .eigen import TopEigen, lanczos_top

DTYPE = torch.float64
# One intra-op thread: the matrices are tiny (at most 100 x 32), so a second OpenMP thread gains at
# most ~15 % on an idle machine, and when another process holds the second core every op waits for
# the descheduled thread at a barrier (measured: tanh of 6400 numbers 0.05 ms -> 2.5 ms).
THREADS = 1
LANCZOS_RTOL = 1e-8


@dataclass(frozen=True)
class Method:
    """One column of Table S1."""

    name: str
    lr: float
    batch: int = 100
    momentum: float = 0.0
    betas: tuple[float, float] | None = None

    def optimizer(self, params) -> torch.optim.Optimizer:
        if self.betas is None:
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)
        return torch.optim.Adam(params, lr=self.lr, betas=self.betas)

    @property
    def stability_bound(self) -> float:
        """2 / eta: gradient descent cannot converge to a minimum sharper than this."""
        return 2.0 / self.lr


METHODS = {
    "SGD": Method("SGD", lr=0.5),
    "Adam": Method("Adam", lr=3e-4, betas=(0.8, 0.99)),
}

#: Table S1 as printed: (mean, std) over the paper's runs.
PRINTED = {
    "SGD": {"train loss": (2.69e-2, 2.53e-5), "validation loss": (2.70e-2, 1.68e-4), "lambda_max": (1.76, 9.43e-3)},
    "Adam": {"train loss": (2.74e-2, 4.03e-5), "validation loss": (2.80e-2, 1.94e-4), "lambda_max": (12.9, 2.2)},
}


@dataclass(frozen=True)
class Setup:
    """The analogue's network, data and training budget. The noise level puts the loss floor
    (noise variance 0.0256) near the printed losses (~2.7e-2)."""

    d_x: int = 10
    hidden: int = 32
    d_y: int = 1
    teacher_hidden: int = 16
    noise: float = 0.16
    n_train: int = 4000
    n_val: int = 1000
    steps: int = 4000
    seeds: int = 3

    @property
    def student_widths(self) -> tuple[int, ...]:
        return (self.d_x, self.hidden, self.hidden, self.d_y)


SETUPS = {
    "quick": Setup(steps=2000, seeds=2),
    "default": Setup(),
    "thorough": Setup(steps=8000, seeds=5),
}


@contextmanager
def torch_threads(n: int = THREADS) -> Iterator[None]:
    """Run with ``n`` intra-op threads and restore the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def generator(*keys) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*keys))


# --- the network, batched over independent runs ---------------------------------------------------

Params = list[torch.Tensor]  # [W_1, b_1, ..., W_m, b_m], W_k of shape (runs, d_k, d_{k-1}), b_k (runs, d_k)


def init_params(widths: tuple[int, ...], gen: torch.Generator, runs: int = 1, scale: float = 1.0) -> Params:
    """PyTorch's default initialisation of ``nn.Linear``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    weights and biases (times ``scale``), for ``runs`` independent networks, drawn from ``gen``."""
    params: Params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        bound = scale / math.sqrt(fan_in)
        for shape in ((runs, fan_out, fan_in), (runs, fan_out)):
            params.append((2 * torch.rand(shape, generator=gen, dtype=DTYPE) - 1) * bound)
    return params


def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
    """tanh network: x of shape (runs, n, d_0) or (n, d_0) -> (runs, n, d_m)."""
    h = x
    last = len(params) // 2 - 1
    for k in range(0, len(params), 2):
        h = torch.matmul(h, params[k].transpose(-1, -2)) + params[k + 1][:, None, :]
        if k // 2 < last:
            h = torch.tanh(h)
    return h


def loss_per_run(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E||y - f(x)||^2 over the samples, as in (S9), for every run: shape (runs,)."""
    return ((forward(params, x) - y) ** 2).sum(dim=-1).mean(dim=-1)


def run_params(params: Params, r: int) -> Params:
    """The parameters of run ``r`` as new leaves of batch size 1."""
    return [p[r:r + 1].detach().clone().requires_grad_(True) for p in params]


def weight_matrices(params: Params, r: int = 0) -> list[np.ndarray]:
    return [params[k][r].detach().numpy().copy() for k in range(0, len(params), 2)]


@dataclass(frozen=True)
class Dataset:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def teacher_data(setup: Setup, seed: int) -> Dataset:
    """x ~ N(0, I), y = teacher(x) + noise, teacher a random tanh network with one hidden layer."""
    gen = generator(seed, "Table S1", "data")
    teacher = init_params((setup.d_x, setup.teacher_hidden, setup.d_y), gen)
    n = setup.n_train + setup.n_val
    x = torch.randn(n, setup.d_x, generator=gen, dtype=DTYPE)
    y = forward(teacher, x)[0] + setup.noise * torch.randn(n, setup.d_y, generator=gen, dtype=DTYPE)
    return Dataset(x[: setup.n_train], y[: setup.n_train], x[setup.n_train:], y[setup.n_train:])


def train(methods: Sequence[Method], params: Sequence[Params], data: Dataset, steps: int,
          gens: Sequence[torch.Generator]) -> list[np.ndarray]:
    """Mini-batch training of every run of every method (in place), each run with its own
    reshuffled epochs drawn from its method's generator; returns, per method, the full training
    loss per run after every epoch, shape (epochs, runs).

    The methods share one forward and backward pass per step (their runs concatenated along the
    run axis; the summed loss keeps runs independent), then each method's optimizer steps its own
    leaves: the per-step overhead of autograd is paid once instead of once per method."""
    per_epoch = {data.x_train.shape[0] // m.batch for m in methods}
    if len(per_epoch) != 1:
        raise ValueError("methods trained together need the same batch size")
    per_epoch, n = per_epoch.pop(), data.x_train.shape[0]
    for group in params:
        for p in group:
            p.requires_grad_(True)
    opts = [m.optimizer(group) for m, group in zip(methods, params)]
    joined = lambda: [torch.cat(leaves) for leaves in zip(*params)]  # noqa: E731
    runs = [group[0].shape[0] for group in params]
    history: list[np.ndarray] = []
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.cat([torch.argsort(torch.rand(r, n, generator=g), dim=1) for r, g in zip(runs, gens)])
        j = step % per_epoch
        idx = order[:, j * methods[0].batch:(j + 1) * methods[0].batch]
        for opt in opts:
            opt.zero_grad()
        loss_per_run(joined(), data.x_train[idx], data.y_train[idx]).sum().backward()  # runs separate
        for opt in opts:
            opt.step()
        if j == per_epoch - 1 or step + 1 == steps:
            with torch.no_grad():
                history.append(loss_per_run(joined(), data.x_train, data.y_train).numpy().copy())
    for group in params:
        for p in group:
            p.requires_grad_(False)
    per_run = np.array(history)
    bounds = np.cumsum([0, *runs])
    return [per_run[:, lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


# --- the Hessian ---------------------------------------------------------------------------------


def flat(tensors: Params) -> np.ndarray:
    return torch.cat([t.reshape(-1) for t in tensors]).detach().numpy().copy()


def split(v: torch.Tensor, like: Params) -> Params:
    out, start = [], 0
    for p in like:
        out.append(v[start:start + p.numel()].reshape(p.shape))
        start += p.numel()
    return out


def hvp_operator(params: Params, x: torch.Tensor, y: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """v -> H v for the Hessian H of the full-batch loss of one run (``params`` of batch size 1,
    flattened in order W_1, b_1, ...), by differentiating <grad, v> once more (double backprop)."""
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(loss_per_run(leaves, x, y).sum(), leaves, create_graph=True)
    g = torch.cat([t.reshape(-1) for t in grads])

    def matvec(v: np.ndarray) -> np.ndarray:
        vt = torch.as_tensor(np.ascontiguousarray(v, dtype=np.float64))
        return flat(torch.autograd.grad(g, leaves, grad_outputs=vt, retain_graph=True))

    return matvec


def gauss_newton_operator(params: Params, x: torch.Tensor, y: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """v -> G v for the Gauss-Newton part G = (2/n) sum_i J_i^T J_i of the Hessian (the residual
    term dropped): equal to H only where the residuals vanish. A negative control for the HVP."""
    base = tuple(p.detach() for p in params)

    def outputs(*ps: torch.Tensor) -> torch.Tensor:
        return forward(list(ps), x)

    _, pullback = torch.func.vjp(outputs, *base)

    def matvec(v: np.ndarray) -> np.ndarray:
        direction = tuple(split(torch.as_tensor(np.asarray(v, dtype=np.float64)), list(base)))
        _, jv = torch.func.jvp(outputs, base, direction)
        return flat(list(pullback(2 * jv / x.shape[0])))

    return matvec


def dense_hessian(params: Params, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The full Hessian by ``torch.autograd.functional.hessian`` (tiny networks only)."""
    base = [p.detach() for p in params]

    def loss_of(v: torch.Tensor) -> torch.Tensor:
        return loss_per_run(split(v, base), x, y).sum()

    return torch.autograd.functional.hessian(loss_of, torch.cat([p.reshape(-1) for p in base])).numpy()


def parameter_count(params: Params) -> int:
    return sum(p[0].numel() for p in params)


def top_eigen(matvec: Callable[[np.ndarray], np.ndarray], n: int, seed: int) -> TopEigen:
    """lambda_max by Lanczos (``proofs.eigen.lanczos_top``) from a seeded random start."""
    start = np.random.default_rng(seed).standard_normal(n)
    return lanczos_top(matvec, start, rtol=LANCZOS_RTOL, max_iter=min(n, 300))


def hvp_validation(seed: int, operator: Callable = hvp_operator) -> dict[str, float]:
    """``operator`` on a tiny tanh network (3-4-4-2, 46 parameters) at random weights away from
    any minimum, against ``torch.autograd.functional.hessian``: the worst error of H v over the
    unit vectors e_i and 8 random v (relative to ||H||_2), and of Lanczos' lambda_max against the
    dense eigvalsh."""
    gen = generator(seed, "Table S1", "HVP check")
    params = init_params((3, 4, 4, 2), gen, scale=2.0)
    x = torch.randn(20, 3, generator=gen, dtype=DTYPE)
    y = torch.randn(20, 2, generator=gen, dtype=DTYPE)
    H = dense_hessian(params, x, y)
    matvec = operator(params, x, y)
    n = H.shape[0]
    probes = np.concatenate([np.eye(n), np.random.default_rng(derive_seed(seed, "HVP probes")).standard_normal((8, n))])
    hv = np.stack([matvec(v) for v in probes])
    scale = float(np.linalg.norm(H, 2))
    dense_top = float(np.linalg.eigvalsh(H)[-1])
    top = top_eigen(matvec, n, derive_seed(seed, "HVP Lanczos"))
    return {
        "parameters": n,
        "hvp_relative_error": float(np.max(np.abs(hv - probes @ H.T)) / scale),
        "lambda_max_dense": dense_top,
        "lambda_max_lanczos": top.value,
        "lambda_max_relative_error": abs(top.value - dense_top) / abs(dense_top),
    }


# --- flat-minimum properties per layer -----------------------------------------------------------


def layer_properties(weights: list[np.ndarray]) -> dict[str, list[float]]:
    """sigma_max(W_k) per layer, its ratio to the geometric mean over layers (1 when balanced,
    Theorem 2), and the angle in degrees between the top left singular vector of W_k and the top
    right singular vector of W_{k+1} (0 when coupled, Theorem 3)."""
    svds = [np.linalg.svd(W) for W in weights]
    top = [float(s[0]) for _, s, _ in svds]
    geo = math.exp(sum(math.log(t) for t in top) / len(top))
    angles = []
    for (U, _, _), (_, _, Vt) in zip(svds[:-1], svds[1:]):
        cos = min(1.0, abs(float(U[:, 0] @ Vt[0])))
        angles.append(math.degrees(math.acos(cos)))
    return {"sigma_max": top, "balance": [t / geo for t in top], "coupling_angle_deg": angles}


# --- the experiment ------------------------------------------------------------------------------


@dataclass
class Run:
    method: str
    seed: int
    train_loss: float
    val_loss: float
    lambda_max: float
    lanczos_residual: float
    lanczos_converged: bool
    history: list[float]
    layers: dict[str, list[float]]

    @property
    def plateau(self) -> float:
        """Relative spread of the training loss over the last tenth of the epochs."""
        tail = self.history[-max(2, len(self.history) // 10):]
        return (max(tail) - min(tail)) / min(tail)


@dataclass
class Experiment:
    setup: Setup
    runs: list[Run] = field(default_factory=list)
    hvp_check: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def of(self, method: str) -> list[Run]:
        return [r for r in self.runs if r.method == method]

    def values(self, method: str, key: str) -> np.ndarray:
        return np.array([getattr(r, key) for r in self.of(method)])

    def summary(self) -> dict[str, dict[str, object]]:
        """Mean +- std per method and quantity, next to the printed values."""
        out: dict[str, dict[str, object]] = {}
        keys = {"train loss": "train_loss", "validation loss": "val_loss", "lambda_max": "lambda_max"}
        for name, method in METHODS.items():
            row: dict[str, object] = {"learning rate": method.lr, "2/eta": method.stability_bound}
            for label, key in keys.items():
                v = self.values(name, key)
                row[label] = {"measured (mean, std)": [float(v.mean()), float(v.std())],
                              "printed (mean, std)": list(PRINTED[name][label])}
            runs = self.of(name)
            row["lambda_max per seed"] = [r.lambda_max for r in runs]
            row["train loss spread over the last 10% of epochs"] = max(r.plateau for r in runs)
            for prop in ("sigma_max", "balance", "coupling_angle_deg"):
                arr = np.array([r.layers[prop] for r in runs])
                row[f"{prop} per layer"] = {"mean": arr.mean(axis=0).tolist(), "std": arr.std(axis=0).tolist()}
            out[name] = row
        return out


def measure(method: Method, params: Params, history: np.ndarray, data: Dataset, seed: int) -> list[Run]:
    out = []
    for r in range(params[0].shape[0]):
        one = run_params(params, r)
        with torch.no_grad():
            losses = [float(loss_per_run(one, x, y)[0])
                      for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val))]
        top = top_eigen(hvp_operator(one, data.x_train, data.y_train), parameter_count(one),
                        derive_seed(seed, "Table S1", method.name, "Lanczos", r))
        out.append(Run(method.name, r, *losses, top.value, top.residual, top.converged, history[:, r].tolist(),
                       layer_properties(weight_matrices(one))))
    return out


@lru_cache(maxsize=4)
def experiment(seed: int, profile: str) -> Experiment:
    """Train ``SETUPS[profile].seeds`` networks per method on one data set, measure them; cached."""
    setup = SETUPS[profile]
    start = time.perf_counter()
    with torch_threads():
        out = Experiment(setup, hvp_check=hvp_validation(seed))
        data = teacher_data(setup, seed)
        init = init_params(setup.student_widths, generator(seed, "Table S1", "students"), runs=setup.seeds)
        methods = list(METHODS.values())
        params = [[p.clone() for p in init] for _ in methods]  # the same initialisations for every method
        gens = [generator(seed, "Table S1", method.name, "batches") for method in methods]
        histories = train(methods, params, data, setup.steps, gens)
        for method, group, history in zip(methods, params, histories):
            out.runs += measure(method, group, history, data, seed)
    out.seconds = time.perf_counter() - start
    return out
