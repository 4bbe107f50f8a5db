"""The interface every architecture shares (``tdsnn.models.backbone``), checked for each
registered architecture with its TINY options: a new architecture is covered unchanged."""
import pytest
import torch

import tdsnn
from tdsnn.checkpoint import save_model
from tdsnn.config import ModelConfig
from tdsnn.registry import build, resolve
from tdsnn.sheets import AREAS, model_sheet

from tiny import ARCHS, TINY, make_firing

X = torch.rand(2, 3, 32, 32)


def tiny(name: str) -> torch.nn.Module:
    """``name`` with TINY options (and, for models with sheets, 1000 clusters per sheet)."""
    sheets = {"sheet": {"n_clusters": 1000}} if resolve(name).config.sheet is not None else {}
    return tdsnn.create_model(name, **TINY, **sheets)


@pytest.mark.parametrize("name", ARCHS)
def test_forward_shapes_and_backward(name):
    model = tiny(name)
    logits, blocks = model.forward_blocks(X)
    assert logits.shape == (2, TINY["num_classes"]) and torch.isfinite(logits).all()
    assert tuple(blocks) == model.block_names
    dims = model.block_dims()
    assert tuple(dims) == model.block_names
    for block, out in blocks.items():
        assert out.shape == (model.timesteps, 2, *dims[block]), block
        assert isinstance(model.get_submodule(block), torch.nn.Module)  # hookable by name
    if model.is_spiking:
        spikes = torch.cat([b.flatten() for b in blocks.values()])
        assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert next(model.parameters()).grad.abs().sum() > 0  # the gradient reaches the first layer


@pytest.mark.parametrize("name", ARCHS)
def test_blocks_sheets_and_region_map_agree(name):
    model = tiny(name)
    dims = model.block_dims()
    assert set(model.block_areas.values()) <= set(AREAS)
    assert set(resolve(name).region_layer_map.values()) <= set(model.block_names)
    first = model_sheet(model, model.block_names[0])
    assert first.dims == dims[model.block_names[0]] and first.area == model.block_areas[model.block_names[0]]
    if hasattr(model, "sheets"):
        assert tuple(model.sheets_by_block()) == model.block_names
        for block, sheet in model.sheets_by_block().items():
            assert sheet.dims == dims[block] and sheet.area == model.block_areas[block]
        assert set(model.config.stc.layers) <= set(model.block_names)
        logits, blocks = model.forward_blocks(X)
        loss, logs = model.topo_loss(blocks, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(loss) and set(logs) == {"stc_rate", "stc_sync"}
        loss.backward()
        assert next(model.parameters()).grad is not None


@pytest.mark.parametrize("name", ARCHS)
def test_save_load_round_trip(name, tmp_path):
    model = make_firing(tiny(name)).eval()
    path = tmp_path / f"{name}.safetensors"
    digest = save_model(model, path)
    loaded = tdsnn.load_model(path, expected_sha256=digest).eval()
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded(X), model(X))


@pytest.mark.parametrize("name", ARCHS)
def test_config_rebuilds_model_exactly(name):
    model = tiny(name)
    config = ModelConfig.from_dict(model.config.to_dict())
    assert config == model.config
    rebuilt = build(config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    for key, value in model.state_dict().items():
        if key.startswith("sheets."):  # sheets are seeded by config.sheet.seed, not the global RNG
            assert torch.equal(value, rebuilt.state_dict()[key]), key


@pytest.mark.parametrize("name", ARCHS)
def test_stepwise_inference_equals_forward(name):
    model = make_firing(tiny(name)).eval()
    calls = []
    model.get_submodule(model.block_names[0]).register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    with torch.no_grad():
        full, stepwise = model(X), model.forward_stepwise(X)
        per_step = model.forward_stepwise(X.unsqueeze(0).expand(model.timesteps, -1, -1, -1, -1))
    torch.testing.assert_close(stepwise, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(per_step, full, atol=1e-5, rtol=1e-5)
    assert calls == [model.timesteps] + [1] * (2 * model.timesteps)


@pytest.mark.parametrize("name", [a for a in ARCHS if resolve(a).config.timesteps is not None])
def test_spiking_outputs_do_not_depend_on_previous_batch_and_follow_set_timesteps(name):
    model = make_firing(tiny(name)).eval()
    b = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        fresh = model(b)
        model(X)
        after = model(b)
        single = torch.cat([model(b[i:i + 1]) for i in range(3)])
        assert torch.equal(fresh, after)
        torch.testing.assert_close(single, fresh, atol=1e-5, rtol=1e-5)
        blocks = model.forward_blocks(b)[1]
        assert max(float(out.mean()) for out in blocks.values()) > 0.01  # the check sees spikes
        model.set_timesteps(2)
        assert all(out.shape[0] == 2 for out in model.forward_blocks(b)[1].values())
