import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("LUMOS_PROGRESS", "0")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
