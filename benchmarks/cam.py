"""CAM speed: lumos vs grad-cam 1.5.7, ms/image at batch 16 on random-weight ResNet-18/50 (CPU), same maps.

    python benchmarks/cam.py [--quick] [--json PATH] [--repeats N] [--layer NAME]

Part 2, "ported snippets": grad-cam's README usage run as written with ``pytorch_grad_cam`` and with only the
import prefix swapped to ``lumos.explain.grad_cam`` (GradCAM with targets; ``aug_smooth`` + ``eigen_smooth``
with targets=None; ShapleyCAM with ReST targets), timed side by side with the max map difference.

For every method both libraries explain the same batch with the same target (ReST on the predicted class
for ShapleyCAM, the predicted logit otherwise) and the maps are compared (max abs diff). Timings are
interleaved round-robin over all methods of both libraries and the median is reported; ratios are measured side by side.
Targets from the issue: lumos ShapleyCAM ≤ 1.6 × lumos GradCAM and ≤ 0.5 × grad-cam's ShapleyCAM.
--quick: ResNet-18 at 64×64, batch 4, three repeats (seconds). Under CPU contention prefer the ratios of the
fastest runs (also printed): contention only ever adds time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lumos.explain import GradCAM, HiResCAM, ShapleyCAM  # noqa: E402
from lumos.explain.targets import Logit, ReST  # noqa: E402

METHODS = ("gradcam", "hirescam", "shapleycam")


def _lumos(name, model, layer):
    cls = {"gradcam": GradCAM, "hirescam": HiResCAM, "shapleycam": ShapleyCAM}[name]
    target = ReST if name == "shapleycam" else Logit
    method = cls(model, [layer])
    return lambda x, c: method(x, targets=target(c))


def _gradcam_lib(name, model, module):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget

    cls = {"gradcam": pgc.GradCAM, "hirescam": pgc.HiResCAM, "shapleycam": pgc.ShapleyCAM}[name]
    tcls = ClassifierOutputReST if name == "shapleycam" else ClassifierOutputTarget

    def run(x, c):
        with cls(model, [module]) as cam:  # context manager releases hooks and graph each call
            return torch.from_numpy(cam(x, [tcls(int(k)) for k in c]))

    return run


def _time(fn, x, c):
    if x.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn(x, c)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out.cpu()


def _setup(arch: str, size: int, batch: int, layer: str, device: str):
    """A random-weight torchvision ResNet (seed 0), a random batch, its predicted classes and the target module."""
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval().to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    with torch.no_grad():
        classes = model(x).argmax(1)
    module = model.get_submodule(layer.replace("[-1]", f".{len(model.layer4) - 1}"))
    return model, x, classes, module


def bench_model(arch: str, size: int, batch: int, repeats: int, layer: str, device: str = "cpu") -> list[dict]:
    model, x, classes, module = _setup(arch, size, batch, layer, device)
    fns = {}
    for name in METHODS:
        fns[(name, "lumos")] = _lumos(name, model, layer)
        fns[(name, "gradcam_lib")] = _gradcam_lib(name, model, module)
    maps = {k: _time(fn, x, classes)[1] for k, fn in fns.items()}  # warm-up, and the maps to compare
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):  # round-robin over all six, so contention hits every method alike
        for k, fn in fns.items():
            times[k].append(_time(fn, x, classes)[0])
    rows = []
    for name in METHODS:
        rows.append({
            "model": arch, "size": size, "batch": batch, "layer": layer, "method": name, "device": device,
            "threads": torch.get_num_threads(),
            "lumos_ms_per_image": 1000 * statistics.median(times[(name, "lumos")]) / batch,
            "gradcam_lib_ms_per_image": 1000 * statistics.median(times[(name, "gradcam_lib")]) / batch,
            "lumos_min_ms_per_image": 1000 * min(times[(name, "lumos")]) / batch,
            "gradcam_lib_min_ms_per_image": 1000 * min(times[(name, "gradcam_lib")]) / batch,
            "max_abs_diff": float((maps[(name, "lumos")] - maps[(name, "gradcam_lib")]).abs().max()),
        })
    by = {r["method"]: r for r in rows}
    for r in rows:
        r["speedup_vs_gradcam_lib"] = r["gradcam_lib_ms_per_image"] / r["lumos_ms_per_image"]
    s = by["shapleycam"]
    s["ratio_to_lumos_gradcam"] = s["lumos_ms_per_image"] / by["gradcam"]["lumos_ms_per_image"]
    s["ratio_to_gradcam_lib_shapleycam"] = s["lumos_ms_per_image"] / s["gradcam_lib_ms_per_image"]
    s["min_ratio_to_lumos_gradcam"] = s["lumos_min_ms_per_image"] / by["gradcam"]["lumos_min_ms_per_image"]
    s["min_ratio_to_gradcam_lib_shapleycam"] = s["lumos_min_ms_per_image"] / s["gradcam_lib_min_ms_per_image"]
    s["meets_targets"] = s["ratio_to_lumos_gradcam"] <= 1.6 and s["ratio_to_gradcam_lib_shapleycam"] <= 0.5
    return rows


SNIPPETS = {
    "GradCAM targets": """
from {pkg} import GradCAM
from {pkg}.utils.model_targets import ClassifierOutputTarget
with GradCAM(model=model, target_layers=target_layers) as cam:
    grayscale_cam = cam(input_tensor=input_tensor, targets=[ClassifierOutputTarget(int(c)) for c in classes])
""",
    "GradCAM aug+eigen": """
from {pkg} import GradCAM
with GradCAM(model=model, target_layers=target_layers) as cam:
    grayscale_cam = cam(input_tensor=input_tensor, targets=None, aug_smooth=True, eigen_smooth=True)
""",
    "ShapleyCAM ReST": """
from {pkg} import ShapleyCAM
from {pkg}.utils.model_targets import ClassifierOutputReST
with ShapleyCAM(model=model, target_layers=target_layers) as cam:
    grayscale_cam = cam(input_tensor=input_tensor, targets=[ClassifierOutputReST(int(c)) for c in classes])
""",
}
PREFIXES = {"gradcam_lib": "pytorch_grad_cam", "lumos": "lumos.explain.grad_cam"}


def bench_snippets(arch: str, size: int, batch: int, repeats: int, layer: str, device: str = "cpu") -> list[dict]:
    """Each README snippet with both import prefixes on the same model and batch: ms/image and max |map diff|."""
    import contextlib
    import io

    model, x, classes, module = _setup(arch, size, batch, layer, device)

    def run(code: str):
        ns = {"model": model, "target_layers": [module], "input_tensor": x, "classes": classes}
        with contextlib.redirect_stdout(io.StringIO()):  # grad-cam prints warnings for some options
            exec(code, ns)  # noqa: S102 - this file's own snippets
        return ns["grayscale_cam"]

    codes = {(name, lib): code.replace("{pkg}", pkg) for name, code in SNIPPETS.items() for lib, pkg in PREFIXES.items()}
    maps = {k: run(c) for k, c in codes.items()}  # warm-up, and the maps to compare
    times: dict = {k: [] for k in codes}
    for _ in range(repeats):
        for k, c in codes.items():
            t0 = time.perf_counter()
            run(c)
            if device != "cpu":
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    rows = []
    for name in SNIPPETS:
        ours, ref = (1000 * statistics.median(times[(name, lib)]) / batch for lib in ("lumos", "gradcam_lib"))
        rows.append({"model": arch, "size": size, "batch": batch, "snippet": name, "device": device,
                     "lumos_ms_per_image": ours, "gradcam_lib_ms_per_image": ref, "speedup_vs_gradcam_lib": ref / ours,
                     "max_abs_diff": float(abs(maps[(name, "lumos")] - maps[(name, "gradcam_lib")]).max())})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "CAM speed").splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--layer", default="layer4[-1]", help="target layer (default layer4[-1], the paper's setting i)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--models", default="resnet18,resnet50", help="torchvision ResNets for the full run")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        configs = [("resnet18", 64, 4)]
        repeats = args.repeats or 3
    else:
        configs = [(m.strip(), 224, 16) for m in args.models.split(",") if m.strip()]
        repeats = args.repeats or 3
    rows = []
    for arch, size, batch in configs:
        rows += bench_model(arch, size, batch, repeats, args.layer, args.device)
    head = f"{'model':<9} {'method':<11} {'lumos ms/img':>12} {'grad-cam ms/img':>15} {'speedup':>8} {'max|diff|':>10}"
    print(f"CAM speed on {args.device} ({torch.get_num_threads()} CPU threads), layer {args.layer}, median of {repeats}")
    print(head)
    for r in rows:
        print(f"{r['model']:<9} {r['method']:<11} {r['lumos_ms_per_image']:>12.2f} {r['gradcam_lib_ms_per_image']:>15.2f} "
              f"{r['speedup_vs_gradcam_lib']:>7.2f}x {r['max_abs_diff']:>10.2e}")
    for r in rows:
        if "ratio_to_lumos_gradcam" in r:
            print(f"{r['model']}: ShapleyCAM / lumos GradCAM = {r['ratio_to_lumos_gradcam']:.2f} (target ≤ 1.6); "
                  f"ShapleyCAM / grad-cam ShapleyCAM = {r['ratio_to_gradcam_lib_shapleycam']:.2f} (target ≤ 0.5); "
                  f"from the fastest runs: {r['min_ratio_to_lumos_gradcam']:.2f} and "
                  f"{r['min_ratio_to_gradcam_lib_shapleycam']:.2f}")
    snippet_rows = []
    for arch, size, batch in configs:
        snippet_rows += bench_snippets(arch, size, batch, repeats, args.layer, args.device)
    print(f"\ngrad-cam README snippets, import prefix swapped (lumos.explain.grad_cam vs pytorch_grad_cam), "
          f"median of {repeats}")
    print(f"{'model':<9} {'snippet':<18} {'lumos ms/img':>12} {'grad-cam ms/img':>15} {'speedup':>8} {'max|diff|':>10}")
    for r in snippet_rows:
        print(f"{r['model']:<9} {r['snippet']:<18} {r['lumos_ms_per_image']:>12.2f} {r['gradcam_lib_ms_per_image']:>15.2f} "
              f"{r['speedup_vs_gradcam_lib']:>7.2f}x {r['max_abs_diff']:>10.2e}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"methods": rows, "snippets": snippet_rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
