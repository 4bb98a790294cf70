"""Quality metrics: ~0 for identical samples, larger for shifted ones; floors and off-mode fraction."""

import pytest
import torch

from trainopt.ars.diffusion import (
    DigitsClassifier,
    class_agreement,
    energy_distance,
    frechet_distance,
    mmd_rbf,
    off_mode_fraction,
    quality_floor,
    sample_toy,
    sliced_wasserstein,
)

METRICS = {"swd": sliced_wasserstein, "mmd": mmd_rbf, "energy": energy_distance}


@pytest.fixture()
def moons():
    return sample_toy("moons", 300, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_is_zero_for_identical_samples(name, moons):
    # The same point cloud twice: the distance vanishes (V-statistics are exactly 0).
    assert abs(METRICS[name](moons, moons.clone())) < 1e-9


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_grows_with_a_shift(name, moons):
    other = sample_toy("moons", 300, generator=torch.Generator().manual_seed(1))
    near, far = METRICS[name](moons, other), METRICS[name](moons, other + 0.5)
    # An independent draw is close; the same draw shifted by 0.5 is much farther.
    assert far > 3 * near


def test_metrics_reject_mismatched_dimensions(moons):
    with pytest.raises(ValueError, match="same D"):
        energy_distance(moons, torch.randn(10, 3))


@pytest.mark.parametrize("toy", ["8gaussians", "moons", "swissroll", "checkerboard"])
def test_off_mode_fraction_is_small_on_data_and_large_off_it(toy):
    x = sample_toy(toy, 500, generator=torch.Generator().manual_seed(0))
    # Real data sits on the modes; uniform noise on a wide box mostly does not.
    assert off_mode_fraction(toy, x) < 0.01
    assert off_mode_fraction(toy, 8 * torch.rand(500, 2) - 4) > 0.3


def test_quality_floor_is_small_and_positive():
    floor = quality_floor("8gaussians", 400)
    # Two independent data samples: small but non-zero distances.
    assert 0 < floor["energy"] < 0.05
    assert 0 < floor["mmd"] < 0.05


def test_frechet_distance_is_zero_for_identical_features_and_grows_with_a_shift():
    f = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    # Identical sets: 0 (up to sqrtm round-off); a mean shift of 1 in 8 dims adds ~8.
    assert abs(frechet_distance(f, f)) < 1e-6
    assert frechet_distance(f, f + 1.0) == pytest.approx(8.0, rel=0.01)


def test_class_agreement_counts_matching_predictions():
    clf = DigitsClassifier()
    x = torch.randn(20, 64)
    y = clf.predict(x)
    # Labels equal to the predictions agree fully; shifted labels never do.
    assert class_agreement(clf, x, y) == 1.0
    assert class_agreement(clf, x, (y + 1) % 10) == 0.0
