import itertools

import pytest
import torch
from spikingjelly.activation_based import functional, surrogate

from tdsnn.config import NeuronConfig
from tdsnn.models.lif import LIFNode, lif_sequence


@pytest.mark.parametrize("detach_reset,decay_input,v_reset", list(itertools.product([True, False], [True, False], [0.0, -0.5])))
def test_lif_sequence_matches_spikingjelly(detach_reset, decay_input, v_reset):
    cfg = NeuronConfig(detach_reset=detach_reset, decay_input=decay_input, v_reset=v_reset, tau=2.0)
    x = (torch.randn(6, 4, 9) * 2).requires_grad_()
    v0 = torch.randn(4, 9).requires_grad_()
    spikes, v = lif_sequence(x, v0, cfg)
    ref_spikes, ref_v, _ = functional.lif_multi_step(x, v0, 2.0, decay_input, 1.0, v_reset,
                                                     surrogate.ATan(alpha=2.0), detach_reset)
    assert torch.equal(spikes, ref_spikes)
    assert spikes.sum() > 0 and (spikes == 0).sum() > 0
    torch.testing.assert_close(v, ref_v, atol=1e-6, rtol=1e-6)
    g_s, g_v = torch.randn_like(spikes), torch.randn_like(v)
    ours = torch.autograd.grad((spikes * g_s).sum() + (v * g_v).sum(), (x, v0))
    ref = torch.autograd.grad((ref_spikes * g_s).sum() + (ref_v * g_v).sum(), (x, v0))
    for a, b in zip(ours, ref):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_lif_node_state_and_reset():
    node = LIFNode(NeuronConfig())
    x = torch.full((3, 2, 5), 1.5)
    first = node(x)
    # constant drive 1.5, tau 2: H = 0.75 (no spike), then 0.75/2 + 0.75 = 1.125 (spike), then 0.75
    assert first[:, 0, 0].tolist() == [0.0, 1.0, 0.0]
    carried = node(x)  # state carries over without a reset
    assert not torch.equal(first, carried)
    functional.reset_net(node)
    assert torch.equal(node(x), first)
