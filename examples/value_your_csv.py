"""Value your own CSV, then select data by CHG value inside your own training loop.

Part 1 writes a CSV as users have them (an id column, a text column, a few empty cells, string labels, 8 % of the
labels wrong), runs `lumos value` on it and joins the values back to the CSV's rows by `row`/`id`.
Part 2 trains your own PyTorch classifier with `CHGSelector` as its DataLoader's sampler and values its training
points while it trains with `CHGTracker` (indices come with every batch, so a shuffled loader is safe).

Run: python examples/value_your_csv.py
"""

import csv
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lumos.cli.main import main as lumos
from lumos.valuation import CHGSelector, CHGTracker
from lumos.valuation.tracker import IndexedDataset


def write_csv(path: Path, n: int = 300, seed: int = 0) -> list[int]:
    """Two Gaussian classes ('cat', 'dog'), a colour column (text), gaps; returns the rows whose label was flipped."""
    rng = random.Random(seed)
    flipped = []
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "x1", "x2", "colour", "label"])
        for i in range(n):
            label = rng.choice(["cat", "dog"])
            mu = 1.5 if label == "dog" else -1.5
            x1, x2 = rng.gauss(mu, 1.0), rng.gauss(mu, 1.0)
            if rng.random() < 0.08:
                label, flipped = ("dog" if label == "cat" else "cat"), flipped + [i]
            cells = [f"a{i:04d}", f"{x1:.3f}", "" if i % 37 == 0 else f"{x2:.3f}", rng.choice(["red", "blue"]), label]
            w.writerow(cells)
    return flipped


def value_csv(work: Path) -> None:
    data, val = work / "animals.csv", work / "animals_val.csv"
    flipped = set(write_csv(data, seed=0))
    write_csv(val, n=120, seed=1)
    out = work / "run"
    status = lumos(["value", str(data), "--label-col", "label", "--id-col", "id", "--val-data", str(val),
                    "--methods", "chg,loss", "--out", str(out)])
    assert status == 0
    with (out / "values.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 300 and rows[0]["id"] == "a0000"        # every row of the file, keyed by row and id
    lowest = sorted(rows, key=lambda r: float(r["chg"]))[:30]
    hits = sum(int(r["row"]) in flipped for r in lowest)
    print(f"values.csv: {len(rows)} rows; {hits} of the 30 lowest-valued rows are among the {len(flipped)} wrong labels")


def select_in_your_loop(seed: int = 0) -> None:
    torch.manual_seed(seed)
    X = torch.randn(600, 10)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    y[:60] = 1 - y[:60]                                            # the first 60 labels are wrong
    train = IndexedDataset(TensorDataset(X, y))                   # yields (x, y, idx)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    selector = CHGSelector(train, fraction=0.5, select_every=2, seed=seed)
    loader = DataLoader(train, batch_size=64, sampler=selector)
    tracker = CHGTracker(variant="bias")
    for epoch in range(6):
        selector.step(model, epoch)                                # re-selects per class every 2 epochs
        with tracker.watch(model, n_samples=len(train)) as w:
            for xb, yb, idx in loader:
                logits = model(xb)
                w.record(logits, yb, idx)
                loss = nn.functional.cross_entropy(logits, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
    chosen = np.asarray(list(iter(selector)))
    print(f"selected {len(chosen)} of {len(train)}; wrong labels among them: {(chosen < 60).mean():.1%} "
          f"(10.0% in the data)")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        value_csv(Path(tmp))
    select_in_your_loop()
