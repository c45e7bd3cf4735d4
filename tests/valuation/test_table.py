"""Reading users' tables with each row's identity, and encoding them: one-hot text, imputation, clear errors."""

import numpy as np
import pytest

from lumos.core.errors import LumosError
from lumos.valuation.table import TableEncoder, drop_missing, encode_table_labels, read_table

CSV = """id,age,color,code,y
a1,30,red,7,cat

a2,,green,7,dog
a3,40,NA,9,cat
a4,50,red,9,eel
"""


def _write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_identity_blank_lines_and_roles(tmp_path):
    t = read_table(_write(tmp_path, CSV), "y", id_col="id", drop_cols=["code"])
    assert t.rows.tolist() == [0, 1, 2, 3]  # pandas.read_csv numbering: blank line skipped, header not counted
    assert t.lines.tolist() == [2, 4, 5, 6] and t.ids.tolist() == ["a1", "a2", "a3", "a4"]
    assert list(t.columns) == ["age", "color"] and t.labels.tolist() == ["cat", "dog", "cat", "eel"]
    sub = t.take(np.array([3, 1]))
    assert sub.rows.tolist() == [3, 1] and sub.ids.tolist() == ["a4", "a2"] and sub.where(0).endswith("line 6")


def test_one_hot_impute_mean_median_and_notes(tmp_path):
    t = read_table(_write(tmp_path, CSV), "y", id_col="id", categorical=["code"])
    for impute, fill in (("mean", 40.0), ("median", 40.0)):
        enc = TableEncoder(impute, categorical=["code"]).fit(t)
        X, notes = enc.transform(t)
        assert enc.feature_names_ == ["age", "color=green", "color=red", "code=7", "code=9"]
        # age: the missing cell gets the training statistic; color NA -> the most frequent category, red
        want = np.array([[30, 0, 1, 1, 0], [fill, 1, 0, 1, 0], [40, 0, 1, 0, 1], [50, 0, 1, 0, 1]], dtype=float)
        np.testing.assert_array_equal(X, want)
        assert any("'code': --categorical" in n for n in enc.notes_) and any("'color': text" in n for n in enc.notes_)
        assert any("'age': 1 missing" in n and impute in n for n in notes)
        assert any("'color': 1 missing" in n and "'red'" in n for n in notes)
    med = TableEncoder("median").fit(t.take(np.array([0, 2, 3])))  # training rows only: 30, 40, 50
    assert med.transform(t)[0][1, 0] == 40.0
    mean = TableEncoder("mean").fit(t.take(np.array([0, 3])))
    assert mean.transform(t)[0][1, 0] == 40.0  # (30 + 50) / 2, never a statistic of the rows being encoded


def test_unseen_category_is_zero_and_named(tmp_path):
    t = read_table(_write(tmp_path, CSV), "y", id_col="id")
    enc = TableEncoder().fit(t.take(np.array([0, 1])))
    X, notes = enc.transform(t)
    color = [enc.feature_names_.index("color=green"), enc.feature_names_.index("color=red")]
    assert X[:, color].sum(1).tolist() == [1, 1, 1, 1]  # the NA of row 2 is imputed (red), nothing unseen
    t2 = read_table(_write(tmp_path, CSV.replace("eel", "cat").replace("50,red", "50,blue")), "y", id_col="id")
    X2, notes2 = enc.transform(t2)
    assert X2[3, color].tolist() == [0, 0] and any("'blue'" in n and "all zeros" in n for n in notes2)


def test_drop_and_label_encoding(tmp_path):
    t = read_table(_write(tmp_path, CSV), "y", id_col="id")
    kept, note = drop_missing(t)
    assert kept.rows.tolist() == [0, 3] and "rows 1, 2" in note
    codes, classes = encode_table_labels(t)
    assert classes.tolist() == ["cat", "dog", "eel"] and codes.tolist() == [0, 1, 0, 2]
    num = read_table(_write(tmp_path, "a,y\n1,10\n2,2\n3,10\n", "n.csv"), "y")
    codes, classes = encode_table_labels(num)
    assert classes.tolist() == ["2", "10"] and codes.tolist() == [1, 0, 1]  # numbers sort as numbers
    other = read_table(_write(tmp_path, "a,y\n1,2\n2,3\n", "o.csv"), "y")
    with pytest.raises(LumosError, match=r"o.csv line 3: label '3' does not occur"):
        encode_table_labels(other, classes)
    with pytest.raises(LumosError, match=r"line 3: no label .*--impute drop"):
        encode_table_labels(read_table(_write(tmp_path, "a,y\n1,2\n2,\n", "m.csv"), "y"))
    with pytest.raises(LumosError, match="missing value left with --impute drop"):
        TableEncoder("drop").fit(t).transform(t)


@pytest.mark.parametrize("text,match", [
    ("a,y\n1,0\nhello,1\n", r"line 3, column 'a': 'hello' is not a number.*--categorical a"),
    ("a,y\n1,0\ninf,1\n", r"line 3, column 'a': inf is not a finite number"),
    ("a,y\n,0\nNA,1\n", r"column 'a' has no values .*--drop-cols a"),
])
def test_encoding_errors(tmp_path, text, match):
    t = read_table(_write(tmp_path, text), "y")
    with pytest.raises(LumosError, match=match):
        TableEncoder().fit(t)


@pytest.mark.parametrize("kwargs,match", [
    ({"id_col": "nope"}, r"'--id-col' .* Got nope"),
    ({"drop_cols": ["zz"]}, r"'--drop-cols' .* Got zz"),
    ({"categorical": ["zz"]}, r"'--categorical' .* Got zz"),
    ({"id_col": "y"}, "one role"),
    ({"drop_cols": ["id", "age", "color", "code"]}, "no feature column"),
])
def test_reading_errors(tmp_path, kwargs, match):
    with pytest.raises(LumosError, match=match):
        read_table(_write(tmp_path, CSV), "y", **kwargs)


def test_npz_identity_nan_is_missing(tmp_path):
    X = np.arange(12, dtype=float).reshape(4, 3)
    X[1, 2] = np.nan
    np.savez(tmp_path / "d.npz", X=X, label=np.array(["a", "b", "a", "b"]), key=np.array([10, 11, 12, 13]))
    t = read_table(tmp_path / "d.npz", "label", id_col="key")
    assert t.ids.tolist() == ["10", "11", "12", "13"] and t.rows.tolist() == [0, 1, 2, 3]
    Xe, notes = TableEncoder("median").fit(t).transform(t)
    assert Xe[1, 2] == np.median([2.0, 8.0, 11.0]) and len(notes) == 1
    with pytest.raises(LumosError, match="CSV columns"):
        read_table(tmp_path / "d.npz", "label", drop_cols=["x"])
    X[0, 0] = np.inf
    np.savez(tmp_path / "inf.npz", X=X, label=np.array(["a", "b", "a", "b"]))
    with pytest.raises(LumosError, match="row 0, column 'X\\[:, 0\\]': inf"):
        TableEncoder().fit(read_table(tmp_path / "inf.npz", "label"))
