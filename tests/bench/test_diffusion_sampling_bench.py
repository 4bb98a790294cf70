"""bench/diffusion_sampling.py: development seeds never touch the evaluation seeds; --dev reports the students only."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("diffusion_sampling")


def test_development_and_evaluation_seeds_are_disjoint(bench):
    dev, evaluation = bench.run_seeds(100, dev=True), bench.run_seeds(100, dev=False)
    # Even at the largest allowed count no seed (hence no x_T or reference generator) is shared.
    assert not set(dev) & set(evaluation)
    assert evaluation[:5] == [0, 1, 2, 3, 4]


def test_distillation_overrides_are_refused_outside_dev_runs(bench):
    # Settings are tried on development seeds only; the evaluation runs route.py's chosen settings.
    with pytest.raises(ValueError, match="--dev"):
        bench.parse_args(["--distill-override", '{"iterations": 5}'])
    assert bench.parse_args(["--dev", "--distill-override", '{"iterations": 5}']).distill == {"iterations": 5}


def row(expert, steps, energy, nfe):
    return {"expert": expert, "steps": steps, "energy": energy, "energy_min": energy, "energy_max": energy,
            "nfe": nfe, "nfe_max": nfe}


@pytest.mark.parametrize(("student_energy", "verdict"), [(0.0028, "holds"), (0.0030, "falls short")])
def test_dev_targets_compare_the_students_with_the_ddpm_1000_worst_seed(bench, student_energy, verdict):
    reference = {**row("ddpm", 1000, 0.0019, 1000), "energy_max": 0.0029}
    results = {"dev": True, "toys": {"8gaussians": {"reference": reference, "router": {},
                                                    "static": [row("distilled", 4, student_energy, 4)]}}}
    bench.evaluate_targets(results)
    # Only the students' targets are judged on development seeds, against the worst DDPM-1000 seed.
    assert set(results["targets"].values()) == {verdict}
    assert all(name.startswith("dev:") for name in results["targets"])
