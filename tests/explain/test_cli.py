import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lumos.cli.main import main


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs" / "a"
    d.mkdir(parents=True)
    for i in range(2):
        arr = np.random.default_rng(i).integers(0, 255, (40, 36, 3), dtype=np.uint8)
        Image.fromarray(arr).save(d / f"im{i}.png")
    return d


def test_explain_builtin_writes_overlays_and_json(tmp_path, images, capsys):
    out = tmp_path / "run"
    cache = tmp_path / "cache"
    rc = main(["explain", str(images / "im0.png"), str(images / "im1.png"), "--model", "builtin:cnn", "--quick",
               "--method", "shapleycam,gradcam", "--cache", str(cache), "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "explanations.json").read_text())["results"]
    assert len(res) == 4 and {r["method"] for r in res} == {"shapleycam", "gradcam"}
    for r in res:
        assert (out / r["overlay"]).is_file() and 0 <= r["probability"] <= 1
    assert (out / "report.html").is_file() and (out / "cams.safetensors").is_file()
    # explain-eval on the image folder, reusing the cached model
    rc = main(["explain-eval", "--data", str(images.parent), "--model", "builtin:cnn", "--quick", "--methods",
               "gradcam,shapleycam", "--cache", str(cache), "--out", str(tmp_path / "ev"), "--examples", "2"])
    assert rc == 0
    csv = (tmp_path / "ev" / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("method,ad,coh,com,adcc") and len(csv) == 3
    assert "metrics:" in capsys.readouterr().out


def test_explain_eval_builtin_data_has_pointing_game(tmp_path):
    rc = main(["explain-eval", "--data", "builtin", "--limit", "8", "--model", "builtin:cnn", "--quick", "--methods",
               "hirescam", "--target-layer", "last_conv", "--auc-steps", "2", "--cache", str(tmp_path / "c"),
               "--out", str(tmp_path / "ev")])
    assert rc == 0
    header = (tmp_path / "ev" / "metrics.csv").read_text().splitlines()[0]
    assert "energy_pg" in header and "deletion_auc" in header


@pytest.mark.parametrize("argv,msg", [
    (["explain", "NOTES", "--model", "builtin:cnn"], "not a readable image"),
    (["explain", "IMG", "--model", "torchvision:resnet18", "--target-layer", "layer5"], "no layer named 'layer5'"),
    (["explain", "IMG", "--model", "resnet18"], "torchvision:NAME"),
    (["explain", "IMG", "--model", "builtin:cnn", "--method", "eigencam"], "registered CAM methods"),
    (["explain-eval", "--data", "NOPE", "--model", "builtin:cnn", "--quick"], "not found"),
])
def test_cli_errors_one_line_exit_2(tmp_path, images, capsys, argv, msg):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    argv = [a.replace("NOTES", str(notes)).replace("IMG", str(images / "im0.png")).replace("NOPE", str(tmp_path / "x"))
            for a in argv]
    rc = main(argv + ["--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("lumos: error:")]
    assert rc == 2 and len(errors) == 1 and msg in errors[0], err
    assert all(line.startswith("lumos: ") for line in err.splitlines()), err  # no tracebacks or warning dumps


def _resnet(out, *extra):
    return ["--model", "torchvision:resnet18", "--num-classes", "3", "--crop", "32", "--method", "gradcam",
            "--out", str(out), *extra]


def test_explain_takes_folders_and_globs_and_states_its_preprocessing(tmp_path, images, capsys):
    pytest.importorskip("torchvision")
    (images.parent / "b").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(images.parent / "b" / "flat.jpg")
    (images.parent / "b" / "notes.txt").write_text("not an image, skipped in folders and globs")
    rc = main(["explain", str(images.parent), str(images / "*.png"), *_resnet(tmp_path / "r1"),
               "--resize", "none", "--mean", "0.5", "--std", "0.25,0.5,0.5"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "r1" / "explanations.json").read_text())
    assert sorted(Path(r["image"]).name for r in doc["results"]) == ["flat.jpg", "im0.png", "im1.png"]  # each once
    assert doc["preprocessing"] == {"resize": None, "crop": 32, "mean": [0.5] * 3, "std": [0.25, 0.5, 0.5]}
    rc = main(["explain", str(images / "*.png"), *_resnet(tmp_path / "r2")])  # hub default: ImageNet, 256/224 ratio
    doc = json.loads((tmp_path / "r2" / "explanations.json").read_text())
    assert rc == 0 and doc["preprocessing"]["resize"] == round(32 * 256 / 224) and doc["preprocessing"]["std"][0] == 0.229


def test_explain_help_documents_preprocessing(capsys):
    assert main(["explain", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for flag in ("--resize", "--crop", "--mean", "--std", "folders", "glob"):
        assert flag in out
    assert "0.485,0.456,0.406" in out and "resize 256, crop 224" in out


def test_failed_run_leaves_nothing_that_blocks_the_rerun(tmp_path, images, capsys):
    pytest.importorskip("torchvision")
    out = tmp_path / "run"
    rc = main(["explain", str(images), *_resnet(out, "--target-layer", "layer5")])  # fails after the run dir exists
    assert rc == 2 and "no layer named 'layer5'" in capsys.readouterr().err
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["explain", str(images), *_resnet(empty, "--target-layer", "layer5")]) == 2
    assert empty.is_dir() and not any(empty.iterdir())  # a directory the user made is kept, emptied
    old = os.umask(0o022)
    try:
        assert main(["explain", str(images), *_resnet(out, "--target-layer", "layer4")]) == 0  # no --overwrite needed
    finally:
        os.umask(old)
    modes = {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()}
    assert "cams.safetensors" in modes and set(modes.values()) == {"0o644"}, modes


def test_explain_eval_examples_0_writes_no_example_figure(tmp_path, images):
    pytest.importorskip("torchvision")
    rc = main(["explain-eval", "--data", str(images.parent), "--model", "torchvision:resnet18", "--num-classes", "3",
               "--crop", "32", "--methods", "gradcam", "--examples", "0", "--out", str(tmp_path / "ev")])
    assert rc == 0 and (tmp_path / "ev" / "metrics.csv").is_file()
    assert not (tmp_path / "ev" / "plots" / "examples.png").exists()


@pytest.mark.parametrize("argv,msg", [
    (["explain", "NOPE/*.png"], "No image files"),
    (["explain", "NOPE"], "Image file or folder not found"),
    (["explain", "IMG", "--resize", "big"], "--resize 'big'"),
    (["explain", "IMG", "--resize", "0"], "--resize"),
    (["explain", "IMG", "--mean", "0.5,0.5"], "--mean"),
    (["explain", "IMG", "--std", "0.2,0,0.2"], "positive"),
    (["explain", "IMG", "--std", "nan"], "--std"),
    (["explain", "IMG", "--crop", "0"], "--image-size"),
])
def test_preprocessing_and_input_errors(tmp_path, images, capsys, argv, msg):
    argv = [a.replace("IMG", str(images / "im0.png")).replace("NOPE", str(tmp_path / "nope")) for a in argv]
    rc = main(argv + ["--model", "builtin:cnn", "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and msg in err, err
    assert not (tmp_path / "r").exists()
