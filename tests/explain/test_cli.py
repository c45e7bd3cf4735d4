import json

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
