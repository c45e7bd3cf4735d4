"""Built-in synthetic image data with ground-truth object boxes: shapes and textures on cluttered backgrounds.

Each image holds one object whose class is its shape or texture (``CLASSES``); colour, size, position and
the background (smooth colour field + pixel noise + faint distractor strokes) vary. Every sample is a pure
function of ``(seed, index)`` (``numpy.random.default_rng([seed, index])``), so datasets are reproducible and
any subset can be regenerated. Boxes are ``x0, y0, x1, y1`` in pixels with exclusive ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lumos.core.validation import check_int, check_positive_int

__all__ = ["CLASSES", "SyntheticShapes", "make_sample", "synthetic_splits"]

CLASSES = ("circle", "square", "triangle", "cross", "stripes", "checker")


def _shape_mask(cls: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, rng) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    if cls == "circle":
        return dy**2 + dx**2 <= r**2
    if cls == "triangle":  # upward triangle inscribed in the box
        return (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
    if cls == "cross":
        arm = max(r / 3, 1.0)
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    return (np.abs(dy) <= r) & (np.abs(dx) <= r)  # square, stripes, checker patches


def _texture(cls: str, yy: np.ndarray, xx: np.ndarray, rng) -> np.ndarray:
    period = int(rng.integers(3, 6))
    if cls == "stripes":
        return ((xx + yy) // period) % 2 == 0 if rng.random() < 0.5 else (xx // period) % 2 == 0
    if cls == "checker":
        return ((xx // period) + (yy // period)) % 2 == 0
    return np.ones_like(xx, dtype=bool)


def make_sample(seed: int, index: int, size: int = 32) -> tuple[np.ndarray, int, np.ndarray]:
    """One image (3, size, size) float32 in [0, 1], its class, and its box (4,) int — deterministic."""
    rng = np.random.default_rng([int(seed), int(index)])
    label = int(rng.integers(len(CLASSES)))
    cls = CLASSES[label]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    # Background: a smooth random colour gradient, pixel noise and a few faint distractor strokes.
    c0, c1 = rng.uniform(0.15, 0.6, 3), rng.uniform(0.15, 0.6, 3)
    t = (np.cos(rng.uniform(0, np.pi)) * xx + np.sin(rng.uniform(0, np.pi)) * yy) / size
    img = c0[:, None, None] * (1 - t) + c1[:, None, None] * t + rng.normal(0, 0.06, (3, size, size))
    for _ in range(int(rng.integers(1, 4))):
        y0, x0 = rng.integers(0, size, 2)
        horizontal = rng.random() < 0.5
        length = int(rng.integers(size // 6, size // 3))
        sl = (slice(y0, y0 + 1), slice(x0, x0 + length)) if horizontal else (slice(y0, y0 + length), slice(x0, x0 + 1))
        img[:, sl[0], sl[1]] += rng.uniform(-0.2, 0.2)
    # Object.
    r = rng.uniform(0.16, 0.28) * size
    cy, cx = rng.uniform(r + 1, size - r - 1, 2)
    mask = _shape_mask(cls, yy, xx, cy, cx, r, rng)
    colour = rng.uniform(0.55, 1.0, 3) * (rng.random(3) < 0.8) + 0.05
    fill = _texture(cls, yy, xx, rng)
    dark = colour * 0.25
    obj = np.where(fill[None], colour[:, None, None], dark[:, None, None])
    img = np.where(mask[None], obj, img)
    ys, xs = np.nonzero(mask)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.int64)
    return np.clip(img, 0, 1).astype(np.float32), label, box


def _rgb(values: torch.Tensor) -> tuple[float, float, float]:
    """The three per-channel statistics of a (3,) tensor as a tuple of floats."""
    r, g, b = (float(v) for v in values)
    return r, g, b


@dataclass
class SyntheticShapes(torch.utils.data.Dataset):
    """``n`` synthetic images of side ``size`` from ``seed`` (indices ``offset .. offset + n − 1``).

    Attributes (after construction): ``images`` (n, 3, size, size) in [0, 1], ``labels`` (n,), ``boxes``
    (n, 4). Items are ``(normalised image, label, box)`` with the per-channel ``mean``/``std`` given (or of
    these images when None); removed pixels in the faithfulness metrics therefore take the mean colour.
    """

    n: int = 1000
    size: int = 32
    seed: int = 0
    offset: int = 0
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.n, "n", owner="SyntheticShapes")
        check_int(self.size, "size", 16, owner="SyntheticShapes")
        samples = [make_sample(self.seed, self.offset + i, self.size) for i in range(self.n)]
        self.images = torch.from_numpy(np.stack([s[0] for s in samples]))
        self.labels = torch.tensor([s[1] for s in samples], dtype=torch.long)
        self.boxes = torch.from_numpy(np.stack([s[2] for s in samples]))
        if self.mean is None:
            self.mean = _rgb(self.images.mean(dim=(0, 2, 3)))
        if self.std is None:
            self.std = _rgb(self.images.std(dim=(0, 2, 3)))

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES

    def normalized(self) -> torch.Tensor:
        """All images normalised with ``mean``/``std``: (n, 3, size, size)."""
        m = torch.tensor(self.mean).view(1, 3, 1, 1)
        s = torch.tensor(self.std).view(1, 3, 1, 1)
        return (self.images - m) / s

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        m = torch.tensor(self.mean).view(3, 1, 1)
        s = torch.tensor(self.std).view(3, 1, 1)
        return (self.images[i] - m) / s, int(self.labels[i]), self.boxes[i]


def synthetic_splits(n_train: int, n_test: int, size: int = 32, seed: int = 0) -> tuple[SyntheticShapes, SyntheticShapes]:
    """Disjoint train / test sets (test indices follow the train ones); the test set uses the train statistics."""
    train = SyntheticShapes(n_train, size, seed)
    test = SyntheticShapes(n_test, size, seed, offset=n_train, mean=train.mean, std=train.std)
    return train, test
