"""A pytorch-grad-cam script ported to lumos by changing only its imports.

The body below is grad-cam's README usage snippet as it stands (a torchvision ResNet, `ClassifierOutputTarget`,
`show_cam_on_image`, `aug_smooth`/`eigen_smooth`). It runs once on lumos; when grad-cam itself is installed it runs
a second time on grad-cam and the maps are compared. Random weights stand in for the pretrained ones (nothing is
downloaded), so the maps explain an untrained network; the point is that both libraries agree.

Run: python examples/gradcam_script_ported.py
"""

import importlib.util

import numpy as np
import torch
from torchvision.models import resnet18


def grad_cam_snippet(prefix: str, model: torch.nn.Module, input_tensor: torch.Tensor, rgb_img: np.ndarray):
    """grad-cam's README snippet; `prefix` is "pytorch_grad_cam" or "lumos.explain.grad_cam"."""
    cams = importlib.import_module(prefix)
    targets_mod = importlib.import_module(prefix + ".utils.model_targets")
    image_mod = importlib.import_module(prefix + ".utils.image")
    GradCAM, ClassifierOutputTarget = cams.GradCAM, targets_mod.ClassifierOutputTarget
    show_cam_on_image = image_mod.show_cam_on_image

    target_layers = [model.layer4[-1]]
    targets = [ClassifierOutputTarget(281)]
    with GradCAM(model=model, target_layers=target_layers) as cam:
        grayscale_cam = cam(input_tensor=input_tensor, targets=targets, aug_smooth=True, eigen_smooth=True)
        grayscale_cam = grayscale_cam[0, :]
        visualization = show_cam_on_image(rgb_img, grayscale_cam, use_rgb=True)
        model_outputs = cam.outputs
    return grayscale_cam, visualization, model_outputs


def main() -> None:
    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    rgb_img = np.random.default_rng(0).random((224, 224, 3)).astype(np.float32)    # an RGB image in [0, 1]
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    input_tensor = torch.from_numpy(((rgb_img - mean) / std).transpose(2, 0, 1)[None]).float()

    ours, vis, outputs = grad_cam_snippet("lumos.explain.grad_cam", model, input_tensor, rgb_img)
    print(f"lumos: map {ours.shape} {ours.dtype} in [{ours.min():.2f}, {ours.max():.2f}], "
          f"overlay {vis.shape} {vis.dtype}, logits {tuple(outputs.shape)}")
    if importlib.util.find_spec("pytorch_grad_cam") is not None:
        theirs, _, _ = grad_cam_snippet("pytorch_grad_cam", model, input_tensor, rgb_img)
        diff = float(np.abs(ours - theirs).max())
        print(f"grad-cam: same snippet, max |map difference| = {diff:.2e}")
        assert diff < 1e-4


if __name__ == "__main__":
    main()
