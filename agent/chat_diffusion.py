"""The chat's diffusion tool: "sample moons fast" / "best quality in 20 steps" run the router.

``sample_diffusion(toy, speed_weight, max_nfe)`` calls ``trainopt.ars.diffusion.route_and_sample``:
the contextual-bandit router picks (expert, steps) for lambda = speed_weight (reward
-energy - lambda NFE / 1000) within ``max_nfe`` model calls, samples, and scores the samples. The
first call on a toy trains its DDPM and distilled students (minutes; cached under
trainopt-out/diffusion). The offline planner reads the request from the question with
``diffusion_args`` and answers with ``diffusion_answer`` (numbers from the observation only).

Examples:
    >>> diffusion_args("sample moons fast")
    {'toy': 'moons', 'speed_weight': 30.0}
    >>> diffusion_args("best quality in 20 steps on 8 gaussians")
    {'toy': '8gaussians', 'speed_weight': 0.01, 'max_nfe': 20}
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

SAMPLE_DIFFUSION = "sample_diffusion"
TOPIC = re.compile(
    r"\b(sample|sampling|samples|draw)\b.*\b(moons|8 ?gaussians|swiss ?roll|checkerboard|diffusion)\b"
    r"|\bdiffusion\b.*\b(sampl|fast|quality|steps)|\bbest quality in \d+"
)
_TOYS = {"moons": r"\bmoons?\b", "8gaussians": r"\b8 ?gaussians?\b", "swissroll": r"\bswiss ?roll\b",
         "checkerboard": r"\bcheckerboard\b"}
_FAST = re.compile(r"\b(fast|quick(ly)?|cheap(ly)?|fewest|as few)\b")
_QUALITY = re.compile(r"\b(best|highest|top) quality\b|\bbest samples\b")
_CAP = re.compile(r"\b(?:in|within|under|at most|with)\s+(\d+)\s*(?:steps?|model calls|calls|nfe|evaluations)\b")
FAST_WEIGHT, QUALITY_WEIGHT, DEFAULT_WEIGHT = 30.0, 0.01, 1.0  # the benchmark's lambda range is 0.01 .. 30


class DiffusionSample(BaseModel):
    """What the chat keeps of one routed sampling run (stored like a probe's output)."""

    workload: str  # the toy
    speed_weight: float
    max_nfe: int | None
    expert: str
    num_steps: int
    nfe: int
    seconds: float
    energy: float
    mmd: float
    off_mode: float
    floor_energy: float
    expected_energy: float
    alternatives: list[dict[str, Any]]


def diffusion_args(question: str) -> dict[str, Any]:
    """The tool's arguments read from a question: toy (default moons), speed weight, NFE cap."""
    text = question.lower()
    toy = next((name for name, pattern in _TOYS.items() if re.search(pattern, text)), "moons")
    weight = FAST_WEIGHT if _FAST.search(text) else QUALITY_WEIGHT if _QUALITY.search(text) else DEFAULT_WEIGHT
    args: dict[str, Any] = {"toy": toy, "speed_weight": weight}
    cap = _CAP.search(text)
    if cap:
        args["max_nfe"] = int(cap.group(1))
    return args


def sample_diffusion(toy: str = "moons", speed_weight: float = DEFAULT_WEIGHT,
                     max_nfe: int | None = None) -> DiffusionSample:
    from trainopt.ars.diffusion import route_and_sample

    out = route_and_sample(toy, float(speed_weight), max_nfe=None if max_nfe is None else int(max_nfe))
    return DiffusionSample(workload=toy, speed_weight=out["speed_weight"], max_nfe=out["max_nfe"],
                           expert=out["expert"], num_steps=out["num_steps"], nfe=out["nfe"], seconds=out["seconds"],
                           energy=out["energy"], mmd=out["mmd"], off_mode=out["off_mode"],
                           floor_energy=out["floor_energy"], expected_energy=out["expected"]["energy"],
                           alternatives=out["alternatives"])


TOOL_ARGS = {
    "toy": {"type": "string", "description": "2-D toy to sample: moons, 8gaussians, swissroll or checkerboard"},
    "speed_weight": {"type": "number", "description": "price of speed lambda > 0: 30 = fast, 0.01 = best quality"},
    "max_nfe": {"type": "integer", "description": "at most this many model calls (optional)"},
}
TOOL_DESC = ("Sample a 2-D toy diffusion model through the learned router: it picks the sampler expert and step "
             "count (including distilled few-step students) for the speed weight and NFE cap, samples, and "
             "measures the energy distance to fresh data. First use on a toy trains its model (minutes).")


def diffusion_answer(o: dict, question: str) -> str:
    cap = f" within {o['max_nfe']} model calls" if o.get("max_nfe") else ""
    others = "; ".join(f"{a['arm']} (energy {a['energy']:.4f}, {a['nfe']:.0f} NFE)" for a in o["alternatives"])
    return (
        f"On {o['workload']} at speed weight {o['speed_weight']:g}{cap}, the router chose {o['expert']} with "
        f"{o['num_steps']} steps: {o['nfe']} model calls, {o['seconds']:.2f} s. Measured: energy distance "
        f"{o['energy']:.4f} to fresh data (data-vs-data floor {o['floor_energy']:.4f}; its table expected "
        f"{o['expected_energy']:.4f}), MMD {o['mmd']:.4f}, off-mode fraction {o['off_mode']:.3f}. "
        f"Next best in its table: {others or 'none'}."
    )
