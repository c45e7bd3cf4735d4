"""The CHG paper's selection experiment at small scale: accuracy versus data fraction for CHG and the CORDS
baselines in their paper configurations (AdaptiveRandom; GradMatch-PB with λ = 0 and selection batches equal to
the training batch; GLISTER per sample with stochastic greedy), a class-stratified random control (CHG's
class-proportional budgets, random within each class), in three settings, with full-data training as reference.

Protocol (CHG paper §7.2 of the reference, scaled down; see :class:`SelectionStudyConfig` for the sizes):
- data: ``shapes`` — the built-in synthetic images (6 classes) with the built-in small CNN; ``digits`` —
  scikit-learn's digits (10 classes) with a one-hidden-layer MLP. A clean, balanced test split is held out;
  the setting (``clean``, ``noise30``: 30 % relabelled uniformly at random, ``imbalance``: int(0.3·K)
  classes cut to 10 % of the smallest class) is applied to the rest, and 10 % of it is split off as the
  validation set (GLISTER's guide), as CORDS does.
- training: SGD (momentum 0.9, Nesterov, weight decay 5e-4), cosine schedule, batch ``batch_size``; every
  ``select_every`` epochs the selector re-selects at the current parameters (default 30 epochs, every 2: 15
  selections, the paper's 300 / 20); the loss is weighted by the
  selector's sample weights, normalised per mini-batch (GradMatch's OMP weights; 1 otherwise).
- metric: test accuracy after the last epoch; wall time of the whole run (selection included) and of the
  selection alone, both measured in-process on this machine.

:func:`run_selection_study` writes one ``metrics.jsonl`` row per run into a run directory, then the summary
table (mean ± sd over seeds), one plot per setting and ``report.html``. ``lumos select-study`` is its CLI.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from lumos.core.validation import (
    NONNEG,
    NONNEG_INT,
    POSITIVE,
    POSITIVE_INT,
    Boolean,
    Constraint,
    InstanceOf,
    Problems,
    Satisfies,
    check_choice,
    constraint,
    is_real,
)
from lumos.studies.rl_study_stats import markdown_table, paired_bootstrap
from lumos.valuation.evaluation import SETTINGS, make_setting
from lumos.valuation.selection_baselines import SELECTORS, make_selector, selection_weights

__all__ = ["STUDY_DATASETS", "SelectionStudyConfig", "StudyData", "load_study_data", "train_with_selector",
           "run_selection_study", "summarize", "paired_table", "paper_table", "setting_figure", "write_study_report",
           "demo_selection"]

STUDY_DATASETS = ("shapes", "digits")
_FRACTIONS = Satisfies(lambda v: len(v) > 0 and all(is_real(f) and 0 < float(f) < 1 for f in v),
                       "a non-empty list of fractions in (0, 1)")


def _among(allowed: Any) -> Satisfies:
    return Satisfies(lambda v: not isinstance(v, str) and len(v) > 0 and all(x in allowed for x in v),
                     "a non-empty list from " + ", ".join(allowed))


def _f(default: Any, *accepted: Constraint | None, help: str | None = None) -> Any:
    return field(default=default, metadata=constraint(*accepted, help=help))


METHOD_LABELS = {"full": "Full data", **{n: SELECTORS.entry(n).meta["label"] for n in SELECTORS}}


@dataclass
class SelectionStudyConfig:
    """Sizes and schedule of the study; use :meth:`quick` for the seconds-long smoke size. The baselines run in
    the CHG paper's configurations: GradMatch-PB with ``gradmatch_lam`` = 0 and selection batches of
    ``select_batch_size`` = None (= ``batch_size``), GLISTER per sample with stochastic greedy, and
    ``epochs / select_every`` = 15 selections (the paper's 300 / 20)."""

    datasets: tuple[str, ...] = _f(STUDY_DATASETS, _among(STUDY_DATASETS))
    settings: tuple[str, ...] = _f(SETTINGS, _among(SETTINGS))
    methods: tuple[str, ...] = _f(("chg", "random", "stratified", "gradmatch", "glister"), _among(SELECTORS))
    fractions: tuple[float, ...] = _f((0.05, 0.1, 0.3, 0.5), _FRACTIONS)
    seeds: int = _f(5, POSITIVE_INT)
    first_seed: int = _f(0, NONNEG_INT, help="seeds first_seed .. first_seed + seeds − 1 (split a grid across "
                         "processes by seed)")
    full: bool = _f(True, Boolean(), help="also train on all the data (the reference)")
    epochs: int = _f(30, POSITIVE_INT)
    select_every: int = _f(2, POSITIVE_INT, help="re-select every R epochs (30 / 2: the paper's 15 selections)")
    batch_size: int = _f(32, POSITIVE_INT)
    select_batch_size: int | None = _f(None, POSITIVE_INT, None, help="the fixed batches of GradMatch-PB / "
                                       "GLISTER-PB (None: batch_size, the paper's configs)")
    gradmatch_lam: float = _f(0.0, NONNEG, help="GradMatch's ridge λ (the paper's configs: 0)")
    lr: float = _f(0.05, POSITIVE)
    n_images: int = _f(2200, POSITIVE_INT, help="shapes: images before the test split (train + validation)")
    n_test_images: int = _f(1000, POSITIVE_INT)
    image_size: int = _f(32, POSITIVE_INT)
    cnn_width: int = _f(8, POSITIVE_INT)
    mlp_hidden: int = _f(64, POSITIVE_INT)
    extra: dict[str, Any] = field(default_factory=dict, metadata=constraint(InstanceOf(dict)))

    def __post_init__(self) -> None:
        p = Problems("SelectionStudyConfig")
        p.fields(self)
        p.raise_if_any()

    @classmethod
    def quick(cls, **overrides: Any) -> SelectionStudyConfig:
        """The CI smoke size: one seed, two fractions, two epochs, 240 images."""
        base = {"fractions": (0.1, 0.3), "seeds": 1, "epochs": 2, "select_every": 1, "n_images": 240,
                "n_test_images": 60, "cnn_width": 4, "mlp_hidden": 16}
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StudyData:
    """Tensors of one (dataset, setting, seed): train / validation (setting applied) and a clean test split."""

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    relabelled: torch.Tensor | None = None  # (n_train,) bool: label changed by the noise setting (None otherwise)


_IMAGE_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _raw(name: str, cfg: SelectionStudyConfig) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        from lumos.valuation.data import load_builtin

        return load_builtin("digits")
    key = (cfg.n_images + cfg.n_test_images, cfg.image_size)
    if key not in _IMAGE_CACHE:  # the images are a pure function of (seed 0, index): generate once
        from lumos.data.synthetic import SyntheticShapes

        ds = SyntheticShapes(key[0], cfg.image_size, seed=0)
        _IMAGE_CACHE[key] = ds.images.numpy(), ds.labels.numpy().astype(np.int64)
    return _IMAGE_CACHE[key]


def load_study_data(name: str, setting: str, seed: int, cfg: SelectionStudyConfig) -> StudyData:
    """Split ``name`` into a clean test set and a pool, apply ``setting`` to the pool (seeded), split 10 % of
    the pool off as validation, and standardise with training statistics (per feature / per channel)."""
    check_choice(name, "dataset", STUDY_DATASETS, owner="load_study_data")
    X, y = _raw(name, cfg)
    rng = np.random.default_rng([seed, 17])
    perm = rng.permutation(len(y))
    n_test = int(0.3 * len(y)) if name == "digits" else cfg.n_test_images
    test, pool = perm[:n_test], perm[n_test:]
    Xp, yp = make_setting(X[pool], y[pool], setting, seed=seed)
    order = rng.permutation(len(yp))
    n_val = max(1, int(0.1 * len(yp)))
    va, tr = order[:n_val], order[n_val:]
    axes = (0,) if X.ndim == 2 else (0, 2, 3)
    mu = Xp[tr].mean(axis=axes, keepdims=True)
    sd = Xp[tr].std(axis=axes, keepdims=True)
    sd = np.where(sd > 1e-12, sd, 1.0)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((a - mu) / sd, dtype=torch.float32)

    k = int(y.max()) + 1
    relabelled = torch.as_tensor(yp[tr] != y[pool][tr]) if setting == "noise30" else None  # same rows, new labels
    return StudyData(name, t(Xp[tr]), torch.as_tensor(yp[tr]), t(Xp[va]), torch.as_tensor(yp[va]), t(X[test]),
                     torch.as_tensor(y[test]), k, relabelled)


def _build_model(data: StudyData, cfg: SelectionStudyConfig, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if data.name == "shapes":
        from lumos.vision.models import SmallCNN, VisionConfig

        return SmallCNN(VisionConfig(num_classes=data.n_classes, image_size=cfg.image_size, width=cfg.cnn_width))
    from lumos.valuation.models import build_classifier

    return build_classifier("mlp", data.X_train.shape[1], data.n_classes, hidden=cfg.mlp_hidden, seed=seed)


def _accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(X[i:i + 512]).argmax(1) for i in range(0, len(X), 512)])
    return float((pred == y).float().mean())


def train_with_selector(data: StudyData, method: str, fraction: float, seed: int, cfg: SelectionStudyConfig) -> dict:
    """Train one model with ``method`` (a :data:`SELECTORS` name, or ``"full"``) keeping ``fraction`` of the
    training data; returns accuracy, wall and CPU seconds, selection seconds, the number of selections and, in the
    noise setting, ``relabelled_share``: the mean share of relabelled points in the selected subsets."""
    model = _build_model(data, cfg, seed)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    X, y, n = data.X_train, data.y_train, len(data.y_train)
    sel = None
    if method != "full":
        sel = make_selector(method, TensorDataset(X, y), fraction=fraction, select_every=cfg.select_every,
                            seed=seed, val_dataset=TensorDataset(data.X_val, data.y_val),
                            batch_size=cfg.select_batch_size or cfg.batch_size, eta=cfg.lr, lam=cfg.gradmatch_lam)
    gen = torch.Generator().manual_seed(seed)
    t0, c0, t_sel, weights, shares = time.perf_counter(), time.process_time(), 0.0, None, []
    for epoch in range(cfg.epochs):
        if sel is None:
            order = torch.randperm(n, generator=gen)
        else:
            ts = time.perf_counter()
            if sel.step(model, epoch) or weights is None:
                weights = torch.as_tensor(selection_weights(sel, n), dtype=torch.float32)
                if data.relabelled is not None:
                    shares.append(float(data.relabelled[torch.as_tensor(sel.indices_)].float().mean()))
            t_sel += time.perf_counter() - ts
            order = torch.as_tensor(list(sel), dtype=torch.int64)
        model.train()
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            losses = F.cross_entropy(model(X[idx]), y[idx], reduction="none")
            if weights is None:
                loss = losses.mean()
            else:  # CORDS: Σ w_i ℓ_i / Σ w_i per mini-batch
                w = weights[idx]
                loss = (w * losses).sum() / w.sum().clamp_min(1e-12)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"accuracy": round(_accuracy(model, data.X_test, data.y_test), 4), "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "select_seconds": round(t_sel, 3), "n_selections": 0 if sel is None else sel.n_selections_,
            "n_train": n, "relabelled_share": None if not shares else round(float(np.mean(shares)), 4)}


def _key(row: dict) -> tuple:
    return row["dataset"], row["setting"], row["method"], float(row["fraction"]), int(row["seed"])


def run_selection_study(cfg: SelectionStudyConfig, log: Callable[[dict], None] | None = None,
                        done: list[dict] | None = None, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Run the grid; ``log(row)`` is called after every run (rows: dataset, setting, method, fraction, seed,
    accuracy, seconds, select_seconds, n_selections, n_train). Runs whose key is in ``done`` (rows of an
    earlier, interrupted study) are skipped and their rows reused."""
    rows = list(done or [])
    have = {_key(r) for r in rows}
    plan = [("full", 1.0)] if cfg.full else []
    plan += [(m, f) for f in cfg.fractions for m in cfg.methods]
    for name in cfg.datasets:
        for setting in cfg.settings:
            for seed in range(cfg.first_seed, cfg.first_seed + cfg.seeds):
                data = None
                for method, fraction in plan:
                    meta = {"dataset": name, "setting": setting, "method": method, "fraction": fraction, "seed": seed}
                    if _key(meta) in have:
                        continue
                    data = data or load_study_data(name, setting, seed, cfg)
                    row = {**meta, **train_with_selector(data, method, fraction, seed, cfg)}
                    rows.append(row)
                    if log is not None:
                        log(row)
                    if progress is not None:
                        progress(f"{name:6s} {setting:9s} seed {seed} {method:9s} {fraction:4.2f}: "
                                 f"acc {row['accuracy']:.4f}  {row['seconds']:.1f} s")
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean ± sd (ddof=1; 0 for one seed) of accuracy and mean seconds per (dataset, setting, method, fraction)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["setting"], r["method"], float(r["fraction"]))].append(r)
    out = []
    for (d, s, m, f), rs in groups.items():
        acc = np.array([r["accuracy"] for r in rs], dtype=np.float64)
        out.append({"dataset": d, "setting": s, "method": m, "fraction": f, "n_seeds": len(rs),
                    "acc_mean": round(float(acc.mean()), 4), "acc_sd": round(float(acc.std(ddof=1)) if len(rs) > 1 else 0.0, 4),
                    "seconds": round(float(np.mean([r["seconds"] for r in rs])), 2),
                    "select_seconds": round(float(np.mean([r["select_seconds"] for r in rs])), 2),
                    "cpu_seconds": round(float(np.mean([r.get("cpu_seconds", np.nan) for r in rs])), 2),
                    "relabelled_share": _mean_or_none([r.get("relabelled_share") for r in rs])})
    return out


def paired_table(rows: list[dict], ref: str = "chg", n_boot: int = 2000) -> list[dict]:
    """``ref`` minus every other method, per (dataset, setting, fraction), paired by seed (same data split, same
    initialisation): the mean difference in accuracy points with a bootstrap 95 % interval over seeds and a verdict
    (an interval containing 0 is a tie)."""
    acc: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in rows:
        acc[(r["dataset"], r["setting"], r["method"], float(r["fraction"]))][int(r["seed"])] = float(r["accuracy"])
    out = []
    for (d, s, m, f), by_seed in sorted(acc.items()):
        if m != ref:
            continue
        for (d2, s2, m2, f2), other in sorted(acc.items()):
            if (d2, s2, f2) != (d, s, f) or m2 == ref:
                continue
            seeds = sorted(set(by_seed) & set(other))
            diffs = [100 * (by_seed[k] - other[k]) for k in seeds]
            if not diffs:
                continue
            mean, lo, hi = paired_bootstrap(diffs, n_boot, seed=0)
            verdict = ("one seed" if np.isnan(lo) else f"{METHOD_LABELS[ref]} higher" if lo > 0
                       else f"{METHOD_LABELS[m2]} higher" if hi < 0 else "tie")
            out.append({"dataset": d, "setting": s, "fraction": f, "pair": f"{METHOD_LABELS[ref]} − {METHOD_LABELS[m2]}",
                        "seeds": len(diffs), "Δ acc (points)": f"{mean:+.1f}",
                        "95% CI": "" if np.isnan(lo) else f"[{lo:+.1f}, {hi:+.1f}]", "verdict": verdict})
    return out


def _mean_or_none(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def paper_table(summary: list[dict], dataset: str, value: str = "acc") -> list[dict]:
    """Rows = methods, columns = setting × fraction, cells ``mean ± sd`` accuracy in % (``value="acc"``) or
    mean wall seconds (``value="seconds"``), process CPU seconds (``"cpu_seconds"``, robust to other load on the
    machine) or the % of relabelled points in the selected subsets (``"relabelled_share"``, noise setting) — the
    layout of the paper's tables."""
    cells = {(r["setting"], r["method"], r["fraction"]): r for r in summary if r["dataset"] == dataset}
    settings = [s for s in SETTINGS if any(k[0] == s for k in cells)]
    fractions = sorted({k[2] for k in cells if k[1] != "full"})
    methods = [m for m in METHOD_LABELS if any(k[1] == m for k in cells)]
    columns = [(s, f) for s in settings for f in (*fractions, 1.0)]
    table = []
    for m in methods:
        row: dict[str, Any] = {"method": METHOD_LABELS[m]}
        for s, f in columns:
            r = cells.get((s, m, f))
            row[f"{s} {100 * f:g}%"] = _cell(r, value)
        table.append(row)
    return table


def _cell(r: dict | None, value: str) -> str:
    if r is None:
        return ""
    if value == "acc":
        return f"{100 * r['acc_mean']:.1f} ± {100 * r['acc_sd']:.1f}"
    if value == "relabelled_share":
        return "" if r.get(value) is None else f"{100 * r[value]:.1f}"
    return f"{r[value]:.{2 if value == 'cpu_seconds' else 1}f}"


def setting_figure(summary: list[dict], setting: str) -> Any:
    """Test accuracy vs % of data kept for one setting, one panel per dataset; error bars = sd over seeds,
    the dashed line and band = full-data training."""
    import matplotlib.pyplot as plt

    datasets = [d for d in STUDY_DATASETS if any(r["dataset"] == d and r["setting"] == setting for r in summary)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        rs = [r for r in summary if r["dataset"] == d and r["setting"] == setting]
        for m in (k for k in METHOD_LABELS if k != "full"):
            mr = sorted((r for r in rs if r["method"] == m), key=lambda r: r["fraction"])
            if mr:
                ax.errorbar([100 * r["fraction"] for r in mr], [100 * r["acc_mean"] for r in mr],
                            yerr=[100 * r["acc_sd"] for r in mr], marker="o", ms=3, capsize=2, label=METHOD_LABELS[m])
        full = [r for r in rs if r["method"] == "full"]
        if full:
            mu, sd = 100 * full[0]["acc_mean"], 100 * full[0]["acc_sd"]
            ax.axhline(mu, color="k", ls="--", lw=1, label="Full data")
            ax.axhspan(mu - sd, mu + sd, color="k", alpha=0.08)
        ax.set_title(f"{d} — {setting}")
        ax.set_xlabel("% of training data selected")
        ax.set_xscale("log")
        ax.minorticks_off()
        ticks = sorted({100 * r["fraction"] for r in rs if r["method"] != "full"})
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_study_report(run: Any, cfg: SelectionStudyConfig, rows: list[dict]) -> list[dict]:
    """Summary, tables, one plot per setting and results.json / results.md into ``run`` (a core RunDir)."""
    from lumos.core.io import atomic_write_json, atomic_write_text

    summary = summarize(rows)
    atomic_write_json(run.path / "results.json", {"config": cfg.to_dict(), "summary": summary})
    md = []
    sec = run.report.section("Selection accuracy vs fraction")
    sec.text(f"Test accuracy (%) after {cfg.epochs} epochs, mean ± sd over {cfg.seeds} seeds; re-selection every "
             f"{cfg.select_every} epochs; per-batch methods use fixed batches of {cfg.select_batch_size or cfg.batch_size}"
             f"; GradMatch λ = {cfg.gradmatch_lam:g}; GLISTER per sample, stochastic greedy. "
             "Wall time includes selection. Measured by this run on this machine.")
    for d in cfg.datasets:
        acc, secs, cpu = (paper_table(summary, d, v) for v in ("acc", "seconds", "cpu_seconds"))
        sec.table(acc, caption=f"{d}: test accuracy (%)")
        sec.table(secs, caption=f"{d}: mean wall seconds per training run (selection included)")
        sec.table(cpu, caption=f"{d}: mean CPU seconds of the process per training run (nan: not recorded)")
        md += [f"### {d}: test accuracy (%)", "", *markdown_table(acc), "", f"### {d}: wall seconds per run", "",
               *markdown_table(secs), "", f"### {d}: CPU seconds per run", "", *markdown_table(cpu), ""]
        noisy = [r for r in summary if r["dataset"] == d and r.get("relabelled_share") is not None]
        if noisy:
            share = [{k: v for k, v in row.items() if k == "method" or k.startswith("noise30")}
                     for row in paper_table(noisy, d, "relabelled_share")]
            sec.table(share, caption=f"{d}: % of relabelled points in the selected subsets (mean over selections "
                                     "and seeds; the data has about 27 %)")
            md += [f"### {d}: % relabelled points among the selected (noise30)", "", *markdown_table(share), ""]
    pairs = paired_table(rows)
    if pairs:
        sec.table(pairs, caption="CHG minus each method, paired by seed (same split and initialisation); bootstrap "
                                 "95 % interval over seeds; an interval containing 0 is a tie.")
        md += ["### CHG − each method, paired by seed (accuracy points, bootstrap 95 % CI)", "", *markdown_table(pairs), ""]
    for s in cfg.settings:
        fig = setting_figure(summary, s)
        run.save_figure(fig, f"selection_{s}")
        sec.figure(fig, caption=f"Setting '{s}': accuracy vs fraction (log scale), sd over seeds as error bars.")
    atomic_write_text(run.path / "results.md", "\n".join(md) + "\n")
    return summary



def demo_selection(quick: bool, seed: int = 0) -> list[dict]:
    """The demo's quick version: digits with 30 % label noise, 10 % of the data, one seed, every method + full."""
    cfg = SelectionStudyConfig(datasets=("digits",), settings=("noise30",), fractions=(0.1,), seeds=1,
                               epochs=2 if quick else 20, select_every=1 if quick else 5,
                               mlp_hidden=16 if quick else 64)
    data = load_study_data("digits", "noise30", seed, cfg)
    out = []
    for method in ("full", *cfg.methods):
        r = train_with_selector(data, method, 1.0 if method == "full" else 0.1, seed, cfg)
        out.append({"method": METHOD_LABELS[method], "fraction": 1.0 if method == "full" else 0.1,
                    "accuracy": r["accuracy"], "seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"],
                    "select_seconds": r["select_seconds"]})
    return out
