import pytest
import torch

from lumos.core.errors import LumosError
from lumos.core.io import save_tensors
from lumos.vision.zoo import default_target_layers, load_model


def test_torchvision_with_safetensors_and_state_dict(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    ref = torchvision.models.resnet18(weights=None, num_classes=4)
    save_tensors(tmp_path / "w.safetensors", ref.state_dict())
    b = load_model("torchvision:resnet18", tmp_path / "w.safetensors", num_classes=4)
    x = torch.randn(1, 3, 32, 32)
    ref.eval()
    assert torch.equal(b.model(x), ref(x))
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "w.pt")
    b2 = load_model("torchvision:resnet18", tmp_path / "w.pt", num_classes=4)
    assert torch.equal(b2.model(x), ref(x))
    assert b.target_layers == {"before_pool": "layer4[-1]", "last_conv": "layer4[-1].conv2"}


def test_errors(tmp_path):
    with pytest.raises(LumosError, match="torchvision:NAME"):
        load_model("resnet18")
    with pytest.raises(LumosError, match="known torchvision architecture"):
        load_model("torchvision:not_a_net")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    with pytest.raises(LumosError, match="safetensors"):
        load_model("torchvision:resnet18", bad)
    ok = tmp_path / "small.safetensors"
    save_tensors(ok, {"weight": torch.zeros(2)})
    with pytest.raises(LumosError, match="do not fit"):
        load_model("torchvision:resnet18", ok)
    assert default_target_layers("swin_tiny_patch4_window7_224", "timm")["before_pool"] == "norm"
