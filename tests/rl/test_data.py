"""RL prompt data: every file format gives the same rows; bad rows are one line naming the file and row."""

from __future__ import annotations

import json

import pytest

from lumos.core.errors import LumosError
from lumos.rl.data import MAX_PROMPT_CHARS, max_prompt_chars, read_rows, split_rows

ROWS = [{"prompt": "2+2=", "answer": "4", "level": "1"},
        {"prompt": "Capital of France?", "answer": "Paris", "level": "2"},
        {"prompt": "3+3=", "answer": "6", "level": "1"}]


@pytest.fixture()
def files(tmp_path):
    out = {}
    out["jsonl"] = tmp_path / "d.jsonl"
    out["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "\n")
    out["json"] = tmp_path / "d.json"
    out["json"].write_text(json.dumps(ROWS))
    out["csv"] = tmp_path / "d.csv"
    out["csv"].write_text("prompt,answer,level\n2+2=,4,1\nCapital of France?,Paris,2\n3+3=,6,1\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    out["parquet"] = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), out["parquet"])
    datasets = pytest.importorskip("datasets")
    out["hf"] = tmp_path / "hf"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(out["hf"]))
    out["hf_dict"] = tmp_path / "hf_dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(out["hf_dict"]))
    return out


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet", "hf", "hf_dict"])
def test_every_format_reads_the_same_rows(files, kind):
    assert read_rows(files[kind]) == ROWS


def test_chat_prompts_and_prompt_column(tmp_path):
    f = tmp_path / "chat.jsonl"
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    f.write_text(json.dumps({"question": msgs, "answer": 4}) + "\n")
    assert read_rows(f, prompt_column="question")[0]["question"] == msgs
    with pytest.raises(LumosError, match="no 'prompt' column .*--prompt-column"):
        read_rows(f)


@pytest.mark.parametrize("content,match", [
    ('{"prompt": "a", "answer": NaN}\n', r"d.jsonl:1: NaN is not a JSON value"),
    ('{"prompt": "a", "answer": 1, "answer": 2}\n', r"d.jsonl:1: the key 'answer' appears twice"),
    ('{"prompt": "a"}\nnot json\n', r"d.jsonl:2: not valid JSON"),
    ('[1, 2]\n', r"d.jsonl:1: expected a JSON object per line"),
    ('{"prompt": ""}\n', r"d.jsonl:1: the prompt is empty"),
    ('{"prompt": 3}\n', r"d.jsonl:1: the prompt must be text or a non-empty list of chat messages"),
    ('{"prompt": [{"role": "user"}]}\n', r"must be text or a non-empty list of chat messages"),
    ('{"prompt": "\\ud800 hi"}\n', r"d.jsonl:1: the prompt holds an unpaired surrogate"),
    ('{"prompt": "hi", "meta": {"x": "\\udfff"}}\n', r"column 'meta': a value holds an unpaired surrogate"),
    ('\n\n', r"contains no rows"),
])
def test_bad_jsonl(tmp_path, content, match):
    f = tmp_path / "d.jsonl"
    f.write_text(content)
    with pytest.raises(LumosError, match=match) as err:
        read_rows(f)
    assert "\n" not in str(err.value)


def test_bad_files(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"prompt": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(LumosError, match=r"latin.jsonl is not UTF-8 text"):
        read_rows(latin)
    with pytest.raises(LumosError, match="Data file not found"):
        read_rows(tmp_path / "none.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(LumosError, match="unknown data format '.txt'"):
        read_rows(tmp_path / "x.txt")
    (tmp_path / "plain_dir").mkdir()
    with pytest.raises(LumosError, match="not a saved Hugging Face dataset"):
        read_rows(tmp_path / "plain_dir")
    ragged = tmp_path / "r.csv"
    ragged.write_text("prompt,answer\na,1\nb\n")
    with pytest.raises(LumosError, match=r"r.csv:3: 1 values for 2 columns"):
        read_rows(ragged)


def test_prompt_size_bound_and_its_variable(tmp_path, monkeypatch):
    f = tmp_path / "big.jsonl"
    f.write_text(json.dumps({"prompt": "x" * 50}) + "\n")
    assert max_prompt_chars() == MAX_PROMPT_CHARS
    monkeypatch.setenv("LUMOS_MAX_PROMPT_CHARS", "40")
    with pytest.raises(LumosError, match="50 characters, above the bound of 40.*LUMOS_MAX_PROMPT_CHARS"):
        read_rows(f)
    monkeypatch.setenv("LUMOS_MAX_PROMPT_CHARS", "50")
    assert len(read_rows(f)) == 1
    for bad in ("abc", "-3", "0"):
        monkeypatch.setenv("LUMOS_MAX_PROMPT_CHARS", bad)
        with pytest.raises(LumosError, match="environment variable LUMOS_MAX_PROMPT_CHARS must be a positive integer"):
            read_rows(f)


def test_split_is_seeded_disjoint_and_complete():
    rows = list(range(20))
    train, held = split_rows(rows, 0.25, seed=3)
    assert len(held) == 5 and sorted(train + held) == rows and not set(train) & set(held)
    assert split_rows(rows, 0.25, seed=3) == (train, held)
    assert split_rows(rows, 0.25, seed=4) != (train, held)
    assert len(split_rows([1, 2], 0.01)[1]) == 1          # at least one row held out
    with pytest.raises(LumosError, match="leaves none to train on"):
        split_rows([1], 0.5)


def test_files_keep_their_text_exactly(tmp_path):
    """A quoted CSV cell keeps its newlines and form feeds, a BOM is not part of a column name, a JSON string may
    hold U+2028, and a malformed CSV is one line naming it."""
    from lumos.rl.data import read_rows

    (tmp_path / "a.csv").write_bytes(b'\xef\xbb\xbfprompt,answer\n"line one\nline two",1\n"a\x0cb",2\n')
    assert read_rows(tmp_path / "a.csv") == [{"prompt": "line one\nline two", "answer": "1"},
                                             {"prompt": "a\x0cb", "answer": "2"}]
    (tmp_path / "d.jsonl").write_text('{"prompt": "a\u2028b", "answer": 1}\n', encoding="utf-8")
    assert read_rows(tmp_path / "d.jsonl") == [{"prompt": "a\u2028b", "answer": 1}]
    (tmp_path / "big.csv").write_text('prompt,answer\n"' + "x" * 140_000 + '",1\n')
    with pytest.raises(LumosError, match=r"big.csv:2: not valid CSV \(field larger than field limit"):
        read_rows(tmp_path / "big.csv")


def test_errors_name_the_files_own_line(tmp_path):
    """A bad row is named by its line in the file: CSV counts the header (and a cell's own newlines), JSONL its
    blank lines."""
    from lumos.rl.data import read_rows

    tmp = tmp_path
    (tmp / "e.csv").write_text('prompt,answer\n"two\nlines",1\n,2\n')
    with pytest.raises(LumosError, match=r"e.csv:4: the prompt is empty"):
        read_rows(tmp / "e.csv")
    (tmp / "e.jsonl").write_text('{"prompt": "a"}\n\n\n{"prompt": ""}\n')
    with pytest.raises(LumosError, match=r"e.jsonl:4: the prompt is empty"):
        read_rows(tmp / "e.jsonl")
