import json
import os

import pytest
import torch

from lumos.core.errors import LumosError
from lumos.core.io import (
    append_jsonl,
    atomic_path,
    atomic_write_json,
    load_tensors,
    read_json,
    read_jsonl,
    save_tensors,
    torch_load,
    torch_save,
)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_atomic_write_replaces(tmp_path):
    target = tmp_path / "sub" / "x.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": torch.tensor([1, 2])})
    assert read_json(target) == {"a": [1, 2]}


def test_jsonl_roundtrip_and_truncated_tail(tmp_path):
    p = tmp_path / "m.jsonl"
    append_jsonl(p, {"step": 1})
    append_jsonl(p, {"step": 2})
    with open(p, "a") as fh:
        fh.write('{"step": 3')  # a crash mid-line
    assert read_jsonl(p) == [{"step": 1}, {"step": 2}]


def test_read_json_errors(tmp_path):
    with pytest.raises(LumosError, match="not found"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(LumosError, match="not valid JSON"):
        read_json(bad)


def test_safetensors_roundtrip_and_corrupt(tmp_path):
    p = tmp_path / "w.safetensors"
    save_tensors(p, {"w": torch.arange(6.0).view(2, 3)})
    assert torch.equal(load_tensors(p)["w"], torch.arange(6.0).view(2, 3))
    p.write_bytes(b"garbage" * 10)
    with pytest.raises(LumosError, match="not a valid safetensors"):
        load_tensors(p)


def test_torch_load_is_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    p = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, p)
    with pytest.raises(LumosError, match="weights-only"):
        torch_load(p)
    ok = tmp_path / "ok.pt"
    torch_save(ok, {"x": torch.ones(2), "step": 3})
    assert torch_load(ok)["step"] == 3


def test_atomic_writes_follow_the_umask_and_temp_files_are_swept(tmp_path):
    import os

    from lumos.core.io import atomic_write_text, file_mode, make_temp_dir, sweep_temp_files

    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.json", "{}")
        assert p.stat().st_mode & 0o777 == 0o644 == file_mode()
        d = make_temp_dir(tmp_path / "step_000001")
        assert d.stat().st_mode & 0o777 == 0o755
        os.umask(0o027)
        assert atomic_write_text(tmp_path / "b.json", "{}").stat().st_mode & 0o777 == 0o640
        os.umask(0o022)  # safetensors writes its own file (0600); save_tensors gives it the umask's mode
        assert save_tensors(tmp_path / "t.safetensors", {"x": torch.ones(2)}).stat().st_mode & 0o777 == 0o644
        (tmp_path / "t.safetensors").unlink()
    finally:
        os.umask(old)
    (d / "model.safetensors").write_text("half")
    (tmp_path / ".c.json.abc123.tmp").write_text("half")
    removed = sweep_temp_files(tmp_path)
    assert {r.name for r in removed} == {d.name, ".c.json.abc123.tmp"}
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.json", "b.json"]
