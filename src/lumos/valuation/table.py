"""Users' tables as they come: CSV / NPZ files read with each row's identity, then encoded for valuation.

Reading (:func:`read_table`) keeps every data row's identity: ``rows`` (its 0-based position among the file's
data rows, header and blank lines not counted: the index ``pandas.read_csv`` gives it), its file line for
messages, and the ``id_col`` value when one is named. Encoding (:class:`TableEncoder`, fitted on training
rows only, then applied to any rows) turns the feature columns into a float matrix:

- a column whose every present cell is a number stays numeric; a column whose every present cell is text, or
  one named in ``categorical``, is one-hot encoded (categories of the training rows, sorted; a category seen
  only outside them encodes as all zeros); a column that mixes numbers and text is an error naming the cell;
- missing cells (empty, ``NA``, ``N/A``, ``NaN``, ``null``, ``None``; NaN in an NPZ) are imputed with the
  training rows' ``mean`` or ``median`` (the most frequent category for a text column), or ``drop`` removes
  the rows that have any (:func:`drop_missing`); ``inf`` is never a value.

Every choice made is returned as one sentence in ``notes``, so a command prints it once.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lumos.core.env import env_int
from lumos.core.errors import LumosError, bad_param, one_line

__all__ = ["MISSING", "IMPUTE", "MAX_DATA_BYTES", "Table", "read_table", "drop_missing", "TableEncoder",
           "encode_table_labels"]

#: Cell texts read as a missing value (compared lower-case, stripped): pandas' usual ones.
MISSING = frozenset({"", "na", "n/a", "nan", "-nan", "null", "none", "<na>", "#n/a"})
#: ``--impute`` choices.
IMPUTE = ("mean", "median", "drop")
#: Largest data file read (bytes); override with LUMOS_MAX_DATA_BYTES.
MAX_DATA_BYTES = 2 * 1024**3


@dataclass
class Table:
    """A table as read, one entry per data row in file order (N rows).

    Attributes:
        path: the file.  columns: feature column name → (N,) cells (str for CSV, float64 with NaN = missing
            for NPZ).  labels: (N,) label cells (str; '' or a MISSING text = missing).  rows: (N,) int64 0-based
            data-row numbers.  lines: (N,) int64 1-based file lines (CSV; rows + 1 for NPZ).
        ids: (N,) str values of ``id_col`` or None.  id_col: its name.  label_col: the label column's name.
    """

    path: str
    columns: dict[str, np.ndarray]
    labels: np.ndarray
    rows: np.ndarray
    lines: np.ndarray
    ids: np.ndarray | None
    id_col: str | None
    label_col: str

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, idx: np.ndarray) -> Table:
        """The rows at positions ``idx`` (identity kept)."""
        return replace(self, columns={k: v[idx] for k, v in self.columns.items()}, labels=self.labels[idx],
                       rows=self.rows[idx], lines=self.lines[idx], ids=None if self.ids is None else self.ids[idx])

    def where(self, row: int) -> str:
        """'FILE line L' (CSV) or 'FILE row R' (NPZ) of position ``row``, for messages."""
        kind = "line" if self.path.endswith(".csv") else "row"
        return f"{self.path} {kind} {int(self.lines[row] if kind == 'line' else self.rows[row])}"


def _missing(cells: np.ndarray) -> np.ndarray:
    """(N,) bool: which cells are missing (MISSING texts, or NaN in a float column)."""
    if cells.dtype.kind == "f":
        return np.isnan(cells)
    return np.array([c.strip().lower() in MISSING for c in cells.tolist()], dtype=bool)


def _check_size(p: Path, label_col: str, option: str) -> None:
    if not p.is_file():
        what = "an existing .csv or .npz file" + (" (or builtin:NAME)" if option == "data" else "")
        raise bad_param(option, what, str(p), owner="lumos value")
    cap = env_int("LUMOS_MAX_DATA_BYTES", MAX_DATA_BYTES, low=1)
    size = p.stat().st_size
    if size == 0:
        raise LumosError(f"{p} is empty. Pass a CSV with a header row or an NPZ with arrays X and {label_col!r}.")
    if size > cap:
        raise LumosError(f"{p} is {size} bytes, above the cap of {cap}. Subsample it, or raise LUMOS_MAX_DATA_BYTES.")


def read_table(path: str | Path, label_col: str = "y", *, id_col: str | None = None,
               drop_cols: Sequence[str] = (), categorical: Sequence[str] = (), option: str = "data") -> Table:
    """Read ``DATA.csv`` (a header row; any columns) or ``DATA.npz`` (arrays ``X`` (N, D), ``label_col`` and
    optionally ``id_col``, read without pickle). ``drop_cols`` are ignored; ``id_col`` is kept as identity, not
    a feature; ``categorical`` must name feature columns (checked here, used by :class:`TableEncoder`).
    ``option``: how messages name the file's argument (``data``, ``--val-data``).

    Every problem is one :class:`LumosError` naming the file (and line): not UTF-8, ragged rows, unknown
    column names, an empty file, a non-zip or pickled NPZ, mismatched lengths, a file above the size cap."""
    p = Path(path)
    _check_size(p, label_col, option)
    if p.suffix == ".csv":
        table = _read_csv(p, label_col, id_col, list(drop_cols))
    elif p.suffix == ".npz":
        if drop_cols or categorical:
            raise LumosError(f"{p}: --drop-cols and --categorical name CSV columns; an NPZ's X has none. Select "
                             "the columns of X before saving it.")
        table = _read_npz(p, label_col, id_col)
    else:
        raise bad_param(option, "a .csv or .npz file", p.suffix or str(p), owner="lumos value")
    unknown = [c for c in categorical if c not in table.columns]
    if unknown:
        raise bad_param("--categorical", "feature columns of the file", ", ".join(unknown), owner="lumos value",
                        fix=f"Feature columns: {', '.join(list(table.columns)[:20])}.")
    if not table.columns:
        raise LumosError(f"{p}: no feature column is left (label {label_col!r}, id and dropped columns removed).")
    return table


def _read_csv(p: Path, label_col: str, id_col: str | None, drop_cols: list[str]) -> Table:
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            body = [(reader.line_num, r) for r in reader if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as exc:
        raise LumosError(f"{p} is not UTF-8 text (byte {exc.start}: {exc.reason}); re-save it as UTF-8 "
                         "(e.g. iconv -f latin1 -t utf-8).") from None
    except csv.Error as exc:
        raise LumosError(f"{p} is not a valid CSV file ({one_line(exc, 120)}).") from None
    if header is None or not body:
        raise LumosError(f"{p}: expected a header row and at least one data row.")
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise LumosError(f"{p}: the header repeats column(s) {', '.join(map(repr, dupes))}; give each column one name.")
    for opt, names in (("--label-col", [label_col]), ("--id-col", [id_col] if id_col else []), ("--drop-cols", drop_cols)):
        missing = [n for n in names if n not in header]
        if missing:
            raise bad_param(opt, "a column of the CSV header", ", ".join(missing), owner="lumos value",
                            fix=f"Columns: {', '.join(header[:20])}.")
    roles = [label_col] + ([id_col] if id_col else []) + drop_cols
    if len(set(roles)) != len(roles):
        raise LumosError(f"{p}: a column is named twice among --label-col, --id-col and --drop-cols "
                         f"({', '.join(roles)}); give each column one role.")
    for line, r in body:
        if len(r) != len(header):
            raise LumosError(f"{p}: line {line} has {len(r)} fields but the header has {len(header)}; every row needs "
                             "one value per column.")
    cells = np.array([r for _, r in body], dtype=str).reshape(len(body), len(header))
    col = {h: cells[:, j] for j, h in enumerate(header)}
    features = {h: np.char.strip(col[h]) for h in header if h not in roles}
    n = len(body)
    return Table(str(p), features, np.char.strip(col[label_col]), np.arange(n, dtype=np.int64),
                 np.array([ln for ln, _ in body], dtype=np.int64), col[id_col] if id_col else None, id_col, label_col)


def _read_npz(p: Path, label_col: str, id_col: str | None) -> Table:
    import zipfile

    try:
        z = np.load(p, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise LumosError(f"{p} is not a valid .npz file ({type(exc).__name__}). Save it with numpy.savez.") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise LumosError(f"{p} holds a single array, not an .npz archive of arrays X and {label_col!r}.")
    with z:
        need = ["X", label_col] + ([id_col] if id_col else [])
        absent = [k for k in need if k not in z.files]
        if absent:
            raise LumosError(f"{p}: expected arrays {', '.join(map(repr, need))}; {', '.join(map(repr, absent))} "
                             f"missing (found {', '.join(z.files) or 'none'}).")
        try:
            X_raw, raw = z["X"], np.asarray(z[label_col])
            ids = np.asarray(z[id_col]).astype(str) if id_col else None
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise LumosError(f"{p}: an array holds Python objects ({one_line(exc, 120)}); save plain numeric arrays "
                             "(no dtype=object).") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise LumosError(f"{p} is a damaged .npz file ({type(exc).__name__}).") from None
    if X_raw.dtype.kind not in "biuf":
        raise LumosError(f"{p}: X must be numeric, got dtype {X_raw.dtype}. Encode features as numbers.")
    if X_raw.ndim != 2 or X_raw.shape[0] == 0 or X_raw.shape[1] == 0:
        raise LumosError(f"{p}: X must be a non-empty 2-D array (points × features), got shape {X_raw.shape}.")
    if raw.dtype.kind not in "biufUS":
        raise LumosError(f"{p}: '{label_col}' must hold numbers or strings, got dtype {raw.dtype}.")
    n = X_raw.shape[0]
    for name, arr in ((label_col, raw), (id_col, ids)):
        if arr is not None and (arr.ndim != 1 or len(arr) != n):
            raise LumosError(f"{p}: {n} rows of X but {name!r} has shape {arr.shape}; give one value per row.")
    X = np.asarray(X_raw, dtype=np.float64)
    labels = np.array(["" if isinstance(v, float) and v != v else str(v) for v in raw.tolist()])
    rows = np.arange(n, dtype=np.int64)
    return Table(str(p), {f"X[:, {j}]": X[:, j] for j in range(X.shape[1])}, labels, rows, rows + 1, ids, id_col,
                 label_col)


def drop_missing(table: Table) -> tuple[Table, str | None]:
    """``--impute drop``: the rows without any missing feature or label, and a note naming the rows dropped."""
    bad = _missing(table.labels)
    for cells in table.columns.values():
        bad |= _missing(cells)
    if not bad.any():
        return table, None
    if bad.all():
        raise LumosError(f"{table.path}: every row has a missing value, so --impute drop leaves nothing; use "
                         "--impute mean or median, or --drop-cols for the emptiest columns.")
    dropped = table.rows[bad].tolist()
    shown = ", ".join(map(str, dropped[:10])) + (", ..." if len(dropped) > 10 else "")
    note = f"{table.path}: dropped {len(dropped)} row(s) with missing values (rows {shown}) (--impute drop)"
    return table.take(np.flatnonzero(~bad)), note


def _as_numbers(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values (N,) float64 with NaN where missing or not a number, is_text (N,) bool: present but not a number)."""
    if cells.dtype.kind == "f":
        return cells.astype(np.float64), np.zeros(len(cells), dtype=bool)
    miss = _missing(cells)
    out = np.full(len(cells), np.nan)
    text = np.zeros(len(cells), dtype=bool)
    for i, c in enumerate(cells.tolist()):
        if miss[i]:
            continue
        try:
            out[i] = float(c)
        except ValueError:
            text[i] = True
    return out, text


@dataclass
class _Column:
    name: str
    kind: str  # "numeric" | "categorical"
    fill: float | str  # what a missing cell becomes: the training mean/median, or the most frequent category
    categories: list[str]


class TableEncoder:
    """Feature columns of a :class:`Table` → (N, D) float64, learnt on training rows (:meth:`fit`), applied
    to any rows (:meth:`transform`).

    Args:
        impute: ``"mean"`` or ``"median"`` for numeric columns (text columns: the most frequent category), or
            ``"drop"`` (rows with missing values must already be gone: :func:`drop_missing`).
        categorical: columns to one-hot encode even though their cells are numbers (codes, zip codes).
    Attributes after fit: feature_names_ (D,) (``col`` or ``col=category``), notes_ (the encoding choices, one
        sentence each; :meth:`transform` adds the imputations of the rows it encodes).
    """

    def __init__(self, impute: str = "mean", categorical: Sequence[str] = ()) -> None:
        if impute not in IMPUTE:
            raise bad_param("--impute", "one of " + ", ".join(IMPUTE), impute, owner="lumos value")
        self.impute = impute
        self.categorical = tuple(categorical)

    def fit(self, table: Table) -> TableEncoder:
        """Decide each column's kind, imputed value and categories from ``table`` (the training rows)."""
        self.columns_: list[_Column] = []
        self.notes_: list[str] = []
        for name, cells in table.columns.items():
            nums, text = _as_numbers(cells)
            miss = _missing(cells)
            present = ~miss
            if name in self.categorical or (text[present].all() and present.any()):
                self.columns_.append(self._fit_categorical(table, name, cells, miss))
                continue
            if text.any():
                i = int(np.flatnonzero(text)[0])
                raise LumosError(f"{table.where(i)}, column {name!r}: {cells[i][:40]!r} is not a number, but the "
                                 f"column's other cells are; fix the cell, or pass --categorical {name} to one-hot "
                                 "encode the column as text.")
            self._check_finite(table, name, nums)
            if not present.any():
                raise LumosError(f"{table.path}: column {name!r} has no values in the training rows; drop it "
                                 f"with --drop-cols {name}.")
            fill = float(np.mean(nums[present]) if self.impute in ("mean", "drop") else np.median(nums[present]))
            self.columns_.append(_Column(name, "numeric", fill, []))
        self.feature_names_ = [c.name if c.kind == "numeric" else f"{c.name}={v}"
                               for c in self.columns_ for v in (c.categories or [None])]
        return self

    def _require_impute(self, table: Table, name: str, miss: np.ndarray) -> None:
        if self.impute == "drop":  # drop_missing was not applied to these rows
            raise LumosError(f"{table.where(int(np.flatnonzero(miss)[0]))}, column {name!r}: a missing value left "
                             "with --impute drop; drop the rows with lumos.valuation.table.drop_missing first.")

    def _fit_categorical(self, table: Table, name: str, cells: np.ndarray, miss: np.ndarray) -> _Column:
        present = cells[~miss].astype(str)
        cats, counts = np.unique(present, return_counts=True)
        why = "--categorical" if name in self.categorical else "text"
        shown = ", ".join(cats[:8].tolist()) + (", ..." if len(cats) > 8 else "")
        hint = ("; every value differs, so it identifies rows rather than describing them: pass it as --id-col "
                "or --drop-cols" if len(cats) == len(present) and len(cats) > 2 else "")
        self.notes_.append(f"column {name!r}: {why}, one-hot encoded into {len(cats)} column(s) ({shown}){hint}")
        if not len(cats):
            raise LumosError(f"{table.path}: column {name!r} has no values in the training rows; drop it "
                             f"with --drop-cols {name}.")
        fill = str(cats[int(np.argmax(counts))])
        return _Column(name, "categorical", fill, cats.tolist())

    @staticmethod
    def _check_finite(table: Table, name: str, nums: np.ndarray) -> None:
        inf = np.isinf(nums)
        if inf.any():
            i = int(np.flatnonzero(inf)[0])
            raise LumosError(f"{table.where(i)}, column {name!r}: {nums[i]} is not a finite number ({int(inf.sum())} "
                             "such cell(s)); replace it, or leave the cell empty to impute it.")

    def transform(self, table: Table) -> tuple[np.ndarray, list[str]]:
        """(X (N, D) float64, notes) for any rows with the fitted columns; the notes name each column's imputed
        cells (with the training statistic) and categories unseen in training (encoded as all zeros)."""
        if not hasattr(self, "columns_"):
            raise LumosError("TableEncoder is not fitted yet. Call fit(training_table) first.")
        absent = [c.name for c in self.columns_ if c.name not in table.columns]
        extra = [k for k in table.columns if k not in {c.name for c in self.columns_}]
        if absent or extra:
            raise LumosError(f"{table.path}: its feature columns differ from the training file's (missing: "
                             f"{', '.join(absent) or 'none'}; extra: {', '.join(extra) or 'none'}); give both files "
                             "the same columns.")
        blocks, notes = [], []
        for col in self.columns_:
            cells = table.columns[col.name]
            miss = _missing(cells)
            if miss.any():
                self._require_impute(table, col.name, miss)
                what = (f"the training {self.impute} {col.fill:.6g}" if col.kind == "numeric"
                        else f"the most frequent training category {col.fill!r}")
                notes.append(f"{table.path}: column {col.name!r}: {int(miss.sum())} missing cell(s) imputed with "
                             f"{what} (--impute {self.impute})")
            if col.kind == "numeric":
                nums, text = _as_numbers(cells)
                if text.any():
                    i = int(np.flatnonzero(text)[0])
                    raise LumosError(f"{table.where(i)}, column {col.name!r}: {cells[i][:40]!r} is not a number; "
                                     "the column is numeric in the training rows. Fix the cell, or pass "
                                     f"--categorical {col.name}.")
                self._check_finite(table, col.name, nums)
                blocks.append(np.where(miss, col.fill, nums)[:, None])
                continue
            vals = np.where(miss, col.fill, cells.astype(str))
            onehot = (vals[:, None] == np.array(col.categories)[None, :]).astype(np.float64)
            unseen = ~onehot.any(1)
            if unseen.any():
                shown = ", ".join(repr(v) for v in np.unique(vals[unseen])[:5].tolist())
                notes.append(f"{table.path}: column {col.name!r}: {int(unseen.sum())} cell(s) with a category not in "
                             f"the training rows ({shown}) encoded as all zeros")
            blocks.append(onehot)
        return np.hstack(blocks), notes


def encode_table_labels(table: Table, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The label cells of ``table`` as (codes (N,) int64, classes (K,) str). Classes sort as numbers when every
    label is one ("2" before "10"), else as text. With ``classes`` (the training file's), a label outside them
    is an error naming its line; a missing label is always an error (``--impute drop`` removes such rows)."""
    miss = _missing(table.labels)
    if miss.any():
        i = int(np.flatnonzero(miss)[0])
        raise LumosError(f"{table.where(i)}: no label in column {table.label_col!r} ({int(miss.sum())} such row(s)); "
                         "fill them, or pass --impute drop to drop rows with missing values.")
    labels = table.labels.astype(str)
    if classes is None:
        distinct = np.unique(labels)
        try:
            order = np.argsort([float(v) for v in distinct.tolist()], kind="stable")
        except ValueError:
            order = np.arange(len(distinct))
        classes = distinct[order]
    lookup = {c: k for k, c in enumerate(np.asarray(classes).tolist())}
    codes = np.empty(len(labels), dtype=np.int64)
    for i, v in enumerate(labels.tolist()):
        if v not in lookup:
            raise LumosError(f"{table.where(i)}: label {v!r} does not occur in the training file's labels "
                             f"({', '.join(list(lookup)[:10])}); every class needs training rows.")
        codes[i] = lookup[v]
    return codes, np.asarray(classes)
