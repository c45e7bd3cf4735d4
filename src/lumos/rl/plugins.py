"""User code named on the command line: ``path/to/file.py:NAME`` or ``package.module:NAME``.

Both forms work without ``PYTHONPATH``: a ``.py`` path is loaded as a module of its own (its directory is put
on ``sys.path`` while it imports, so it may import its sibling modules); a dotted module is imported with the
current directory first on ``sys.path``, as ``python -m`` does. ``NAME`` may be dotted (``module:Class.method``).
Every way this can go wrong (an empty or relative module name, a missing file or attribute, an import that
raises, something not callable) is one :class:`~lumos.core.errors.LumosError` naming the spec and the flag.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from lumos.core.errors import LumosError, one_line

__all__ = ["load_object", "split_spec", "call_user"]


def split_spec(spec: str, flag: str) -> tuple[str, str]:
    """``(module or file, attribute)`` of ``spec``; the last ``:`` separates them (Windows drive letters too)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise LumosError(f"{flag} {spec!r} must be PATH.py:NAME or package.module:NAME.")
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise LumosError(f"{flag} {spec!r} names no {'module' if not where else 'attribute'}; give "
                         "PATH.py:NAME or package.module:NAME.")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise LumosError(f"{flag} {spec!r}: {attr!r} is not a Python name; give PATH.py:NAME or package.module:NAME.")
    return where, attr


@contextmanager
def _on_path(directory: str) -> Iterator[None]:
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        try:
            sys.path.remove(directory)
        except ValueError:  # pragma: no cover - the imported code removed it itself
            pass


def _load_file(path: Path, spec: str, flag: str) -> ModuleType:
    if not path.is_file():
        raise LumosError(f"{flag} {spec!r}: file {path} not found. Check the path.")
    resolved = path.resolve()
    name = "lumos_user_" + hashlib.sha1(str(resolved).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    mod_spec = importlib.util.spec_from_file_location(name, resolved)
    if mod_spec is None or mod_spec.loader is None:
        raise LumosError(f"{flag} {spec!r}: {path} cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module
    try:
        with _on_path(str(resolved.parent)):
            mod_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - user code (a module may even call sys.exit)
        del sys.modules[name]
        raise LumosError(f"{flag} {spec!r}: importing {path} raised {type(exc).__name__}: "
                         f"{one_line(exc, 160)}. Fix that file.") from None
    return module


def _load_module(name: str, spec: str, flag: str) -> ModuleType:
    if name.startswith("."):
        raise LumosError(f"{flag} {spec!r}: relative module names cannot be imported from the command line; give "
                         "the full dotted name (package.module:NAME) or a file path (path/to/file.py:NAME).")
    if not all(part.isidentifier() for part in name.split(".")):
        raise LumosError(f"{flag} {spec!r}: {name!r} is neither a .py file nor a dotted module name.")
    try:
        with _on_path(os.getcwd()):
            return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise LumosError(f"{flag} {spec!r}: no module named {exc.name!r} (looked in the current directory and "
                         "the installed packages). Give package.module:NAME or path/to/file.py:NAME.") from None
    except Exception as exc:  # noqa: BLE001 - user code: report it in one line
        raise LumosError(f"{flag} {spec!r}: importing {name} raised {type(exc).__name__}: {one_line(exc, 160)}.") from None


def load_object(spec: str, flag: str = "--task", *, need_callable: bool = True) -> Any:
    """The object ``spec`` names (``path/to/file.py:NAME`` or ``package.module:NAME``); see the module docstring."""
    where, attr = split_spec(spec, flag)
    if where.endswith(".py") or os.sep in where or (os.altsep and os.altsep in where):
        module = _load_file(Path(where), spec, flag)
    else:
        module = _load_module(where, spec, flag)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None)))
            raise LumosError(f"{flag} {spec!r}: {where} has no attribute {attr!r}"
                             + (f" (its callables: {', '.join(names[:12])})." if names else "."))
        obj = getattr(obj, part)
    if need_callable and not callable(obj):
        raise LumosError(f"{flag} {spec!r} names a {type(obj).__name__}, not a function or class.")
    return obj


def call_user(fn: Callable[..., Any], what: str, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; a :class:`LumosError` passes through, any other exception becomes one line."""
    try:
        return fn(*args, **kwargs)
    except LumosError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: report it in the one message shape
        raise LumosError(f"{what} raised {type(exc).__name__}: {one_line(exc, 200)}. Fix it (the traceback: "
                         "LUMOS_DEBUG=1).") from exc
