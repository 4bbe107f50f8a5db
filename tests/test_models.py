import pytest
import torch
import torchvision
from spikingjelly.activation_based import functional, neuron, surrogate
from spikingjelly.activation_based.model import spiking_resnet, spikformer as sj_spikformer
from topoloss import LaplacianPyramid, TopoLoss

import tdsnn
from tdsnn.config import BLOCKS
from tdsnn.models.spikformer import convert_spikingjelly_state_dict

from tiny import ARCHS, TINY, make_firing


def test_list_models_has_every_architecture():
    assert set(ARCHS) <= set(tdsnn.list_models())
    assert tdsnn.list_models("t*resnet18") == ["toponet_resnet18", "tsresnet18"]


RESNETS = [a for a in ARCHS if a.endswith("resnet18")]


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_blocks_and_widths(name):
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


def test_set_timesteps_rejects_anns():
    with pytest.raises(ValueError, match="not a spiking model"):
        tdsnn.create_model("resnet18", **TINY).set_timesteps(2)


def test_toponet_rejects_sheets_smaller_than_factor():
    with pytest.raises(ValueError, match="smaller than the topoloss factor 3.0"):
        tdsnn.create_model("toponet_resnet18", **{**TINY, "width": 0.125})
    assert tdsnn.create_model("toponet_resnet18", **{**TINY, "width": 0.125}, topoloss={"factor": 2.0})


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_spikformer_matches_spikingjelly(mode):
    ref = sj_spikformer.spikformer_cifar10(T=4, num_classes=10)  # Spikformer-4-384, patch 4, 32 px
    for m in ref.modules():  # our surrogate; spikingjelly's default (Sigmoid) changes only gradients
        if isinstance(m, neuron.LIFNode):
            m.surrogate_function = surrogate.ATan()
    make_firing(ref)
    ours = tdsnn.create_model("spikformer", num_classes=10, input_size=32, stem="small")
    ours.load_state_dict(convert_spikingjelly_state_dict(ref.state_dict()), strict=True)
    getattr(ref, mode)(), getattr(ours, mode)()
    x = torch.rand(2, 3, 32, 32)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected, got = ref(x_ref).mean(0), ours(x_ours)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert expected.abs().max() > 1e-3
    expected.square().sum().backward()
    got.square().sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-6, rtol=1e-4)
    assert x_ref.grad.abs().max() > 0
    with pytest.raises(KeyError, match="no Spikformer parameter"):
        convert_spikingjelly_state_dict({"cls_token": torch.zeros(1)})


def test_scornet_areas_see_the_previous_area_one_step_late():
    """V1 gets the image at every step; V2 first gets it at t = 1, V4 at t = 2, IT at t = 3."""
    model = make_firing(tdsnn.create_model("scornet", **TINY, timesteps=6)).eval()
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        blocks_a, blocks_b = model.forward_blocks(a)[1], model.forward_blocks(b)[1]
    for depth, area in enumerate(["V1", "V2", "V4", "IT"]):
        assert blocks_a[area].shape[0] == 6
        assert torch.equal(blocks_a[area][:depth], blocks_b[area][:depth]), area  # image not arrived yet
        assert not torch.equal(blocks_a[area][depth], blocks_b[area][depth]), area
    model.train()  # GroupNorm is per sample: stepwise equals forward in train mode too
    with torch.no_grad():
        torch.testing.assert_close(model.forward_stepwise(a), model(a), atol=1e-5, rtol=1e-5)


def test_tscornet_stc_window_follows_timesteps():
    assert tdsnn.create_model("tscornet", **TINY).stc.window == 4  # T = 10 by default
    assert tdsnn.create_model("tscornet", **TINY, timesteps=4).stc.window == 1
    assert tdsnn.create_model("tscornet", **TINY, timesteps=6, stc={"window": 3}).stc.window == 3
    with pytest.raises(ValueError, match=r"stc.layers \['layer2.0'\] are not blocks of this model"):
        tdsnn.create_model("tscornet", **TINY, stc={"layers": ["layer2.0"]})


def test_tspikformer_sheets_are_retinotopic_by_patch_position():
    model = tdsnn.create_model("tspikformer", **TINY)
    assert [model.sheet(b).area for b in model.block_names] == ["V1", "V2", "V4", "IT"]
    sheet = model.sheet("blocks.0.attn")
    c, h, w = sheet.dims
    assert (h, w) == (8, 8)  # 32 px, patch 4
    centres = sheet.positions.view(c, h, w, 2).mean(0)  # mean position of each patch's channels
    assert (centres[:, 1:, 0] > centres[:, :-1, 0]).all()  # x grows with the patch column
    assert (centres[1:, :, 1] > centres[:-1, :, 1]).all()  # y grows with the patch row
    with pytest.raises(ValueError, match="not a multiple of the 'small' stem's patch size 4"):
        tdsnn.create_model("spikformer", **{**TINY, "input_size": 30})
