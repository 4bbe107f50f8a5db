"""Perturbations and robust accuracy (tdsnn.analysis.robustness) on tiny models."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

import tdsnn
from tdsnn.analysis.robustness import (Normalized, RobustnessConfig, fgsm, gaussian_noise, input_gradient, pgd,
                                       robust_accuracy, timestep_mask)

from conftest import TINY, make_firing

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture(params=["resnet18", "sresnet18"])
def net(request):
    model = tdsnn.create_model(request.param, **TINY, **({"timesteps": 4} if request.param == "sresnet18" else {}))
    return Normalized(make_firing(model), MEAN, STD).eval()


def batch(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 5, (n,), generator=g)


def test_attacks_stay_in_the_ball(net):
    x, y = batch()
    eps = 8 / 255
    for adv in (fgsm(net, x, y, eps), pgd(net, x, y, eps, 2 / 255, 5, torch.Generator().manual_seed(1))):
        assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        assert not torch.equal(adv, x)
    assert all(p.grad is None for p in net.parameters())  # gradients reach the input only


def test_attacks_raise_the_loss_of_an_ann():
    # (an untrained tiny SNN's logits barely depend on its input, so its loss is no test of direction)
    net = Normalized(make_firing(tdsnn.create_model("resnet18", **TINY)), MEAN, STD).eval()
    x, y = batch()
    with torch.no_grad():
        clean = F.cross_entropy(net(x), y)
        assert F.cross_entropy(net(fgsm(net, x, y, 4 / 255)), y) > clean
        strong = F.cross_entropy(net(pgd(net, x, y, 4 / 255, 1 / 255, 10, torch.Generator().manual_seed(1))), y)
    assert strong > clean


def test_spiking_input_gradient_flows_through_the_surrogate():
    model = make_firing(tdsnn.create_model("sresnet18", **TINY, timesteps=4))
    x, y = batch(4)
    grad = input_gradient(Normalized(model, MEAN, STD).eval(), x, y)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    model.train()
    robust_accuracy(model, x, y, MEAN, STD, RobustnessConfig(pgd_steps=1), progress=False)
    assert model.training  # robust_accuracy runs in eval mode and restores the flag


def test_noise_and_masks():
    x = torch.full((64, 3, 16, 16), 0.5)
    noisy = gaussian_noise(x, 0.1, torch.Generator().manual_seed(0))
    assert (noisy - x).std().item() == pytest.approx(0.1, rel=0.05)
    masked = timestep_mask(x, 0.3, 4, torch.Generator().manual_seed(0))
    assert masked.shape == (4, 64, 3, 16, 16)
    zero = masked[:, :, 0] == 0
    assert torch.equal(zero, (masked == 0).all(2))  # all channels of a pixel together
    assert zero.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert not torch.equal(zero[0], zero[1])  # a new mask at every timestep


def test_robust_accuracy_is_deterministic_and_records_its_strengths(net):
    x, y = batch(6)
    config = RobustnessConfig(pgd_steps=2, seed=3)
    a = robust_accuracy(net.model, x, y, MEAN, STD, config, batch_size=4, progress=False)
    b = robust_accuracy(net.model, x, y, MEAN, STD, config, batch_size=4, progress=False)
    assert a == b and a["config"] == dataclasses.asdict(config)
    with torch.no_grad():
        clean = 100 * (net(x).argmax(1) == y).float().mean().item()
    assert a["clean"] == pytest.approx(clean)
    assert all(0 <= a[k] <= 100 for k in ("noise", "fgsm", "pgd", "mask"))
