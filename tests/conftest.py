import os
import tempfile

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")
# Brain-Score reads these at import time: keep its caches and downloads inside a scratch
# folder and never let it pip-install plugin requirements.
_BS_SCRATCH = tempfile.mkdtemp(prefix="tdsnn-tests-bs-")
for _key, _value in {"RESULTCACHING_DISABLE": "1", "BRAINIO_HOME": f"{_BS_SCRATCH}/brainio",
                     "BRAINSCORE_HOME": f"{_BS_SCRATCH}/brainscore", "BRAINSCORE_SKIP_MEMORY_CHECK": "1",
                     "BS_INSTALL_DEPENDENCIES": "no", "AWS_EC2_METADATA_DISABLED": "true"}.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


#: Small overrides that keep every architecture fast on a 2-core CPU.
TINY = dict(width=0.25, num_classes=5, input_size=32, stem="small")


def make_firing(model: torch.nn.Module) -> torch.nn.Module:
    """Untrained spiking nets are silent in eval mode; scaled BN makes their neurons fire."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.fill_(2.0)
            m.bias.data.fill_(0.6)
    return model
