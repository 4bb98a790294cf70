"""The router's environment on the 2-D toys: draw requests, run the chosen sampler, score it.

reward(request, expert, n) = -energy_distance(samples, fresh data) - lam * NFE / 1000, where NFE
is counted by wrapping the model (``NFECounter``), and lam is drawn log-uniformly. The expert
"distilled" runs the distilled student for that step count (``students[toy][n]``, see distill.py).

A request's x_T comes from a pool of ``pool_size`` noise tensors per toy, so the same
(toy, noise, expert, steps) recurs and is measured once and memoised: REINFORCE needs thousands of
episodes, and every reward it sees is still a real measurement of that very request.
"""

from __future__ import annotations

import math

import torch

from .data import TOY_NAMES, sample_toy
from .denoiser import NFECounter
from .distill import sample_distilled
from .metrics import energy_distance
from .router import Request
from .samplers import SAMPLERS


def run_expert(model, students: dict | None, expert: str, num_steps: int, x_T: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Sample with one arm; returns (samples, NFE counted). "distilled" uses ``students[num_steps]``."""
    if expert == "distilled":
        if not students or num_steps not in students:
            raise ValueError(f"no distilled student for {num_steps=}; have {sorted(students or {})}")
        counted = NFECounter(students[num_steps])
        return sample_distilled(counted, x_T, num_steps), counted.calls
    if expert not in SAMPLERS:
        raise ValueError(f"expert must be 'distilled' or one of {sorted(SAMPLERS)} but got {expert=}")
    counted = NFECounter(model)
    return SAMPLERS[expert](counted, x_T, num_steps, generator=generator), counted.calls


class ToySamplingEnv:
    """Requests over the toy models in ``models`` ({name: eps model}); each request is ``n`` points."""

    def __init__(self, models: dict, n: int = 500, lam_range: tuple[float, float] = (0.01, 30.0),
                 pool_size: int = 8, seed: int = 0, students: dict | None = None) -> None:
        unknown = set(models) - set(TOY_NAMES)
        if not models or unknown:
            raise ValueError(f"models must map toy names {TOY_NAMES} to models but got {sorted(models)}")
        if n < 2:
            raise ValueError(f"n must be >= 2 but got {n=}")
        if not 0 < lam_range[0] < lam_range[1]:
            raise ValueError(f"lam_range must be 0 < low < high but got {lam_range=}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1 but got {pool_size=}")
        self.models, self.n, self.lam_range, self.students = models, n, lam_range, students or {}
        g = torch.Generator().manual_seed(seed)
        self.pool = {name: [torch.randn(n, 2, generator=g) for _ in range(pool_size)] for name in sorted(models)}
        self._memo: dict[tuple, tuple[float, int]] = {}
        self._seed = seed

    def sample_request(self, generator: torch.Generator) -> Request:
        names = sorted(self.models)
        name = names[int(torch.randint(len(names), (1,), generator=generator))]
        lo, hi = math.log(self.lam_range[0]), math.log(self.lam_range[1])
        lam = math.exp(lo + (hi - lo) * float(torch.rand(1, generator=generator)))
        k = int(torch.randint(len(self.pool[name]), (1,), generator=generator))
        return Request(name, lam, self.pool[name][k])

    def measure(self, request: Request, expert: str, num_steps: int,
                seed: int = 0, reference_seed: int | None = None) -> tuple[torch.Tensor, float, int]:
        """Run the expert; returns (samples, energy distance to fresh data, NFE). The fresh data come from
        ``reference_seed`` when given (the same for every arm: common random numbers), else from ``seed``'s stream."""
        g = torch.Generator().manual_seed(seed)
        x, nfe = run_expert(self.models[request.dataset], self.students.get(request.dataset), expert, num_steps,
                            request.x_T, g)
        ref_g = g if reference_seed is None else torch.Generator().manual_seed(reference_seed)
        reference = sample_toy(request.dataset, len(x), generator=ref_g)
        return x, energy_distance(x, reference), nfe

    def reward(self, request: Request, expert: str, num_steps: int) -> float:
        key = (request.dataset, id(request.x_T), expert, num_steps)
        if key not in self._memo:
            _, distance, nfe = self.measure(request, expert, num_steps, seed=self._seed + len(self._memo))
            self._memo[key] = (distance, nfe)
        distance, nfe = self._memo[key]
        return -distance - request.lam * nfe / 1000

    def measure_pool(self, dataset: str, expert: str, num_steps: int, k: int) -> tuple[float, int]:
        """(distance, NFE) of the k-th measurement: the k-th noise of the pool (cycled) against the k-th fresh data,
        the same for every arm (common random numbers: differences between arms are paired), memoised."""
        key = (dataset, "pool", k, expert, num_steps)
        if key not in self._memo:
            request = Request(dataset, 1.0, self.pool[dataset][k % len(self.pool[dataset])])
            _, distance, nfe = self.measure(request, expert, num_steps, seed=self._seed * 7919 + k,
                                            reference_seed=1_000_000 + 1000 * self._seed + k)
            self._memo[key] = (distance, nfe)
        return self._memo[key]

    @property
    def measurements(self) -> int:
        """How many distinct (toy, noise, expert, steps) runs were measured so far."""
        return len(self._memo)
