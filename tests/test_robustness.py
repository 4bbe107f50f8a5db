"""Perturbations, attacks and robust accuracy (tdsnn.analysis.robustness) on tiny models."""
import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import tdsnn
from tdsnn.analysis.robustness import (PERTURBATIONS, Normalized, RobustnessConfig, fgsm, gaussian_noise,
                                       input_gradient, pgd, robust_accuracy, timestep_mask)

from tiny import TINY, make_firing

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
T = 4


def tiny(arch):
    return make_firing(tdsnn.create_model(arch, **TINY, **({"timesteps": T} if arch == "sresnet18" else {})))


def batch(n=8, size=32, seed=0):
    """Random images in [0, 1] with some pixels exactly 0 and 1 (clamping matters) and labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    x[:, :, :4] = 0.0
    x[:, :, -4:] = 1.0
    return x, torch.randint(0, TINY["num_classes"], (n,), generator=g)


def quadrant_task(n, g, size=16, contrast=0.5):
    """Class k in 0..4: a brighter size/2 square in one of four quadrants or the centre."""
    y = torch.randint(0, 5, (n,), generator=g)
    x = torch.rand(n, 3, size, size, generator=g) * (1 - contrast)
    h = size // 2
    corners = [(0, 0), (0, h), (h, 0), (h, h), (h // 2, h // 2)]
    for i, k in enumerate(y.tolist()):
        r, c = corners[k]
        x[i, :, r:r + h, c:c + h] += contrast
    return x, y


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one thread is as fast, and avoids OpenMP threads waiting on each other
    (tens of times slower) when other jobs share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["resnet18", "sresnet18"])
def net(request):
    return Normalized(tiny(request.param), MEAN, STD).eval()


@pytest.fixture(scope="module")
def trained_snn():
    """A tiny SNN after 15 Adam steps on ``quadrant_task``, and held-out images. (An untrained
    one's logits hardly depend on its input: there, the surrogate gradient points no better
    than a random direction, so it cannot show that attacks work.)"""
    torch.manual_seed(0)
    net = Normalized(tiny("sresnet18"), MEAN, STD).train()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(15):
        x, y = quadrant_task(32, g)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    net.zero_grad(set_to_none=True)
    return net.eval(), quadrant_task(32, g)


def test_attacks_stay_in_the_ball(net):
    x, y = batch()
    eps = 8 / 255
    adv_f = fgsm(net, x, y, eps)
    adv_p = pgd(net, x, y, eps, 2 / 255, 5, torch.Generator().manual_seed(1))
    for adv in (adv_f, adv_p):
        assert adv.shape == x.shape and not adv.requires_grad
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
    # FGSM moves every unclamped pixel with a nonzero gradient by exactly eps
    inside = (x > eps) & (x < 1 - eps)
    moved = (adv_f - x).abs()[inside]
    assert (moved > 0).float().mean() > 0.5
    assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], eps), atol=1e-6)
    assert (adv_p - x).abs().max() > 0.9 * eps  # PGD reaches the ball's boundary somewhere


@pytest.mark.parametrize("kind", ["ann", "snn"])
def test_attacks_raise_the_loss_more_than_random_signs(kind, trained_snn):
    if kind == "ann":
        net, (x, y) = Normalized(tiny("resnet18"), MEAN, STD).eval(), batch(16)
    else:
        net, (x, y) = trained_snn
    eps = 8 / 255
    g = torch.Generator().manual_seed(2)
    random_sign = (x + eps * (2 * torch.randint(0, 2, x.shape, generator=g) - 1)).clamp(0, 1)
    with torch.no_grad():
        loss = {name: F.cross_entropy(net(inputs), y).item() for name, inputs in {
            "clean": x, "random": random_sign, "fgsm": fgsm(net, x, y, eps),
            "pgd": pgd(net, x, y, eps, 2 / 255, 5, torch.Generator().manual_seed(1))}.items()}
    assert loss["fgsm"] > max(loss["clean"], loss["random"]), loss
    assert loss["pgd"] > max(loss["clean"], loss["random"]), loss


def test_input_gradient_flows_through_the_surrogate_over_all_timesteps():
    net = Normalized(tiny("sresnet18"), MEAN, STD)
    x, y = batch(4)
    grad = input_gradient(net, x, y)  # direct encoding: the same frame at every step
    assert grad.shape == x.shape and grad.abs().sum() > 0
    frames = torch.stack([batch(4, seed=s)[0] for s in range(T)])  # [T, B, 3, S, S]
    grad = input_gradient(net, frames, y)
    assert grad.shape == frames.shape
    assert (grad.flatten(1).abs().sum(1) > 0).all()  # every timestep's frame gets a gradient


def test_attacks_leave_the_model_as_they_found_it():
    model = tiny("sresnet18").train()
    model.layer2.eval()  # a mixed state, restored module by module
    flags = {name: m.training for name, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    net = Normalized(model, MEAN, STD)
    x, y = batch(4)
    input_gradient(net, x, y)
    fgsm(net, x, y, 4 / 255)
    pgd(net, x, y, 4 / 255, 1 / 255, 2, torch.Generator().manual_seed(0))
    assert {name: m.training for name, m in model.named_modules()} == flags
    # eval mode: BN running statistics untouched (train mode would update them)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    robust_accuracy(model, x, y, MEAN, STD, RobustnessConfig(pgd_steps=1), progress=False)
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_attacks_are_evaluated_in_eval_mode():
    net = Normalized(tiny("resnet18"), MEAN, STD)
    x, y = batch(4)
    expected = fgsm(net.eval(), x, y, 4 / 255)
    assert torch.equal(fgsm(net.train(), x, y, 4 / 255), expected)
    assert net.training


def test_gaussian_noise():
    x = torch.full((64, 3, 16, 16), 0.5)
    noisy = gaussian_noise(x, 0.1, torch.Generator().manual_seed(0))
    assert (noisy - x).std().item() == pytest.approx(0.1, rel=0.05)
    assert (noisy - x).mean().item() == pytest.approx(0.0, abs=0.005)
    assert torch.equal(noisy, gaussian_noise(x, 0.1, torch.Generator().manual_seed(0)))
    assert not torch.equal(noisy, gaussian_noise(x, 0.1, torch.Generator().manual_seed(1)))
    black = gaussian_noise(torch.zeros(8, 3, 16, 16), 0.1, torch.Generator().manual_seed(0))
    assert black.min() == 0 and (black == 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    assert torch.equal(gaussian_noise(x, 0.0), x)


def test_timestep_mask():
    p = 0.3
    x = torch.rand(64, 3, 16, 16) * 0.9 + 0.1  # no pixel is 0 before masking
    masked = timestep_mask(x, p, T, torch.Generator().manual_seed(0))
    assert masked.shape == (T, 64, 3, 16, 16)
    zero = masked[:, :, 0] == 0  # [T, B, S, S]
    assert torch.equal(zero.unsqueeze(2).expand_as(masked), masked == 0)  # all channels of a pixel together
    kept = ~zero.unsqueeze(2).expand_as(masked)
    assert torch.equal(masked[kept], x.unsqueeze(0).expand_as(masked)[kept])  # other pixels untouched
    fractions = zero.float().mean((1, 2, 3))
    assert torch.allclose(fractions, torch.full((T,), p), atol=0.01)
    both = (zero[0] & zero[1]).float().mean().item()
    assert both == pytest.approx(p * p, abs=0.01)  # masks of different timesteps are independent
    assert torch.equal(masked, timestep_mask(x, p, T, torch.Generator().manual_seed(0)))
    assert timestep_mask(x, p, 1).shape == (1, 64, 3, 16, 16)  # ANNs: one mask
    assert torch.equal(timestep_mask(x, 0.0, 2), x.expand(2, *x.shape))
    assert (timestep_mask(x, 1.0, 2) == 0).all()


def test_pgd_is_deterministic_given_its_generator(net):
    x, y = batch(4)
    a = pgd(net, x, y, 8 / 255, 2 / 255, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, pgd(net, x, y, 8 / 255, 2 / 255, 2, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, pgd(net, x, y, 8 / 255, 2 / 255, 2, torch.Generator().manual_seed(6)))


def test_robust_accuracy_records_its_strengths_and_is_deterministic(net):
    x, y = batch(6)
    config = RobustnessConfig(pgd_steps=1, seed=3)
    a = robust_accuracy(net.model, x, y, MEAN, STD, config, batch_size=4, progress=False)
    assert set(PERTURBATIONS) <= set(a) and a["config"] == dataclasses.asdict(config)
    assert a["images"] == 6 and a["timesteps"] == net.timesteps
    assert json.loads(json.dumps(a)) == a
    assert all(0 <= a[k] <= 100 for k in PERTURBATIONS)
    with torch.no_grad():
        clean = 100 * (net(x).argmax(1) == y).float().mean().item()
    assert a["clean"] == pytest.approx(clean)
    assert robust_accuracy(net.model, x, y, MEAN, STD, config, batch_size=4, progress=False) == a
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    assert robust_accuracy(net.model, loader, mean=MEAN, std=STD, config=config, progress=False) == a


def test_zero_strengths_give_the_clean_accuracy(net):
    x, y = batch(4)
    zero = RobustnessConfig(noise_std=0, fgsm_eps=0, pgd_eps=0, pgd_step=0, pgd_steps=1, mask_fraction=0)
    result = robust_accuracy(net.model, x, y, MEAN, STD, zero, progress=False)
    assert all(result[k] == result["clean"] for k in PERTURBATIONS)


def test_bad_input_is_rejected():
    model = tiny("resnet18")
    x, y = batch(2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        robust_accuracy(model, (x - 0.5) / 0.25, y, MEAN, STD, progress=False)  # normalised images
    with pytest.raises(ValueError):
        RobustnessConfig(mask_fraction=1.5)
    with pytest.raises(ValueError):
        timestep_mask(x, 0.3, 0)
