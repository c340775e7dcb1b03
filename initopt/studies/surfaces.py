"""2D loss surfaces, optimizer trajectories (a ``lax.scan`` each, every optimizer in one jitted
program), verdicts.

A trajectory records ``(w1, w2, loss)`` before each update, so its first row is
the start; the verdict looks at the point after the last update. An optimizer
has *converged* when that point lies within the surface's tolerance of a known
minimum (for ``pathological``, of the ravine floor ``w1 = 0``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from initopt.errors import ConfigError
from initopt.optim.optimizers import make_optimizer


def pathological(w):
    """Pathological curvature: ``tanh(w1)^2 + 0.01 |w1| + sigmoid(w2)``; a ravine along w1 = 0."""
    return jnp.tanh(w[0]) ** 2 + 0.01 * jnp.abs(w[0]) + jax.nn.sigmoid(w[1])


STEEP_CENTRES = ((1.0, -0.5), (-1.0, 0.5), (-0.5, -0.8))
STEEP_SIGMA = 0.2


def steep(w):
    """Steep optima: minus three bivariate Gaussian densities (sigma 0.2) at STEEP_CENTRES."""
    s = STEEP_SIGMA
    total = 0.0
    for mx, my in STEEP_CENTRES:
        total += jnp.exp(-((w[0] - mx) ** 2) / (2 * s**2) - ((w[1] - my) ** 2) / (2 * s**2)) / (2 * jnp.pi * s * s)
    return -total


def rosenbrock(w):
    """``(1 - x)^2 + 100 (y - x^2)^2``: a curved valley, minimum 0 at (1, 1)."""
    return (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2


def beale(w):
    """Beale: minimum 0 at (3, 0.5), flat plateaus and steep walls."""
    x, y = w[0], w[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def himmelblau(w):
    """``(x^2 + y - 11)^2 + (x + y^2 - 7)^2``: four minima of value 0."""
    return (w[0] ** 2 + w[1] - 11) ** 2 + (w[0] + w[1] ** 2 - 7) ** 2


def rastrigin(w):
    """``20 + sum(w^2 - 10 cos(2 pi w))``: many local minima, the global one 0 at the origin."""
    return 20 + jnp.sum(w**2 - 10 * jnp.cos(2 * jnp.pi * w))


def saddle(w):
    """``w1^2 - w2^2 + w2^4 / 4``: a saddle at the origin, minima -1 at (0, +-sqrt 2)."""
    return w[0] ** 2 - w[1] ** 2 + w[1] ** 4 / 4


@dataclasses.dataclass(frozen=True)
class Surface:
    """A 2D loss with its plot range, default start, known minima and reference rates."""

    name: str
    fn: Callable
    bounds: tuple[tuple[float, float], tuple[float, float]]
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    min_value: float
    lrs: dict  # optimizer -> default learning rate
    tolerance: float = 0.1  # converged: within this distance of a minimum
    log_plot: bool = False  # plot log(loss - min) for surfaces with a huge range
    ravine: bool = False  # pathological: distance to the floor w1 = 0, not to a point

    def distance(self, w_N2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance to the nearest known minimum and its index, for points of shape (N, 2)."""
        w_N2 = np.asarray(w_N2, np.float64)
        if self.ravine:
            return np.abs(w_N2[:, 0]), np.zeros(len(w_N2), int)
        d_NM = np.linalg.norm(w_N2[:, None, :] - np.asarray(self.minima)[None], axis=-1)
        return d_NM.min(1), d_NM.argmin(1)


_HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.283185991286170),
    (3.584428340330492, -1.848126526964404),
)

SURFACES: dict[str, Surface] = {
    s.name: s
    for s in (
        Surface("pathological", pathological, ((-5, 5), (-5, 5)), (5.0, 5.0), ((0.0, -5.0),), float(1 / (1 + np.exp(5))),
                {"sgd": 10.0, "momentum": 10.0, "adam": 1.0}, tolerance=0.1, ravine=True),
        Surface("steep", steep, ((-2, 2), (-2, 2)), (0.0, 0.0), STEEP_CENTRES, float(-1 / (2 * np.pi * STEEP_SIGMA**2)),
                {"sgd": 0.5, "momentum": 1.0, "adam": 0.2}, tolerance=0.1),
        Surface("rosenbrock", rosenbrock, ((-2, 2), (-1, 3)), (-1.5, 2.0), ((1.0, 1.0),), 0.0,
                {"sgd": 1e-3, "momentum": 1e-2, "adam": 0.1}, tolerance=0.1, log_plot=True),
        Surface("beale", beale, ((-4.5, 4.5), (-4.5, 4.5)), (1.0, 1.5), ((3.0, 0.5),), 0.0,
                {"sgd": 1e-3, "momentum": 1e-2, "adam": 0.1}, tolerance=0.1, log_plot=True),
        Surface("himmelblau", himmelblau, ((-5, 5), (-5, 5)), (0.0, 0.0), _HIMMELBLAU_MINIMA, 0.0,
                {"sgd": 0.01, "momentum": 0.01, "adam": 0.1}, tolerance=0.1, log_plot=True),
        Surface("rastrigin", rastrigin, ((-5.12, 5.12), (-5.12, 5.12)), (2.5, 2.5), ((0.0, 0.0),), 0.0,
                {"sgd": 0.002, "momentum": 0.002, "adam": 0.1}, tolerance=0.1),
        Surface("saddle", saddle, ((-2, 2), (-2.5, 2.5)), (-1.5, 1e-3), ((0.0, 2**0.5), (0.0, -(2**0.5))), -1.0,
                {"sgd": 0.1, "momentum": 0.1, "adam": 0.1}, tolerance=0.1),
    )
}
REFERENCE_LR_FALLBACK = 0.01
TUNE_FACTORS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


MOMENTUM_OPTIMIZERS = ("momentum", "nesterov")  # the ones whose ``beta`` is --beta


def check_optimizer(name: str) -> None:
    """Surfaces run the hand-written optimizers (their trajectories are the lesson)."""
    from initopt.optim.optimizers import OPTIMIZERS

    if name not in OPTIMIZERS:
        raise ConfigError(f"Unknown optimizer {name!r} for surfaces; choose from {', '.join(OPTIMIZERS)} or all.")


def default_lr(surface: Surface, optimizer: str) -> float:
    return surface.lrs.get(optimizer, REFERENCE_LR_FALLBACK)


def _run(fn, optimizer: str, lr, beta, start_2, steps: int):
    tx = make_optimizer(optimizer, lr, **({"beta": beta} if optimizer in MOMENTUM_OPTIMIZERS else {}))
    value_and_grad = jax.value_and_grad(fn)

    def step(carry, _):
        w, state = carry
        loss, g = value_and_grad(w)
        updates, state = tx.update(g, state, w)
        return (w + updates, state), jnp.concatenate([w, loss[None]])

    (w_final, _), rows_Tx3 = jax.lax.scan(step, (start_2, tx.init(start_2)), None, length=steps)
    return rows_Tx3, w_final, fn(w_final)


@functools.partial(jax.jit, static_argnames=("surface", "optimizers", "steps"))
def trajectories(surface: str, optimizers: tuple[str, ...], lr_O, beta, start_2, steps: int = 100):
    """Per optimizer: (steps, 3) rows of (w1, w2, loss) before each update, the final point and its
    loss. Every optimizer in one program: one trace, one lowering, one executable to load (three
    programs cost a short command 0.08 s more). The surface is jitted here, so that the program traces
    it once (its jaxpr is cached), not once per optimizer and end point: 0.06 s less, the same bits.
    Not in :func:`batch_final`, whose vmapped bits it changes (by an ulp, at underflowing losses)."""
    fn = jax.jit(SURFACES[surface].fn)
    return tuple(_run(fn, opt, lr_O[i], beta, start_2, steps) for i, opt in enumerate(optimizers))


@functools.partial(jax.jit, static_argnames=("surface", "optimizers", "steps"))
def batch_final(surface: str, optimizers: tuple[str, ...], lr_OxL, beta, starts_Nx2, steps: int = 100):
    """Final points and losses for every optimizer x learning rate x start: (O, L, N, 2) and
    (O, L, N), one program (row ``o`` of ``lr_OxL`` holds optimizer ``o``'s rates)."""
    fn = SURFACES[surface].fn

    def finals(opt, lr_L):
        def final(lr, start):
            _, w, loss = _run(fn, opt, lr, beta, start, steps)
            return w, loss

        return jax.vmap(jax.vmap(final, in_axes=(None, 0)), in_axes=(0, None))(lr_L, starts_Nx2)

    w_OLN2, loss_OLN = zip(*(finals(opt, lr_OxL[o]) for o, opt in enumerate(optimizers)))
    return jnp.stack(w_OLN2), jnp.stack(loss_OLN)


def verdict(surface: Surface, w_final, loss_final) -> dict:
    """Final loss, distance to the nearest known minimum, converged or not."""
    w = np.asarray(w_final, np.float64).reshape(1, 2)
    finite = bool(np.all(np.isfinite(w)) and np.isfinite(loss_final))
    dist, idx = surface.distance(w) if finite else (np.array([np.inf]), np.array([0]))
    return {
        "final_point": w[0].tolist() if finite else None,
        "final_loss": float(loss_final) if finite else None,
        "distance_to_minimum": float(dist[0]) if finite else None,
        "nearest_minimum": list(surface.minima[int(idx[0])]) if finite and not surface.ravine else None,
        "converged": bool(finite and dist[0] <= surface.tolerance),
    }


def random_starts(surface: Surface, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uniform starts in the plot range, (n, 2) float32."""
    rng = np.random.default_rng(seed)
    (x0, x1), (y0, y1) = surface.bounds
    return np.stack([rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)], 1).astype(np.float32)


def start_statistics(surface: Surface, w_LxNx2, loss_LxN) -> list[dict]:
    """Per learning rate: success rate (converged fraction) and median final loss over starts."""
    w_LxNx2, loss_LxN = np.asarray(w_LxNx2, np.float64), np.asarray(loss_LxN, np.float64)
    out = []
    for w_Nx2, loss_N in zip(w_LxNx2, loss_LxN):
        finite = np.isfinite(loss_N) & np.all(np.isfinite(w_Nx2), axis=1)
        dist = np.full(len(loss_N), np.inf)
        if finite.any():
            dist[finite] = surface.distance(w_Nx2[finite])[0]
        out.append({
            "success_rate": float(np.mean(dist <= surface.tolerance)),
            "median_final_loss": float(np.median(np.where(finite, loss_N, np.inf))),
            "diverged": int((~finite).sum()),
        })
    return out


def best_of(lrs: list[float], stats: list[dict]) -> int:
    """The learning rate with the highest success rate, ties broken by the lower median loss."""
    return max(range(len(lrs)), key=lambda i: (stats[i]["success_rate"], -stats[i]["median_final_loss"]))


def loss_grid(surface: Surface, n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The loss on an n x n grid over the plot range (for pictures)."""
    (x0, x1), (y0, y1) = surface.bounds
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    X, Y = np.meshgrid(xs, ys)
    pts = np.stack([X.ravel(), Y.ravel()], 1).astype(np.float32)  # numpy into the program: no staging program
    Z = np.asarray(jax.jit(jax.vmap(surface.fn))(pts)).reshape(n, n)
    return X, Y, Z


def run_name(kind: str, optimizers: tuple[str, ...], lr: float | None, steps: int, start, starts: int,
             tune: bool, seed: int, beta: float) -> str:
    """The run directory: the surface plus every option that changes the result."""
    name = kind + ("" if start is None else f"-start{start[0]:g}_{start[1]:g}") + ("" if lr is None else f"-lr{lr:g}")
    name += "" if steps == 100 else f"-steps{steps}"
    name += "" if set(optimizers) == {"sgd", "momentum", "adam"} else "-" + "_".join(optimizers)
    name += "" if beta == 0.9 else f"-beta{beta:g}"
    if starts:
        name += f"-starts{starts}" + ("" if seed == 0 else f"_seed{seed}") + ("-tune" if tune else "")
    return name


def run_experiment(surface: Surface, optimizers: tuple[str, ...], lr: float | None, steps: int, start, starts: int,
                   tune: bool, seed: int, beta: float) -> tuple[dict, dict, dict | None]:
    """Trajectories from the start point and, with ``starts``, final points of random starts
    (over a learning-rate grid with ``tune``). Returns (result, trajectories, end points)."""
    w0 = surface.start if start is None else start
    result: dict = {"surface": surface.name, "start": list(w0), "steps": steps, "tolerance": surface.tolerance,
                    "min_value": surface.min_value, "minima": [list(m) for m in surface.minima], "optimizers": {}}
    lr_O = [default_lr(surface, opt) if lr is None else lr for opt in optimizers]
    runs = jax.device_get(trajectories(surface.name, optimizers, np.asarray(lr_O, np.float32), beta,
                                       np.asarray(w0, np.float32), steps))
    paths = {}
    for opt, opt_lr, (rows, w_final, loss_final) in zip(optimizers, lr_O, runs):
        rows = np.asarray(rows, np.float64)
        paths[opt] = np.vstack([rows, np.r_[np.asarray(w_final, np.float64), float(loss_final)]])
        result["optimizers"][opt] = {"lr": opt_lr, **verdict(surface, w_final, loss_final), "trajectory": rows}
    if not starts:
        return result, paths, None
    starts_N = random_starts(surface, starts, seed)
    result["starts"] = {"n": starts, "seed": seed, "optimizers": {}}
    result["tune"] = tune
    lrs_O = [[base * f for f in TUNE_FACTORS] if tune else [base] for base in lr_O]
    w_OLN2, loss_OLN = jax.device_get(batch_final(surface.name, optimizers, np.asarray(lrs_O, np.float32), beta,
                                                  starts_N, steps))
    ends = {}
    for opt, lrs, w_LN2, loss_LN in zip(optimizers, lrs_O, w_OLN2, loss_OLN):
        stats_L = start_statistics(surface, w_LN2, loss_LN)
        best = best_of(lrs, stats_L)
        ends[opt] = np.asarray(w_LN2[best])
        entry = {"lr": lrs[best], **stats_L[best]}
        if tune:
            entry["grid"] = [{"lr": rate, **st} for rate, st in zip(lrs, stats_L)]
        result["starts"]["optimizers"][opt] = entry
    return result, paths, ends
