"""Atomic file writes and safe loads.

Everything lumos writes (configs, manifests, metrics, checkpoints, reports) goes through a temporary file in
the destination directory followed by ``os.replace``, so a crash never leaves a half-written file. Nothing
from outside is unpickled: tensors come from safetensors, and ``torch.load`` always uses ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lumos.core.errors import LumosError, one_line

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "append_jsonl",
    "read_json",
    "read_jsonl",
    "save_tensors",
    "load_tensors",
    "torch_save",
    "torch_load",
    "file_mode",
    "sweep_temp_files",
    "make_temp_dir",
]


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe); else set-and-restore."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode(directory: bool = False) -> int:
    """The mode a plain ``open`` (0666) or ``mkdir`` (0777) gives under the current umask (0644 / 0755 usually)."""
    return (0o777 if directory else 0o666) & ~_umask()


def make_temp_dir(dest: str | os.PathLike[str]) -> Path:
    """A temporary directory next to ``dest`` (``.<name>.<random>.tmp``, swept by :func:`sweep_temp_files`),
    with the umask's directory mode rather than mkdtemp's 0700."""
    dest = Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    os.chmod(tmp, file_mode(directory=True))
    return tmp


def sweep_temp_files(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files and directories (``.*.tmp``) that killed atomic writes left under ``root``.

    Call it only when no other process is writing there (at the start of a run or a resume). Returns the paths
    removed."""
    import shutil

    root = Path(root)
    if not root.is_dir():
        return []
    removed = []
    for p in sorted(root.rglob(".*.tmp"), key=lambda q: len(q.parts)):
        if not p.exists() and not p.is_symlink():
            continue  # inside a temp directory already removed
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path`` (atomic on POSIX).

    The file gets the umask's mode (0644 under umask 022), as a plain ``open`` would give it."""
    dest = Path(path)
    if dest.exists() and dest.is_dir():
        raise LumosError(f"Cannot write {dest}: it is a directory. Remove it or choose another path.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 → what a plain open would give (0644 under umask 022)
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp_path)):  # e.g. a full disk: name the file
            raise OSError(exc.errno, exc.strerror, str(dest)) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            return obj.detach().cpu().tolist()
        if isinstance(obj, (torch.dtype, torch.device)):
            return str(obj)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return repr(obj)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Serialize with numpy/torch/dataclass support."""
    return json.dumps(obj, indent=indent, default=_json_default, sort_keys=False)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as pretty JSON atomically."""
    return atomic_write_text(path, to_json(obj) + "\n")


def append_jsonl(path: str | os.PathLike[str], row: Mapping[str, Any]) -> None:
    """Append one JSON row and fsync (each line is complete or absent)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = to_json(dict(row), indent=None) + "\n"
    try:
        with open(p, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.filename is None:  # e.g. a full disk: name the file
            raise OSError(exc.errno, exc.strerror, str(p)) from exc
        raise


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, with a clear error when it is missing or corrupt."""
    p = Path(path)
    if not p.is_file():
        raise LumosError(f"File not found: {p}. Check the path.")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LumosError(f"{p} is not valid JSON ({exc}). Re-create or fix the file.") from None


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSONL file; a truncated last line (from a crash) is ignored, other bad lines are errors."""
    p = Path(path)
    if not p.is_file():
        raise LumosError(f"File not found: {p}. Check the path.")
    rows: list[dict[str, Any]] = []
    lines = p.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise LumosError(f"{p}: line {i + 1} is not valid JSON. Fix or remove that line.") from None
    return rows


def save_tensors(path: str | os.PathLike[str], tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> Path:
    """Save a flat dict of tensors as safetensors, atomically (tensors made contiguous, on CPU)."""
    from safetensors.torch import save_file

    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=dict(metadata) if metadata else None)
        os.chmod(tmp, file_mode())  # safetensors replaces the file with its own (0600) one
    return Path(path)


def load_tensors(path: str | os.PathLike[str], device: str = "cpu") -> dict[str, Any]:
    """Load a safetensors file with a clear error for missing or corrupt files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise LumosError(f"File not found: {p}. Check the path.")
    try:
        return load_file(str(p), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise LumosError(f"{p} is not a valid safetensors file ({one_line(exc, 160)}). Re-create or re-download it.") from None


def torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` atomically. Only use for objects ``torch.load(weights_only=True)`` can read back."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def torch_load(path: str | os.PathLike[str], map_location: str = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` (never unpickles arbitrary objects)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise LumosError(f"File not found: {p}. Check the path.")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is unusable
        raise LumosError(
            f"Cannot load {p} as a weights-only torch file ({one_line(exc, 160)}). "
            "Use safetensors or a plain state dict saved with torch.save."
        ) from None

