import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


#: Small overrides that keep every architecture fast on a 2-core CPU.
TINY = dict(width=0.25, num_classes=5, input_size=32, stem="small")
