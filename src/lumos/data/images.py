"""Loading user images: single files and ImageFolder-style directories, with the paper's preprocessing.

``ImageFolder(root)``: class sub-directories (``root/<class>/<img>``, labels by sorted class name) or a flat
directory of images (labels -1). Files whose extension is not an image type are ignored in directories;
explicitly named files must be images. Images that cannot be decoded are an error naming the file.
Preprocessing: resize the shorter side to ``resize`` and centre-crop ``size`` (ImageNet protocol 256 → 224),
or, with ``resize=None``, resize straight to ``size × size``; then scale to [0, 1] and normalise.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lumos.core.errors import LumosError, bad_param

__all__ = ["IMAGE_EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD", "load_image", "preprocess", "ImageFolder",
           "list_images", "expand_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Largest image decoded (width × height); larger files are refused before decoding (decompression bombs).
#: Override with the environment variable LUMOS_MAX_IMAGE_PIXELS.
MAX_IMAGE_PIXELS = 64_000_000


def max_image_pixels() -> int:
    """The decoding cap: ``LUMOS_MAX_IMAGE_PIXELS`` if set (an int ≥ 1), else :data:`MAX_IMAGE_PIXELS`."""
    from lumos.core.env import env_int

    return env_int("LUMOS_MAX_IMAGE_PIXELS", MAX_IMAGE_PIXELS, low=1)


def load_image(path: str | os.PathLike[str], channels: int = 3):  # -> PIL.Image.Image
    """Open an image file as RGB (channels=3) or grayscale (channels=1), with a clear error otherwise."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise LumosError(f"Image file not found: {p}. Check the path.")
    if channels not in (1, 3):
        raise bad_param("channels", "1 or 3", channels, owner="load_image")
    cap = max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > cap:
                    raise LumosError(f"{p} is {w}×{h} = {w * h} pixels, above the cap of {cap} (a decompression bomb "
                                     "or a very large image). Downscale it, or raise LUMOS_MAX_IMAGE_PIXELS.")
                if w < 1 or h < 1:
                    raise LumosError(f"{p} has no pixels ({w}×{h}).")
                im.load()
                return im.convert("RGB" if channels == 3 else "L")
    except LumosError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LumosError(f"{p} is too large to decode safely ({exc}). Downscale it.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise LumosError(f"{p} is not a readable image ({type(exc).__name__}). "
                         f"Pass image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...).") from None


def preprocess(image, size: int, resize: int | None = None, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """PIL image → (normalised (C, size, size), unnormalised (C, size, size) in [0, 1])."""
    from PIL import Image

    if resize is not None:
        w, h = image.size
        scale = resize / min(w, h)
        image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    else:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(image, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    if m.shape[0] != t.shape[0]:
        raise bad_param("mean", f"{t.shape[0]} values (one per channel)", list(mean), owner="preprocess")
    return (t - m) / s, t


def list_images(root: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``root`` (recursive, sorted); an error if there are none."""
    r = Path(root)
    if not r.is_dir():
        raise LumosError(f"Image folder not found: {r}. Pass a directory of images (or class sub-directories).")
    files = sorted(p for p in r.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise LumosError(f"No image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) under {r}.")
    return files


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def expand_images(specs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files named by ``specs``, in order, each once: a file as given, a directory's images (recursive,
    sorted, as :func:`list_images`), or a glob pattern's matches (``**`` recursive, sorted; directories it
    matches are searched, non-image files skipped). A path that does not exist, a directory without images or
    a pattern that matches no image is an error naming it."""
    import glob

    out: dict[Path, None] = {}
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = list_images(p)
        elif p.is_file():
            found = [p]
        elif _is_glob(str(spec)):
            found = []
            for m in sorted(glob.glob(str(spec), recursive=True)):
                q = Path(m)
                if q.is_dir():
                    found += [f for f in sorted(q.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
                elif q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS:
                    found.append(q)
            if not found:
                raise LumosError(f"No image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) match '{spec}'. "
                                 "Check the pattern (quote it so the shell does not expand it first).")
        else:
            raise LumosError(f"Image file or folder not found: {p}. Check the path.")
        out.update(dict.fromkeys(found))
    if not out:
        raise LumosError("No images given; pass image files, folders or glob patterns.")
    return list(out)


@dataclass
class ImageFolder(torch.utils.data.Dataset):
    """Images under ``root``; items are ``(normalised image, label, index)``; ``raw(i)`` gives the [0, 1] image."""

    root: str | os.PathLike[str]
    size: int = 224
    resize: int | None = 256
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    channels: int = 3
    files: list[Path] = field(init=False)
    classes: list[str] = field(init=False)
    labels: list[int] = field(init=False)

    def __post_init__(self) -> None:
        root = Path(self.root)
        self.files = list_images(root)
        subdirs = sorted({p.relative_to(root).parts[0] for p in self.files if len(p.relative_to(root).parts) > 1})
        self.classes = subdirs
        index = {c: i for i, c in enumerate(subdirs)}
        self.labels = [index.get(p.relative_to(root).parts[0], -1) if len(p.relative_to(root).parts) > 1 else -1
                       for p in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return preprocess(load_image(self.files[i], self.channels), self.size, self.resize, self.mean, self.std)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self._load(i)[0], self.labels[i], i

    def raw(self, i: int) -> torch.Tensor:
        """The preprocessed but unnormalised image (C, size, size) in [0, 1] (for overlays)."""
        return self._load(i)[1]
