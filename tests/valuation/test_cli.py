"""``lumos value`` end to end on a small CSV and on builtin data; errors exit 2 with one line."""

import json

import numpy as np

from lumos.cli.main import main


def test_value_csv_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    X = rng.normal(size=(120, 4)) + 2 * np.eye(3, 4)[y]
    lines = ["f1,f2,f3,f4,target"] + [",".join(f"{v:.5f}" for v in row) + f",{c}" for row, c in zip(X, y)]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    status = main(["value", str(tmp_path / "d.csv"), "--label-col", "target", "--noise", "0.1",
                   "--methods", "chg,knn,loss,random", "--epochs", "3", "--out", str(out)])
    assert status == 0
    header = (out / "values.csv").read_text().splitlines()[0]
    assert header == "index,label,original_label,noisy,chg,knn,loss,random"
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["chg", "knn", "loss", "random"]
    assert all(0 <= r["auc"] <= 1 for r in rows)
    assert (out / "plots" / "removal_curves.png").exists() and (out / "report.html").exists()
    assert "CHG" in (out / "report.html").read_text() or "chg" in (out / "report.html").read_text()
    assert "AUC" in capsys.readouterr().out


def test_value_builtin_and_errors(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["value", "builtin:wine", "--noise", "0.2", "--methods", "chg,random", "--epochs", "2",
                 "--no-removal", "--out", str(out)]) == 0
    assert len((out / "values.csv").read_text().splitlines()) == 1 + int(round(0.6 * 178))
    assert main(["value", "builtin:wine", "--methods", "chg,magic", "--out", str(tmp_path / "x")]) == 2
    assert "registered valuers" in capsys.readouterr().err
    assert main(["value", str(tmp_path / "none.csv"), "--out", str(tmp_path / "y")]) == 2
    assert main(["value", "builtin:wine", "--noise", "1.5", "--out", str(tmp_path / "z")]) == 2
