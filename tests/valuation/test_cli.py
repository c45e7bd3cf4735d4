"""``lumos value`` end to end on a small CSV and on builtin data; errors exit 2 with one line."""

import csv
import json

import numpy as np
import pytest

from lumos.cli.main import main


def _strict_json(path):
    """results.json parsed with NaN/Infinity refused (they are not JSON)."""
    def refuse(name):
        raise AssertionError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _messy_csv(path, n, seed=0):
    """A table as users have it: an id column, a text column, empty cells, string labels; returns its rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        c = i % 3
        rows.append({"customer": f"C-{seed}-{i:03d}", "age": "" if i % 11 == 3 else f"{30 + 8 * c + rng.normal():.3f}",
                     "plan": ["basic", "pro", "max"][c] if i % 13 != 5 else "",
                     "spend": f"{rng.normal() + 2 * c:.3f}", "churn": ["stay", "leave", "pause"][c]})
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def _read_values(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


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
    assert header == "row,label,noisy_label,flipped,chg,knn,loss,random"
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


@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_values_join_back_to_the_users_rows(tmp_path, noise, capsys):
    """Without --val-data the training split is valued and every values.csv line names its source row: joined
    on `row` (and on the id), the labels are those of the CSV's rows, 100%."""
    src = _messy_csv(tmp_path / "d.csv", 75)
    out = tmp_path / "run"
    assert main(["value", str(tmp_path / "d.csv"), "--label-col", "churn", "--id-col", "customer", "--noise", str(noise),
                 "--methods", "chg,knn", "--epochs", "2", "--no-removal", "--out", str(out)]) == 0
    got = _read_values(out / "values.csv")
    assert len(got) == 45 and [int(r["row"]) for r in got] == sorted(int(r["row"]) for r in got)
    for r in got:
        assert src[int(r["row"])]["churn"] == r["label"] and src[int(r["row"])]["customer"] == r["customer"]
    printed = capsys.readouterr().out
    assert "45 training rows (valued), 11 validation and 19 test rows" in printed
    assert printed.count("one-hot encoded") == 1 and printed.count("'age'") == 1  # each choice printed once
    result = _strict_json(out / "results.json")
    if noise == 0:
        assert all(r["f1"] is None and r["auc"] is None for r in result["rows"])
        assert not result["detection"]["measured"] and "--noise 0" in result["detection"]["reason"]
        assert "F1" not in printed.split("not measured")[1] and "nan" not in printed
    else:
        assert all(0 <= r["auc"] <= 1 for r in result["rows"]) and result["detection"]["measured"]
        flipped = [r for r in got if r["flipped"] == "1"]
        assert len(flipped) == 9 and all(r["noisy_label"] != r["label"] for r in flipped)


def test_val_data_values_every_row(tmp_path):
    src = _messy_csv(tmp_path / "train.csv", 40)
    _messy_csv(tmp_path / "val.csv", 15, seed=1)
    out = tmp_path / "run"
    assert main(["value", str(tmp_path / "train.csv"), "--val-data", str(tmp_path / "val.csv"), "--label-col", "churn",
                 "--id-col", "customer", "--methods", "chg,knn,loss", "--epochs", "2", "--out", str(out)]) == 0
    got = _read_values(out / "values.csv")
    assert [int(r["row"]) for r in got] == list(range(40))
    assert [r["label"] for r in got] == [r["churn"] for r in src] and [r["customer"] for r in got] == [
        r["customer"] for r in src]
    values = np.array([[float(r[m]) for m in ("chg", "knn", "loss")] for r in got])
    assert np.isfinite(values).all()
    result = _strict_json(out / "results.json")
    assert result["data"]["n_valued"] == 40 and result["removal"]["evaluated_on"] == "the validation file"
    # --impute drop: the rows with an empty cell are not valued, and the others keep their numbers
    assert main(["value", str(tmp_path / "train.csv"), "--val-data", str(tmp_path / "val.csv"), "--label-col", "churn",
                 "--id-col", "customer", "--impute", "drop", "--methods", "knn", "--no-removal",
                 "--out", str(tmp_path / "drop")]) == 0
    kept = [int(r["row"]) for r in _read_values(tmp_path / "drop" / "values.csv")]
    assert kept == [i for i in range(40) if i % 11 != 3 and i % 13 != 5]
