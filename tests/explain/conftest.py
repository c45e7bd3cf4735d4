import pytest
import torch
from torch import nn


class TinyCNN(nn.Module):
    """conv-ReLU-conv-ReLU (``features``) → GAP → linear head; ``features.2`` feeds the pooling."""

    def __init__(self, classes: int = 5, relu_head: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2, padding=1),
                                      nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def tiny_cnn():
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture(scope="module")
def resnet18():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.fixture(autouse=True)
def _one_thread():
    """CAM tests run many tiny models; intra-op threads only add synchronisation on tensors this small (and stall
    badly on a busy machine: 10-40× slower), so they run on one thread, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
