"""RL prompt data: rows from JSONL / JSON / CSV / Parquet files or a saved Hugging Face ``datasets`` directory.

Each row is a dict. The prompt column (``prompt`` by default) holds text or a list of chat messages
(``[{"role": "user", "content": "..."}]``); every other column is passed to the reward functions by name, as
TRL does. Rows are checked when read, each problem one line naming the file and row:

- JSON(L) is strict: NaN/Infinity, duplicate keys and non-UTF-8 bytes are errors (``json`` accepts the first
  two silently);
- a prompt must be non-empty, valid Unicode (no lone surrogates) and at most ``LUMOS_MAX_PROMPT_CHARS``
  characters (default :data:`MAX_PROMPT_CHARS`; a 2 MB prompt would otherwise run for hours);
- CSV values are strings (Python's ``csv``); Parquet is read with ``pyarrow``; a directory written by
  ``Dataset.save_to_disk`` is opened with ``datasets.load_from_disk`` (a ``DatasetDict`` uses its ``train``
  split). Nothing is cached or written.

:func:`split_rows` makes the held-out evaluation set: a seeded fraction of the rows, never trained on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumos.core.env import env_int
from lumos.core.errors import LumosError, one_line
from lumos.models.tokenizer import is_chat_messages

__all__ = ["MAX_PROMPT_CHARS", "max_prompt_chars", "read_rows", "check_prompt", "split_rows", "DATA_SUFFIXES"]

#: default bound on a prompt's characters (all message contents together); override with LUMOS_MAX_PROMPT_CHARS
MAX_PROMPT_CHARS = 100_000
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def max_prompt_chars() -> int:
    """The prompt size bound: ``LUMOS_MAX_PROMPT_CHARS`` (a positive integer) or :data:`MAX_PROMPT_CHARS`."""
    return env_int("LUMOS_MAX_PROMPT_CHARS", MAX_PROMPT_CHARS, low=1, what="a positive integer (characters)")


def _check_text(text: str, where: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LumosError(f"{where}: {what} holds an unpaired surrogate (\\u{ord(text[exc.start]):04x}) at character "
                         f"{exc.start}, which is not valid Unicode text. Fix the data.") from None


def check_prompt(prompt: Any, where: str, limit: int | None = None) -> str | list[dict[str, str]]:
    """``prompt`` if it is a non-empty text or chat-message list within the size bound, else one clear error."""
    limit = max_prompt_chars() if limit is None else limit
    if isinstance(prompt, str):
        texts = [prompt]
        if not prompt.strip():
            raise LumosError(f"{where}: the prompt is empty. Every row needs a non-empty prompt.")
    elif is_chat_messages(prompt):
        extra = sorted({k for m in prompt for k in m} - {"role", "content"})
        if extra:
            raise LumosError(f"{where}: chat messages take 'role' and 'content' only; got also {', '.join(extra)}.")
        texts = [m["content"] for m in prompt] + [m["role"] for m in prompt]
    else:
        raise LumosError(f"{where}: the prompt must be text or a non-empty list of chat messages "
                         f"[{{\"role\": ..., \"content\": ...}}]; got {one_line(repr(prompt), 80)}.")
    size = sum(len(t) for t in texts)
    if size > limit:
        raise LumosError(f"{where}: the prompt has {size:,} characters, above the bound of {limit:,}. Shorten it, or "
                         "raise the bound with the environment variable LUMOS_MAX_PROMPT_CHARS.")
    for t in texts:
        _check_text(t, where, "the prompt")
    return prompt


# --------------------------------------------------------------------------------------------- file formats
def _strict_pairs(where: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise LumosError(f"{where}: the key {k!r} appears twice in one object. Keep one.")
            out[k] = v
        return out
    return hook


def _no_constant(where: str):
    def hook(name: str) -> Any:
        raise LumosError(f"{where}: {name} is not a JSON value (NaN and Infinity are not allowed). Use a number or "
                         "null.")
    return hook


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_strict_pairs(where), parse_constant=_no_constant(where))
    except json.JSONDecodeError as exc:
        raise LumosError(f"{where}: not valid JSON ({exc.msg}). Each line must be one JSON object.") from None
    except RecursionError:
        raise LumosError(f"{where}: JSON nested too deeply.") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")   # a byte-order mark is not part of the first column name
    except UnicodeDecodeError as exc:
        raise LumosError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}). Save it as UTF-8.") from None


def _jsonl_rows(path: Path, lines: list[int] | None = None) -> list[dict[str, Any]]:
    """The objects of a JSONL file; ``lines`` gets each one's line number (blank lines skipped)."""
    rows = []
    # lines end at "\n" only: str.splitlines would also split inside a JSON string holding U+2028 or a form feed
    for i, line in enumerate(_read_text(path).split("\n"), start=1):
        if line.strip():
            obj = _loads(line, f"{path}:{i}")
            if not isinstance(obj, dict):
                raise LumosError(f"{path}:{i}: expected a JSON object per line; got {type(obj).__name__}.")
            rows.append(obj)
            if lines is not None:
                lines.append(i)
    return rows


def _json_rows(path: Path) -> list[dict[str, Any]]:
    obj = _loads(_read_text(path), str(path))
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]      # {"data": [...]} as datasets' json loader accepts (field="data")
    if not isinstance(obj, list):
        raise LumosError(f"{path}: expected a JSON list of objects (or {{\"data\": [...]}}); got {type(obj).__name__}.")
    for i, row in enumerate(obj):
        if not isinstance(row, dict):
            raise LumosError(f"{path}: item {i} is a {type(row).__name__}, not an object.")
    return obj


def _csv_rows(path: Path, lines: list[int] | None = None) -> list[dict[str, Any]]:
    """The records of a CSV file under its header; ``lines`` gets the line each record starts on."""
    # the csv module sees the file's own line ends (newline=""): a quoted cell keeps its newlines, form feeds
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return []
        if len(set(header)) != len(header):
            raise LumosError(f"{path}: the header repeats a column name ({', '.join(header)}). Make them unique.")
        rows = []
        start = reader.line_num + 1
        for values in reader:
            first, start = start, reader.line_num + 1
            if not values:
                continue
            if len(values) != len(header):
                raise LumosError(f"{path}:{reader.line_num}: {len(values)} values for {len(header)} columns. Fix "
                                 "that line.")
            rows.append(dict(zip(header, values)))
            if lines is not None:
                lines.append(first)
    except csv.Error as exc:
        raise LumosError(f"{path}:{reader.line_num}: not valid CSV ({one_line(exc, 120)}).") from None
    return rows


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover
        raise LumosError("Reading Parquet needs pyarrow: pip install 'lumos[rl]'.") from None
    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        raise LumosError(f"{path} is not a readable Parquet file ({one_line(exc, 160)}).") from None


def _dataset_rows(path: Path) -> list[dict[str, Any]]:
    if not any((path / n).is_file() for n in ("dataset_info.json", "state.json", "dataset_dict.json")):
        raise LumosError(f"{path} is a directory but not a saved Hugging Face dataset (no dataset_info.json / "
                         "dataset_dict.json). Pass a .jsonl/.json/.csv/.parquet file or a Dataset.save_to_disk "
                         "directory.")
    try:
        import datasets
    except ImportError:  # pragma: no cover
        raise LumosError("Reading a saved dataset directory needs the datasets package: pip install 'lumos[rl]'.") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001
        raise LumosError(f"Cannot open the dataset {path} ({one_line(exc, 160)}).") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            splits = ", ".join(str(k) for k in ds)   # split names: str or datasets.NamedSplit
            raise LumosError(f"{path} holds the splits {splits} but no 'train'. Save the split to train on "
                             "alone (ds['name'].save_to_disk(DIR)).")
        ds = ds["train"]
    return ds.to_list()


def _check_values(value: Any, where: str, depth: int = 0) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise LumosError(f"{where}: holds {value}, which is not a finite number. Use a number or null.")
    if isinstance(value, str):
        _check_text(value, where, "a value")
    elif depth > 20:
        raise LumosError(f"{where}: values nested more than 20 levels deep.")
    elif isinstance(value, dict):
        for v in value.values():
            _check_values(v, where, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_values(v, where, depth + 1)


def read_rows(path: str | os.PathLike[str], prompt_column: str = "prompt") -> list[dict[str, Any]]:
    """Rows of a data file or saved dataset directory, with the prompt column checked (:func:`check_prompt`).

    Raises a one-line :class:`LumosError` for a missing or unreadable file, an empty one, a row without the
    prompt column, a bad prompt, or a non-finite number / lone surrogate anywhere in a row.
    """
    p = Path(path)
    lines: list[int] = []   # the file line of each row (JSONL, CSV)
    if p.is_dir():
        rows = _dataset_rows(p)
    elif not p.is_file():
        raise LumosError(f"Data file not found: {p}. Pass a .jsonl, .json, .csv or .parquet file, or a saved "
                         "dataset directory.")
    else:
        readers = {".jsonl": _jsonl_rows, ".json": _json_rows, ".csv": _csv_rows, ".parquet": _parquet_rows}
        reader = readers.get(p.suffix.lower())
        if reader is None:
            raise LumosError(f"{p}: unknown data format {p.suffix!r}; use one of {', '.join(DATA_SUFFIXES)} or a "
                             "saved dataset directory.")
        rows = reader(p, lines) if reader in (_jsonl_rows, _csv_rows) else reader(p)
    if not rows:
        raise LumosError(f"{p} contains no rows. Add rows like {{\"{prompt_column}\": \"2+2=\", \"answer\": \"4\"}}.")
    limit = max_prompt_chars()
    for i, row in enumerate(rows):
        where = f"{p}:{lines[i]}" if lines else f"{p} row {i}"   # the file's own line number where it has lines
        if prompt_column not in row:
            raise LumosError(f"{where}: no {prompt_column!r} column (columns: {', '.join(map(str, row)) or 'none'}). "
                             "Name the prompt column with --prompt-column.")
        check_prompt(row[prompt_column], where, limit)
        for key, value in row.items():
            if key != prompt_column:
                _check_values(value, f"{where} column {key!r}")
    return rows


def split_rows(rows: Sequence[Any], fraction: float, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """``(train, held_out)``: a seeded ``fraction`` of the rows (at least one) held out, the rest for training.

    The split is a function of the row count, ``fraction`` and ``seed`` only; both parts keep the file order.
    """
    n = len(rows)
    k = max(1, round(fraction * n))
    if k >= n:
        raise LumosError(f"Holding out {fraction:g} of {n} row(s) for evaluation leaves none to train on. Add rows, "
                         "pass held-out rows with --eval-data FILE, or evaluate never (--eval-every 0).")
    held = set(random.Random(f"lumos-split:{seed}:{n}").sample(range(n), k))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
