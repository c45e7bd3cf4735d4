"""CHG Shapley benchmark: the first ``CHGValuation().fit`` in a fresh process, valuation overhead per training
epoch, noisy-label detection (digits, 1,000 points; Gaussian mixture, 10,000 points) against the baselines, and
selection accuracy versus fraction.

    python benchmarks/valuation.py [--quick] [--json PATH] [--threads N] [--tmc-max-time S] [--only-first-call]

All timings are measured side by side in this one run on this machine; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lumos.valuation import CHGTracker, CHGValuation
from lumos.valuation.data import gaussian_mixture, load_builtin, make_split
from lumos.valuation.evaluation import (
    compare_methods,
    inject_label_noise,
    make_setting,
    noisy_detection_auc,
    noisy_detection_f1,
    removal_curve,
    selection_accuracy,
)


def _train_epoch(model, opt, X, y, batch, gen, watcher=None):
    perm = torch.randperm(len(X), generator=gen)
    for s in range(0, len(X), batch):
        idx = perm[s:s + batch]
        logits = model(X[idx])
        if watcher is not None:
            watcher.record(logits, y[idx], idx)
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _gpu_setups(quick: bool) -> list[tuple[str, torch.Tensor, torch.Tensor, object]]:
    """ResNet-18 (torchvision, 10 classes) on CIFAR-sized synthetic images: the paper's selection setting."""
    import torchvision

    n = 1024 if quick else 10_000
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    X = torch.randn(n, 3, 32, 32, generator=g) + y[:, None, None, None] * 0.05
    return [(f"resnet18, {n} 3x32x32 images", X, y, lambda: torchvision.models.resnet18(num_classes=10))]


def _overhead_setups(quick: bool) -> list[tuple[str, torch.Tensor, torch.Tensor, object]]:
    """(name, X, y, model factory): a small MLP on a Gaussian mixture (the worst case: a cheap model) and a
    small CNN on 3×32×32 synthetic images (closer to the paper's ResNet setting)."""
    n, d, hidden, k = (2000, 20, 64, 10) if quick else (10_000, 20, 256, 10)
    Xg, yg = gaussian_mixture(n=n, n_features=d, n_classes=k, seed=0)

    def mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, k))

    n_img = 64 if quick else 2000
    g = torch.Generator().manual_seed(0)
    y_img = torch.randint(0, 10, (n_img,), generator=g)
    X_img = torch.randn(n_img, 3, 32, 32, generator=g) + y_img[:, None, None, None] * 0.1

    def cnn() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(64, 10))

    return [(f"mlp, {n} points", torch.as_tensor(Xg, dtype=torch.float32), torch.as_tensor(yg), mlp),
            (f"cnn, {n_img} 3x32x32 images", X_img, y_img, cnn)]


MODES = ("plain", "chg in-run (watch)", "chg extra pass (update)")


class _Run:
    """One training run (own model, optimizer, shuffling) in one mode; :meth:`epoch` returns its wall time."""

    def __init__(self, mode: str, X: torch.Tensor, y: torch.Tensor, factory, device: str = "cpu") -> None:  # noqa: ANN001
        torch.manual_seed(0)
        self.device = torch.device(device)
        self.mode, self.X, self.y = mode, X.to(self.device), y.to(self.device)
        X, y = self.X, self.y
        self.model = factory().to(self.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        self.gen = torch.Generator().manual_seed(0)
        self.val = CHGTracker(variant="full")
        self.loader = [(X[s:s + 512], y[s:s + 512], torch.arange(s, min(s + 512, len(X)), device=self.device))
                       for s in range(0, len(X), 512)]  # (x, y, idx): the tracker knows each batch's rows
        self.watcher = self.val.watch(self.model, n_samples=len(X)) if mode == MODES[1] else None
        if self.watcher is not None:
            self.watcher.__enter__()

    def epoch(self) -> float:
        t0 = time.perf_counter()
        if self.mode == MODES[2]:
            self.val.update(self.model, self.loader, n_samples=len(self.X))
        _train_epoch(self.model, self.opt, self.X, self.y, 128, self.gen, self.watcher)
        if self.watcher is not None:
            self.watcher.end_epoch()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.__exit__(None, None, None)


def overhead(quick: bool, device: str = "cpu") -> list[dict]:
    """Per-epoch wall time of plain training vs training with CHG valuation ("full" variant): in-run hook,
    and an extra no-grad pass at the epoch start. The three runs advance epoch by epoch in turn (so load
    drift on a shared machine hits all alike); the median epoch after a warm-up epoch is compared."""
    epochs = 1 if quick else 7
    rows = []
    setups = _gpu_setups(quick) if device.startswith("cuda") else _overhead_setups(quick)
    for name, X, y, factory in setups:
        runs = {m: _Run(m, X, y, factory, device) for m in MODES}
        times: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(epochs + 1):
            for m, r in runs.items():
                times[m].append(r.epoch())
        for r in runs.values():
            r.close()
        med = {m: statistics.median(ts[1:]) for m, ts in times.items()}
        for mode, t in med.items():
            rows.append({"section": "overhead", "device": device, "setup": name, "method": mode, "epoch_seconds": round(t, 4),
                         "overhead_pct": round(100 * (t / med["plain"] - 1), 1)})
    return rows


def device_check(device: str) -> list[dict]:
    """Values computed on ``device`` (extra-pass update) == the same model's values on the CPU. TF32 is
    switched off for the check (it changes float32 convolutions at ~1e-3 relative, before any CHG code)."""
    import torchvision

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(300, 3, 32, 32, generator=g), torch.randint(0, 10, (300,), generator=g)
    batches = [(X[s:s + 64], y[s:s + 64], torch.arange(s, min(s + 64, 300))) for s in range(0, 300, 64)]
    rows = []
    for variant in ("bias", "full"):
        cpu = CHGTracker(variant=variant).update(model, batches, n_samples=300)
        dev_model = model.to(device)
        dev = CHGTracker(variant=variant).update(dev_model, [(a.to(device), b.to(device), i.to(device)) for a, b, i in batches],
                                                 n_samples=300)
        model = dev_model.cpu()
        err = float(np.max(np.abs(dev - cpu)) / np.max(np.abs(cpu)))
        rows.append({"section": "device_check", "device": device, "variant": variant, "max_rel_err": err})
    return rows


def detection(name: str, split, methods: list[str], params: dict, seed: int, removal: bool) -> list[dict]:
    y_noisy, noisy = inject_label_noise(split.y_train, 0.1, split.n_classes, seed=seed)
    rows, values = compare_methods(methods, split.X_train, y_noisy, noisy, split.X_val, split.y_val, params)
    # the other CHG gradient variant, bias + weight (the paper's selection code), as an extra row
    full = CHGValuation(variant="full", seed=seed).fit(split.X_train, y_noisy)
    rows.insert(1, {"method": "chg (full)", "seconds": round(full.fit_time_, 4),
                    "f1": round(noisy_detection_f1(full.values_, noisy), 4),
                    "auc": round(noisy_detection_auc(full.values_, noisy), 4)})
    values["chg (full)"] = full.values_
    # the validation direction α (the paper allows it; the released configs use the training mean)
    valid = CHGValuation(alpha="valid", seed=seed).fit(split.X_train, y_noisy, split.X_val, split.y_val)
    rows.insert(2, {"method": "chg (valid α)", "seconds": round(valid.fit_time_, 4),
                    "f1": round(noisy_detection_f1(valid.values_, noisy), 4),
                    "auc": round(noisy_detection_auc(valid.values_, noisy), 4)})
    values["chg (valid α)"] = valid.values_
    for r in rows:
        r.update({"section": name, "n_train": len(y_noisy), "n_noisy": int(noisy.sum())})
    if removal:
        fr = [0.0, 0.1]  # the report shows accuracy after removing 10%
        for r in rows:
            v = values[r["method"]]
            lo = removal_curve(v, split.X_train, y_noisy, split.X_test, split.y_test, fr, highest_first=False)
            hi = removal_curve(v, split.X_train, y_noisy, split.X_test, split.y_test, fr, highest_first=True)
            r["acc_remove_low_10pct"] = round(lo[1], 4)
            r["acc_remove_high_10pct"] = round(hi[1], 4)
            r["acc_full"] = round(lo[0], 4)
    return rows


def selection(split, quick: bool, seed: int) -> list[dict]:
    """Static per-class selection (class-proportional top fraction) by CHG vs loss vs random values."""
    from lumos.valuation.baselines import LossValuer, RandomValuer

    fractions = [0.3] if quick else [0.05, 0.1, 0.3, 0.5, 0.7]
    rows = []
    for setting in ("clean", "noise30", "imbalance"):
        X, y = make_setting(split.X_train, split.y_train, setting, seed=seed)
        for name, valuer in (("chg", CHGValuation(per_class=True, seed=seed)), ("loss", LossValuer(seed=seed)),
                             ("random", RandomValuer(seed=seed))):
            v = valuer.fit(X, y).values_
            accs = selection_accuracy(v, X, y, split.X_test, split.y_test, fractions, seed=seed)
            rows.append({"section": "selection", "setting": setting, "method": name,
                         **{f"acc@{f}": round(a, 4) for f, a in zip(fractions, accs)}})
    return rows


_FIRST_CALL = r"""
import json, sys, time
import numpy as np
import torch
from lumos.valuation.data import load_builtin, make_split
X, y = load_builtin("digits")
split = make_split(X, y, 1000, 300, seed=0)
Xt, yt = split.X_train, split.y_train                      # digits-1000, loaded before any timing
from lumos.valuation import CHGValuation                   # (already imported with lumos.valuation.data)
t1 = time.perf_counter()
if sys.argv[1] == "torch-adam-first":                       # what a torch.optim optimizer costs first (reference)
    torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
t2 = time.perf_counter()
CHGValuation().fit(Xt, yt)
t3 = time.perf_counter()
CHGValuation().fit(Xt, yt)
t4 = time.perf_counter()
print(json.dumps({"extra_s": t2 - t1, "first_fit_s": t3 - t2, "warm_fit_s": t4 - t3}))
"""


def first_call(repeats: int = 3) -> list[dict]:
    """Cost of the first ``CHGValuation().fit`` (digits, 1,000 training points, defaults) in a fresh process,
    against a warm second call in the same process; median of ``repeats`` fresh subprocesses (imports and
    data loading happen before the clock starts; ``extra_s`` is the reference row's optimizer construction). The reference
    row first builds a ``torch.optim.Adam`` (which imports ``torch._dynamo``): the cost lumos's own Adam avoids."""
    import os
    import subprocess

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "LUMOS_PROGRESS": "0"}
    rows = []
    for mode in ("lumos", "torch-adam-first"):
        runs = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, "-c", _FIRST_CALL, mode], env=env, capture_output=True, text=True,
                                 check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        med = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        rows.append({"section": "first_call", "first_call": "CHGValuation().fit, digits-1000" if mode == "lumos"
                     else "same, after a first torch.optim.Adam (reference)", **med,
                     "first/warm": round(med["first_fit_s"] / max(med["warm_fit_s"], 1e-9), 1)})
    return rows


def _print(rows: list[dict]) -> None:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    print()


def _save(path: str | None, rows: list[dict]) -> int:
    """Write ``rows`` as JSON to ``path`` (when given); the exit status."""
    if path:
        Path(path).write_text(json.dumps(rows, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    ap.add_argument("--json", default=None, help="write all rows as JSON here")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: tiny models)")
    ap.add_argument("--tmc-max-time", type=float, default=None, help="TMC time cap (default 3 s quick, 300 s full)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="also measure the overhead on this device (e.g. cuda) with ResNet-18, "
                                                   "and check device values == CPU values")
    ap.add_argument("--only-overhead", action="store_true", help="run only the overhead section(s)")
    ap.add_argument("--only-first-call", action="store_true",
                    help="run only the first-call section (fresh subprocesses)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    q, seed = args.quick, args.seed
    tmc_cap = args.tmc_max_time if args.tmc_max_time is not None else (0.5 if q else 300.0)
    all_rows: list[dict] = []

    rows = first_call(2 if q else 5)
    _print(rows)
    all_rows += rows
    if args.only_first_call:
        return _save(args.json, all_rows)

    rows = overhead(q)
    if args.device:
        rows += overhead(q, args.device) + device_check(args.device)
    _print(rows)
    all_rows += rows
    if args.only_overhead:
        return _save(args.json, all_rows)

    X, y = load_builtin("digits")
    split = make_split(X, y, 200 if q else 1000, 100 if q else 300, seed=seed)
    methods = ["chg", "knn", "tmc", "oob", "loss", "el2n", "grand", "forgetting", "loo", "banzhaf", "random"]
    if q:
        methods = ["chg", "knn", "tmc", "oob", "loss", "el2n", "grand", "forgetting", "random"]
    params = {"tmc": {"max_time": tmc_cap, "seed": seed}, "oob": {"n_estimators": 10 if q else 200, "seed": seed},
              "banzhaf": {"n_samples": 500, "seed": seed}}
    rows = detection("digits", split, methods, params, seed, removal=True)
    chg_t = next(r["seconds"] for r in rows if r["method"] == "chg")
    for r in rows:
        r["time_vs_chg"] = round(r["seconds"] / chg_t, 1) if chg_t > 0 else None
    _print(rows)
    all_rows += rows

    Xg, yg = gaussian_mixture(n=1_000 if q else 14_000, n_features=20, n_classes=10, separation=3.0, seed=seed)
    gsplit = make_split(Xg, yg, 500 if q else 10_000, 200 if q else 1_000, seed=seed)
    gmethods = ["chg", "knn", "oob", "loss", "el2n", "grand", "forgetting", "random"]
    rows = detection("gaussian", gsplit, gmethods, {"oob": {"n_estimators": 5 if q else 50, "seed": seed}}, seed,
                     removal=False)
    _print(rows)
    all_rows += rows

    rows = selection(split, q, seed)
    _print(rows)
    all_rows += rows
    return _save(args.json, all_rows)


if __name__ == "__main__":
    sys.exit(main())
