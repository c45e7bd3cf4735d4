import numpy as np
import pytest
import torch
from PIL import Image

from lumos.core.errors import LumosError
from lumos.data.images import ImageFolder, load_image, preprocess


def _save(path, size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)


def test_image_folder_with_classes(tmp_path):
    _save(tmp_path / "cat" / "a.png")
    _save(tmp_path / "dog" / "b.jpg", mode="L")  # grayscale converts to RGB
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    ds = ImageFolder(tmp_path, size=24, resize=28)
    assert ds.classes == ["cat", "dog"] and ds.labels == [0, 1] and len(ds) == 2
    x, label, idx = ds[1]
    assert x.shape == (3, 24, 24) and label == 1 and idx == 1
    assert float(ds.raw(0).min()) >= 0 and float(ds.raw(0).max()) <= 1


def test_preprocess_resize_crop_and_normalise(tmp_path):
    _save(tmp_path / "a.png", size=(50, 20))
    img = load_image(tmp_path / "a.png")
    norm, raw = preprocess(img, 16, resize=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert raw.shape == (3, 16, 16) and torch.allclose(norm, (raw - 0.5) / 0.5)


def test_clear_errors(tmp_path):
    bad = tmp_path / "fake.png"
    bad.write_text("not an image")
    with pytest.raises(LumosError, match="not a readable image"):
        load_image(bad)
    with pytest.raises(LumosError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    with pytest.raises(LumosError, match="No image files"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(LumosError, match="not found"):
        ImageFolder(tmp_path / "nope")


def test_expand_images_files_folders_globs(tmp_path):

    from lumos.data.images import expand_images

    (tmp_path / "a" / "deep").mkdir(parents=True)
    for rel in ("a/x.png", "a/deep/y.jpg", "z.png"):
        Image.new("RGB", (3, 3)).save(tmp_path / rel)
    (tmp_path / "a" / "notes.txt").write_text("skipped")
    got = expand_images([tmp_path / "z.png", tmp_path / "a", str(tmp_path / "**" / "*.png")])
    assert [p.relative_to(tmp_path).as_posix() for p in got] == ["z.png", "a/deep/y.jpg", "a/x.png"]  # order, once
    with pytest.raises(LumosError, match="match"):
        expand_images([str(tmp_path / "*.gif")])
    with pytest.raises(LumosError, match="not found"):
        expand_images([tmp_path / "missing.png"])
    with pytest.raises(LumosError, match="No image files"):
        expand_images([tmp_path / "a" / "deep" / ".."] + [str(tmp_path / "a" / "*.txt")])
