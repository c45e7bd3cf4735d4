"""``lumos explain`` (overlays + JSON for images) and ``lumos explain-eval`` (metrics CSV + report)."""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lumos.cli.common import add_run_options, parse_csv_list
from lumos.core.errors import LumosError
from lumos.core.validation import check_nonneg_int

if TYPE_CHECKING:
    from lumos.explain.evaluation import Batch

SETTINGS = ("before_pool", "last_conv")


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="torchvision:NAME, timm:NAME (random init + --weights) or builtin:cnn / builtin:vit")
    p.add_argument("--weights", default=None, help="weights file (.safetensors, or a state dict for torch.load)")
    p.add_argument("--num-classes", type=int, default=None, help="number of classes of --weights (default: arch's)")
    p.add_argument("--target-layer", default="before_pool",
                   help="dotted layer name(s), comma-separated, or a setting: before_pool (default) or last_conv")
    from lumos.explain.targets import TARGETS

    p.add_argument("--target", default="rest", choices=tuple(TARGETS),
                   help="utility explained, for every method (default: rest, the paper's protocol)")
    g = p.add_argument_group(
        "preprocessing", "each image: shorter side resized to --resize, centre crop --crop × --crop, scaled to [0, 1], "
        "then (x − mean) / std per channel. Defaults: hub models ImageNet's (resize 256, crop 224, mean "
        "0.485,0.456,0.406, std 0.229,0.224,0.225); built-in models their training size and statistics, no resize")
    g.add_argument("--crop", "--image-size", dest="image_size", type=int, default=None, metavar="N",
                   help="side of the square model input (default: 224 for hub models, the built-in model's size)")
    g.add_argument("--resize", default=None, metavar="N|none",
                   help="shorter side before the centre crop (default: crop·256/224 for hub models); "
                        "'none' resizes straight to crop × crop")
    g.add_argument("--mean", default=None, metavar="M[,M,M]", help="per-channel mean (1 or 3 comma-separated values)")
    g.add_argument("--std", default=None, metavar="S[,S,S]", help="per-channel std (1 or 3 positive values)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--cache", default=None, help="where built-in models are cached (default: <run>/cache)")
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)


def register(sub: argparse._SubParsersAction) -> None:
    from lumos.explain import METHODS

    p = sub.add_parser("explain", help="CAM overlays (PNG) and a JSON summary for image files")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, folders (searched recursively) or quoted glob patterns ('imgs/**/*.jpg')")
    p.add_argument("--method", default="shapleycam", help="method(s), comma-separated: " + ", ".join(METHODS))
    p.add_argument("--class", dest="class_index", type=int, default=None,
                   help="class to explain (default: each image's predicted class)")
    _model_options(p)
    add_run_options(p)
    p.set_defaults(func=run_explain)

    q = sub.add_parser("explain-eval", help="faithfulness metrics of CAM methods over a dataset (CSV + report)")
    q.add_argument("--data", required=True, help="an image folder (class sub-directories or flat) or 'builtin'")
    q.add_argument("--methods", default="gradcam,hirescam,shapleycam",
                   help="comma-separated methods (default gradcam,hirescam,shapleycam); 'all' for every one")
    q.add_argument("--limit", type=int, default=None, help="evaluate at most N images (builtin default 256)")
    q.add_argument("--auc-steps", type=int, default=0, help="deletion/insertion AUC steps (0: skip)")
    q.add_argument("--examples", type=int, default=6, help="images shown with overlays in the report (0: none)")
    _model_options(q)
    add_run_options(q)
    q.set_defaults(func=run_eval)


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    from lumos.core.validation import check_positive_int

    for n in names:
        v = getattr(args, n, None)
        if v is not None:
            check_positive_int(v, "--" + n.replace("_", "-"))
    if getattr(args, "num_classes", None) is not None:
        check_positive_int(args.num_classes, "--num-classes")
    if getattr(args, "class_index", None) is not None:
        check_nonneg_int(args.class_index, "--class")
    for n in ("auc_steps", "examples"):
        if getattr(args, n, None) is not None:
            check_nonneg_int(getattr(args, n), "--" + n.replace("_", "-"))
    if getattr(args, "weights", None) is not None and not Path(args.weights).is_file():
        raise LumosError(f"--weights {args.weights}: file not found. Check the path.")


def _floats(text: str, flag: str, positive: bool) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        vals = ()
    if len(vals) not in (1, 3) or not all(math.isfinite(v) and (v > 0 or not positive) for v in vals):
        kind = "positive numbers" if positive else "finite numbers"
        raise LumosError(f"{flag} {text!r}: expected 1 or 3 comma-separated {kind}, e.g. {flag} 0.5,0.5,0.5.")
    return vals * 3 if len(vals) == 1 else vals


def _check_preprocessing(args: argparse.Namespace) -> None:
    """Parse --resize / --mean / --std in place (before any run directory exists)."""
    if args.resize is not None:
        if str(args.resize).strip().lower() == "none":
            args.resize = "none"
        else:
            try:
                args.resize = int(args.resize)
            except ValueError:
                raise LumosError(f"--resize {args.resize!r}: expected a positive integer or 'none'.") from None
            from lumos.core.validation import check_positive_int

            check_positive_int(args.resize, "--resize")
    if args.mean is not None:
        args.mean = _floats(args.mean, "--mean", positive=False)
    if args.std is not None:
        args.std = _floats(args.std, "--std", positive=True)


def _apply_preprocessing(args: argparse.Namespace, bundle: Any) -> dict[str, Any]:
    """Override the model's default preprocessing with the flags given; returns what is used."""
    if args.image_size is not None:
        if bundle.resize is not None and args.resize is None:  # keep ImageNet's 256/224 ratio for the new crop
            bundle.resize = round(args.image_size * 256 / 224)
        bundle.image_size = args.image_size
    if args.resize is not None:
        bundle.resize = None if args.resize == "none" else args.resize
    if args.mean is not None:
        bundle.mean = args.mean
    if args.std is not None:
        bundle.std = args.std
    return {"resize": bundle.resize, "crop": bundle.image_size, "mean": list(bundle.mean), "std": list(bundle.std)}


@contextlib.contextmanager
def _run_dir(command: str, args: argparse.Namespace) -> Iterator[Any]:
    """A run directory that a failed run does not leave behind (so the rerun is not refused): what this run
    created is removed when it fails; a directory that existed (empty) before is emptied, not removed."""
    import shutil

    from lumos.core.rundir import RunDir

    existed = args.out is not None and Path(args.out).is_dir()
    run = RunDir.create(command, vars(args) | {"func": None}, out=args.out, seed=args.seed)
    try:
        with run:
            yield run
    except BaseException:
        if existed:
            for child in run.path.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def _bundle(args: argparse.Namespace, run: Any) -> Any:
    import sys
    import warnings

    from lumos.vision.zoo import load_model

    cache = args.cache or (run.path / "cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bundle = load_model(args.model, args.weights, num_classes=args.num_classes, cache_dir=cache,
                            quick=args.quick, seed=args.seed, image_size=args.image_size or 224)
    for w in caught:
        print(f"lumos: note: {w.message}", file=sys.stderr)
    return bundle


def _layers(bundle: Any, spec: str) -> list[str]:
    names = parse_csv_list(spec, what="layer")
    out = []
    for n in names:
        if n in SETTINGS:
            if n not in bundle.target_layers:
                raise LumosError(f"No default '{n}' layer is known for {bundle.spec}; pass --target-layer NAME.")
            out.append(bundle.target_layers[n])
        else:
            out.append(n)
    return out


def _methods(spec: str) -> list[str]:
    from lumos.explain import METHODS

    if spec.strip().lower() == "all":
        return list(METHODS)
    return parse_csv_list(spec, METHODS, what="method")


def run_explain(args: argparse.Namespace) -> int:
    import torch

    from lumos.core.io import atomic_write_bytes, atomic_write_json, save_tensors
    from lumos.core.progress import track
    from lumos.data.images import expand_images, load_image, preprocess
    from lumos.explain.runner import explain_inputs
    from lumos.explain.visualize import overlay, png_bytes

    _check_positive(args, "batch_size", "image_size")
    _check_preprocessing(args)
    methods = _methods(args.method)
    files = expand_images(args.images)
    # fail before any work on a missing or undecodable file (decoded again below, one at a time: holding every
    # full-size image between the two passes would cost far more memory than a second decode)
    for f in track(files, "checking images"):
        load_image(f)
    with _run_dir("explain", args) as run:
        bundle = _bundle(args, run)
        prep = _apply_preprocessing(args, bundle)
        layers = _layers(bundle, args.target_layer)
        loaded = [preprocess(load_image(f), bundle.image_size, bundle.resize, bundle.mean, bundle.std)
                  for f in track(files, "loading images")]
        raw = torch.stack([r for _, r in loaded])
        found = explain_inputs(bundle.model, layers, torch.stack([n for n, _ in loaded]), methods,
                               target=args.target, classes=args.class_index, batch_size=args.batch_size)
        results: list[dict[str, Any]] = []
        section = run.report.section("Explanations")
        section.text(f"model {bundle.spec}, layers {', '.join(layers)}, target {args.target}, preprocessing "
                     + ", ".join(f"{k} {v}" for k, v in prep.items()))
        for name, e in found.items():
            for j, f in enumerate(files):
                png = png_bytes(overlay(raw[j], e.cams[j]))
                out = atomic_write_bytes(run.path / "overlays" / f"{j:03d}_{f.stem}_{name}.png", png)
                c, p = int(e.classes[j]), float(e.probabilities[j])
                label = bundle.classes[c] if bundle.classes else None
                results.append({"image": str(f), "method": name, "layers": layers, "target": args.target,
                                "class": c, "class_name": label, "probability": p,
                                "overlay": str(out.relative_to(run.path))})
                section.image(png, caption=f"{f.name} · {name} · class {label or c} (p={p:.3f})", width=160)
        save_tensors(run.path / "cams.safetensors", {name: e.cams for name, e in found.items()})
        atomic_write_json(run.path / "explanations.json", {"model": bundle.spec, "preprocessing": prep,
                                                           "results": results})
        for r in results:
            run.log(r)
    for j, f in enumerate(files):  # the class choice, made once for every method
        e = next(iter(found.values()))
        c = int(e.classes[j])
        name = f" ({bundle.classes[c]})" if bundle.classes else ""
        print(f"{f.name}: class {c}{name}, p={float(e.probabilities[j]):.3f}")
    print(f"wrote {len(results)} overlays and {run.path / 'explanations.json'}")
    return 0


def _eval_batches(args: argparse.Namespace, bundle: Any) -> tuple[Iterable[Batch], Any, int]:
    import torch

    from lumos.data.images import ImageFolder

    if args.data == "builtin":
        from lumos.data.synthetic import SyntheticShapes

        n = args.limit or (32 if args.quick else 256)
        size = bundle.image_size
        offset = 10**6  # far from any training indices
        ds = SyntheticShapes(n, size, seed=args.seed, offset=offset, mean=tuple(bundle.mean), std=tuple(bundle.std))
        x = ds.normalized()
        batches = [(x[i:i + args.batch_size], ds.boxes[i:i + args.batch_size]) for i in range(0, n, args.batch_size)]
        return batches, ds.images, n
    folder = ImageFolder(args.data, bundle.image_size, bundle.resize, bundle.mean, bundle.std)
    n = min(len(folder), args.limit or len(folder))

    def gen():
        for i in range(0, n, args.batch_size):
            yield torch.stack([folder[j][0] for j in range(i, min(n, i + args.batch_size))]), None

    k = min(n, args.examples)
    raw = torch.stack([folder.raw(j) for j in range(k)]) if k else None
    return gen(), raw, n


def run_eval(args: argparse.Namespace) -> int:
    from lumos.core.io import atomic_write_text
    from lumos.explain.evaluation import EvalConfig, evaluate_methods
    from lumos.explain.visualize import overlay_grid

    _check_positive(args, "batch_size", "image_size", "limit")
    _check_preprocessing(args)
    if args.data == "builtin" and args.resize is not None:
        raise LumosError("--resize applies to image folders; the built-in shapes are drawn at --image-size. Drop "
                         "--resize, or pass --data FOLDER.")
    methods = _methods(args.methods)
    if args.data != "builtin":
        from lumos.data.images import list_images

        list_images(args.data)  # a missing or empty folder fails before the run directory exists
    with _run_dir("explain-eval", args) as run:
        bundle = _bundle(args, run)
        _apply_preprocessing(args, bundle)
        layers = _layers(bundle, args.target_layer)
        batches, raw, n = _eval_batches(args, bundle)
        cfg = EvalConfig(methods=methods, target=args.target, auc_steps=args.auc_steps, keep_examples=args.examples)
        total = (n + args.batch_size - 1) // args.batch_size
        rows, examples = evaluate_methods(bundle.model, layers, batches, cfg, total=total)
        for r in rows:
            run.log({"model": bundle.spec, "layers": ",".join(layers), **r})
        cols = list(rows[0])
        csv = ",".join(cols) + "\n" + "\n".join(",".join(_fmt(r.get(c)) for c in cols) for r in rows) + "\n"
        atomic_write_text(run.path / "metrics.csv", csv)
        sec = run.report.section("Faithfulness")
        sec.text(f"{bundle.spec} · layers {', '.join(layers)} · target {args.target} · {n} images ({args.data}). "
                 "AD/Com lower is better; Coh, ADCC, IC, ADD, insertion AUC and pointing games higher is better.")
        sec.table([{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows])
        if examples and raw is not None:
            k = min(raw.shape[0], *(v.shape[0] for v in examples.values()))
            fig = overlay_grid(raw[:k], {m: v[:k] for m, v in examples.items()})
            run.save_figure(fig, "examples")
            sec.figure(fig, caption="Example overlays (explained class: the prediction).")
    _print_table(rows)
    print(f"metrics: {run.path / 'metrics.csv'}  report: {run.path / 'report.html'}")
    return 0


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    print("  ".join(f"{c:>12}" for c in cols))
    for r in rows:
        print("  ".join(f"{(f'{r[c]:.4f}' if isinstance(r[c], float) else str(r[c])):>12}" for c in cols))
