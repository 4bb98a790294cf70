"""A contextual bandit over the measured (expert, steps) table: the router that reads its own measurements.

Context: (dataset, lambda). Arm a = (expert, steps). The reward of a request is known to be linear
in lambda given the arm,

    R(a | dataset, lambda) = -q(dataset, a) - lambda * c(dataset, a) / 1000,

with q the quality distance (noisy: it depends on x_T and on the reference sample) and c the NFE
(counted). So the bandit only has to estimate q per (dataset, arm): it keeps the running mean and
variance of every measured distance and picks ``argmax_a  -mean q(a) - lambda c(a) / 1000``.

Exploration is racing (successive elimination, Even-Dar et al. 2006, over a lambda grid): every
arm is measured ``initial_pulls`` times; then, while the budget lasts, the arms that could still
be the best at some lambda of the grid (upper confidence bound of the reward >= the best lower
bound, bounds mean +- z std / sqrt(n)) get one more measurement each, fewest measurements first.

Example::

    bandit = TableRouter(arms=[("ddim", 10), ("dpmpp_2m", 20)])
    train_table_router(bandit, measure, datasets=["moons"], lams=[0.01, 1, 30])
    bandit.choose("moons", lam=0.5)   # -> ("ddim", 10)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

Arm = tuple[str, int]


class TableRouter:
    """Per (dataset, arm): count, mean and M2 (Welford) of the quality distance, mean NFE."""

    def __init__(self, arms: Sequence[Arm], z: float = 1.645) -> None:
        arms = tuple((str(e), int(n)) for e, n in arms)
        if not arms or len(set(arms)) != len(arms) or any(n < 1 for _, n in arms):
            raise ValueError(f"need distinct arms (expert, steps >= 1) but got {arms=}")
        if not z > 0:
            raise ValueError(f"z must be > 0 but got {z=}")
        self.arms, self.z = arms, z
        self.stats: dict[tuple[str, str, int], list[float]] = {}  # (dataset, expert, steps) -> [n, mean, m2, nfe]

    def observe(self, dataset: str, expert: str, steps: int, distance: float, nfe: float) -> None:
        """Add one measurement; a non-finite distance counts as a very bad one (1e3)."""
        distance = distance if math.isfinite(distance) else 1e3
        n, mean, m2, nfe_mean = self.stats.get((dataset, expert, int(steps)), [0, 0.0, 0.0, 0.0])
        n += 1
        delta = distance - mean
        mean += delta / n
        m2 += delta * (distance - mean)
        nfe_mean += (nfe - nfe_mean) / n
        self.stats[(dataset, expert, int(steps))] = [n, mean, m2, nfe_mean]

    def pulls(self, dataset: str, arm: Arm) -> int:
        return int(self.stats.get((dataset, *arm), [0])[0])

    def estimate(self, dataset: str, arm: Arm) -> tuple[float, float, float]:
        """(mean distance, its standard error, mean NFE) of a measured arm."""
        n, mean, m2, nfe = self.stats[(dataset, *arm)]
        spread = math.sqrt(m2 / (n - 1)) if n > 1 else abs(mean)  # one measurement: its own size as the spread
        return mean, spread / math.sqrt(n), nfe

    def expected_reward(self, dataset: str, arm: Arm, lam: float) -> float:
        mean, _, nfe = self.estimate(dataset, arm)
        return -mean - lam * nfe / 1000

    def measured_arms(self, dataset: str, max_nfe: float | None = None) -> list[Arm]:
        return [a for a in self.arms if self.pulls(dataset, a) and
                (max_nfe is None or self.estimate(dataset, a)[2] <= max_nfe + 1e-9)]

    def choose(self, dataset: str, lam: float, max_nfe: float | None = None) -> Arm:
        """The measured arm with the best mean reward at ``lam`` (and NFE <= max_nfe if given)."""
        if not lam > 0:
            raise ValueError(f"lam must be > 0 but got {lam=}")
        arms = self.measured_arms(dataset, max_nfe)
        if not arms:
            raise ValueError(f"no measured arm for {dataset=} with NFE <= {max_nfe=}; train the router first")
        return max(arms, key=lambda a: self.expected_reward(dataset, a, lam))

    def plausible_arms(self, dataset: str, lams: Iterable[float]) -> list[Arm]:
        """Arms whose reward's upper bound reaches the best lower bound at some lambda of ``lams``."""
        arms, keep = self.measured_arms(dataset), set()
        for lam in lams:
            bounds = {}
            for a in arms:
                mean, se, nfe = self.estimate(dataset, a)
                bounds[a] = (-mean - self.z * se - lam * nfe / 1000, -mean + self.z * se - lam * nfe / 1000)
            best_low = max(low for low, _ in bounds.values())
            keep |= {a for a, (_, high) in bounds.items() if high >= best_low}
        return [a for a in self.arms if a in keep]

    def to_dict(self) -> dict:
        """Plain JSON types: the arms, z and every measured statistic."""
        return {"arms": [list(a) for a in self.arms], "z": self.z,
                "stats": [[d, e, n, *v] for (d, e, n), v in self.stats.items()]}

    @classmethod
    def from_dict(cls, d: dict) -> TableRouter:
        router = cls([tuple(a) for a in d["arms"]], z=d["z"])
        router.stats = {(ds, e, int(n)): [float(x) for x in v] for ds, e, n, *v in d["stats"]}
        return router


def train_table_router(
    router: TableRouter,
    measure: Callable[[str, str, int, int], tuple[float, float]],
    datasets: Sequence[str],
    lams: Sequence[float],
    *,
    initial_pulls: int = 2,
    max_pulls: int = 6,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Measure every arm ``initial_pulls`` times, then race the plausible ones up to ``max_pulls`` each.

    ``measure(dataset, expert, steps, k)`` returns (distance, NFE) of the arm's k-th measurement
    (the caller maps k to a noise draw of its development seeds). Returns the number of measurements.
    """
    if initial_pulls < 1 or max_pulls < initial_pulls:
        raise ValueError(f"need 1 <= initial_pulls <= max_pulls but got {initial_pulls=}, {max_pulls=}")
    if not lams or any(not lam > 0 for lam in lams):
        raise ValueError(f"lams must be a non-empty list of numbers > 0 but got {lams=}")
    count = 0

    def pull(dataset: str, arm: Arm) -> None:
        nonlocal count
        distance, nfe = measure(dataset, arm[0], arm[1], router.pulls(dataset, arm))
        router.observe(dataset, arm[0], arm[1], distance, nfe)
        count += 1
        if progress is not None:
            progress(count)

    for dataset in datasets:
        for _ in range(initial_pulls):
            for arm in router.arms:
                pull(dataset, arm)
        while True:
            todo = [a for a in router.plausible_arms(dataset, lams) if router.pulls(dataset, a) < max_pulls]
            if not todo:
                break
            fewest = min(router.pulls(dataset, a) for a in todo)
            for arm in todo:
                if router.pulls(dataset, arm) == fewest:
                    pull(dataset, arm)
    return count
