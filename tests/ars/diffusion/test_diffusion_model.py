"""DDPM model: data generators, training lowers the loss, checkpoint round trip with weights_only."""

import pytest
import torch

from trainopt.ars.diffusion import (
    TOY_NAMES,
    ClassConditioned,
    NoisePredictor,
    NoisePredictorConfig,
    distance_to_support,
    load_checkpoint,
    load_digits_data,
    sample_toy,
    save_checkpoint,
    train_ddpm,
    vp_alphas_cumprod,
)

TINY = dict(hidden=16, depth=1, time_dim=8)


@pytest.mark.parametrize("toy", TOY_NAMES)
def test_toys_are_seeded_and_two_dimensional(toy):
    a = sample_toy(toy, 50, generator=torch.Generator().manual_seed(0))
    b = sample_toy(toy, 50, generator=torch.Generator().manual_seed(0))
    # Same seed, same points; shape (n, 2); points lie on the toy's support (within its noise).
    assert a.shape == (50, 2) and torch.equal(a, b)
    assert float(distance_to_support(toy, a).median()) < 0.2


def test_unknown_toy_is_rejected():
    with pytest.raises(ValueError, match="spiral"):
        sample_toy("spiral", 10)


def test_digits_are_scaled_and_labelled():
    x, y = load_digits_data("test")
    # 20% of 1797 images, pixels in [-1, 1], ten classes.
    assert x.shape == (360, 64) and y.shape == (360,)
    assert x.min() >= -1 and x.max() <= 1 and set(y.tolist()) == set(range(10))


def test_vp_schedule_matches_ddpm():
    abar = vp_alphas_cumprod()
    # T = 1000, abar_0 = 1 - 1e-4, and abar_T is ~4e-5 (pure noise).
    assert len(abar) == 1000
    assert float(abar[0]) == pytest.approx(1 - 1e-4)
    assert float(abar[-1]) < 1e-4


def test_training_lowers_the_ddpm_loss():
    model = NoisePredictor(NoisePredictorConfig(data_dim=2, **TINY))
    losses = train_ddpm(model, sample_toy("moons", 512), steps=100, batch_size=64, lr=1e-2)
    # The noise-prediction loss starts near 1 (predicting 0) and falls.
    assert sum(losses[-20:]) / 20 < 0.8 * sum(losses[:20]) / 20


def test_class_conditional_model_needs_labels():
    model = NoisePredictor(NoisePredictorConfig(data_dim=64, num_classes=10, **TINY))
    x, t, y = torch.randn(4, 64), torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1, 2, 3])
    # With labels bound, the model has the sampler signature model(x, t).
    assert ClassConditioned(model, y)(x, t).shape == (4, 64)
    with pytest.raises(ValueError, match="labels"):
        model(x, t)


def test_checkpoint_round_trips_with_weights_only(tmp_path):
    model = NoisePredictor(NoisePredictorConfig(data_dim=2, **TINY))
    save_checkpoint(model, tmp_path / "m.pt", data="moons")
    # The file holds only plain types and tensors: torch.load(weights_only=True) accepts it.
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    assert blob["config"]["hidden"] == 16
    loaded, meta = load_checkpoint(tmp_path / "m.pt")
    x, t = torch.randn(3, 2), torch.tensor([5.0, 500.0, 999.0])
    assert meta == {"data": "moons"}
    assert torch.equal(loaded(x, t), model(x, t))


def test_config_rejects_unknown_keys_and_bad_sizes():
    with pytest.raises(ValueError, match="widht"):
        NoisePredictorConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError, match="hidden"):
        NoisePredictorConfig(hidden=0)
