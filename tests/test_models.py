import pytest
import torch
import torchvision
from spikingjelly.activation_based import functional, neuron, surrogate
from spikingjelly.activation_based.model import spiking_resnet
from topoloss import LaplacianPyramid, TopoLoss

import tdsnn
from tdsnn.config import BLOCKS, ModelConfig
from tdsnn.registry import build

from tiny import ARCHS, TINY, make_firing


def test_list_models_has_every_architecture():
    assert set(ARCHS) <= set(tdsnn.list_models())
    assert tdsnn.list_models("t*resnet18") == ["toponet_resnet18", "tsresnet18"]


@pytest.mark.parametrize("name", ARCHS)
def test_forward_backward_and_blocks(name):
    model = tdsnn.create_model(name, **TINY)
    x = torch.rand(3, 3, 32, 32)
    logits, blocks = model.forward_blocks(x)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    assert list(blocks) == list(BLOCKS)
    T = model.config.timesteps or 1
    widths = [16, 16, 32, 32, 64, 64, 128, 128]
    sides = [32, 32, 16, 16, 8, 8, 4, 4]
    for (block, out), c, s in zip(blocks.items(), widths, sides):
        assert out.shape == (T, 3, c, s, s), block
    if model.is_spiking:
        spikes = torch.cat([b.flatten() for b in blocks.values()])
        assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ARCHS)
def test_config_rebuilds_model_exactly(name):
    model = tdsnn.create_model(name, **TINY, timesteps=None if name in ("resnet18", "toponet_resnet18") else 3)
    config = ModelConfig.from_dict(model.config.to_dict())
    assert config == model.config
    torch.manual_seed(123)
    rebuilt = build(config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    for key, value in model.state_dict().items():
        if key.startswith("sheets."):  # sheets are seeded by config.sheet.seed, not the global RNG
            assert torch.equal(value, rebuilt.state_dict()[key]), key


@pytest.mark.parametrize("name", ["sresnet18", "tsresnet18"])
def test_outputs_do_not_depend_on_previous_batch(name):
    model = make_firing(tdsnn.create_model(name, **TINY)).eval()
    a, b = torch.rand(2, 3, 32, 32), torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        fresh = model(b)
        model(a)
        after = model(b)
        single = torch.cat([model(b[i:i + 1]) for i in range(4)])
    assert torch.equal(fresh, after)
    torch.testing.assert_close(single, fresh, atol=1e-5, rtol=1e-5)
    assert model.forward_blocks(b)[1]["layer2.0"].mean() > 0.01


def test_direct_and_per_timestep_inputs_agree():
    model = tdsnn.create_model("sresnet18", **TINY, timesteps=4).train()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        direct = model(x)
        explicit = model(x.unsqueeze(0).expand(4, -1, -1, -1, -1))
    torch.testing.assert_close(direct, explicit, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.rand(3, 32, 32))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sresnet18_matches_spikingjelly_zoo(mode):
    ref = spiking_resnet.spiking_resnet18(spiking_neuron=neuron.LIFNode, surrogate_function=surrogate.ATan(),
                                          detach_reset=True, tau=2.0, num_classes=10)
    functional.set_step_mode(ref, "m")
    ours = tdsnn.create_model("sresnet18", num_classes=10, input_size=64)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64) * 4
    getattr(ref, mode)(), getattr(ours, mode)()
    with torch.no_grad():
        expected = ref(x.unsqueeze(0).repeat(4, 1, 1, 1, 1)).mean(0)
        got = ours(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert expected.abs().max() > 1e-3


def test_resnet18_matches_torchvision():
    ref = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    ours = tdsnn.create_model("resnet18", num_classes=7, input_size=64).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_toponet_loss_equals_topoloss_compute():
    model = tdsnn.create_model("toponet_resnet18", **TINY)
    convs = [f"layer{s}.{b}.conv{c}" for s in range(1, 5) for b in range(2) for c in (1, 2)]
    modules = dict(model.named_modules())
    reference = TopoLoss(losses=[LaplacianPyramid.from_layer(model, modules[n], factor_h=3.0, factor_w=3.0, scale=10.0)
                                 for n in convs])
    total, logs = model.topo_loss()
    expected = reference.compute(model=model)
    torch.testing.assert_close(total, expected)
    assert 0 < float(total.detach()) < 20 and logs["topoloss"] == pytest.approx(float(total.detach()))
    total.backward()
    assert model.layer1[0].conv1.weight.grad.abs().sum() > 0
    assert model.fc.weight.grad is None


def test_overrides_and_errors():
    model = tdsnn.create_model("sresnet18", timesteps=6, neuron={"tau": 3.0}, **TINY)
    assert model.config.timesteps == 6 and model.config.neuron.tau == 3.0
    assert model.config.neuron.v_threshold == 1.0
    assert model.layer1[0].act1.tau == 3.0
    with pytest.raises(KeyError, match="registered models: .*sresnet18"):
        tdsnn.create_model("sresnet19")
    with pytest.raises(ValueError, match="unknown model options"):
        tdsnn.create_model("sresnet18", depth=50)
    with pytest.raises(ValueError, match="unknown NeuronConfig options"):
        tdsnn.create_model("sresnet18", neuron={"tua": 2.0})
    with pytest.raises(ValueError, match="is an ANN: timesteps must be None"):
        tdsnn.create_model("resnet18", timesteps=4)
    with pytest.raises(ValueError, match="stem"):
        tdsnn.create_model("resnet18", stem="huge")


def test_set_timesteps_changes_inference_T():
    model = tdsnn.create_model("sresnet18", **TINY)
    model.set_timesteps(2)
    assert model.forward_blocks(torch.rand(1, 3, 32, 32))[1]["layer1.0"].shape[0] == 2
    with pytest.raises(ValueError, match="not a spiking model"):
        tdsnn.create_model("resnet18", **TINY).set_timesteps(2)


def test_toponet_rejects_sheets_smaller_than_factor():
    with pytest.raises(ValueError, match="smaller than the topoloss factor 3.0"):
        tdsnn.create_model("toponet_resnet18", **{**TINY, "width": 0.125})
    assert tdsnn.create_model("toponet_resnet18", **{**TINY, "width": 0.125}, topoloss={"factor": 2.0})


@pytest.mark.parametrize("name", ARCHS)
def test_stepwise_inference_equals_forward(name):
    model = make_firing(tdsnn.create_model(name, **TINY)).eval()
    x = torch.rand(3, 3, 32, 32)
    calls = []
    model.layer2[0].register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    with torch.no_grad():
        full, stepwise = model(x), model.forward_stepwise(x)
        per_step = model.forward_stepwise(x.unsqueeze(0).expand(model.timesteps, -1, -1, -1, -1))
    torch.testing.assert_close(stepwise, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(per_step, full, atol=1e-5, rtol=1e-5)
    assert calls == [model.timesteps] + [1] * (2 * model.timesteps)
