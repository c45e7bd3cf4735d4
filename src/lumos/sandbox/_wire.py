"""The wire codec of the candidate/runner channel and the results channel (standard library only).

Every message is one line of JSON, at most :data:`MAX_LINE` bytes and :data:`MAX_DEPTH` levels deep; anything
else is refused. Values cross as tagged plain data (:func:`encode` / :func:`decode`): None, bool, int, float
(``{"$f": "nan"}`` for the non-finite ones), str, list, ``{"$t": [...]}`` tuple, ``{"$d": [[k, v], ...]}``
dict, ``{"$s"/"$fs": [...]}`` set/frozenset, ``{"$b": hex}`` bytes; ``{"$h": ...}`` (a candidate object) and
``{"$r": id}`` (a reference back to one) are decoded by the caller's ``other`` hook. Exact built-in types only:
a subclass of ``int`` or ``list`` is not plain data, so no candidate ``__eq__`` ever crosses.

Imported by the in-sandbox scripts as ``_wire`` and on the host as ``lumos.sandbox._wire`` (for its tests).
"""

import json
import math
import os
import traceback

try:  # lumos.sandbox._wire on the host; _wire next to _launcher.py in the sandbox
    from ._shared import MAX_DEPTH, MAX_LINE
except ImportError:
    from _shared import MAX_DEPTH, MAX_LINE

__all__ = ["MAX_LINE", "MAX_DEPTH", "EncodeError", "CandidateGone", "TestTimeout", "alarm", "KINDS", "encode", "decode", "dumps",
           "loads", "LineReader", "write_all", "describe", "Channel"]

_EXACT = (type(None), bool, int, float, str)


class EncodeError(ValueError):
    """A value that is not plain data (or too deep/large) cannot cross the channel."""


class CandidateGone(Exception):
    """The candidate process exited, hung past its time, or broke the protocol."""


class TestTimeout(BaseException):
    """Raised by the per-test alarm; a BaseException so ``except Exception`` in a test cannot swallow it."""

    __test__ = False  # not a test class, whatever collects


def alarm(signum, frame):
    """``SIGALRM`` handler of the per-call and per-test time limits."""
    raise TestTimeout()


#: The kinds of candidate object a handle ``{"$h": [id, kind, name, chain]}`` names.
KINDS = ("module", "class", "exception", "callable", "object")

def encode(x, depth=0, other=None):
    """A JSON-able tagged form of plain data; exact built-in types only (no subclasses, no custom ``__eq__``).

    Anything else goes to ``other(x)`` (the candidate's handle table, the runner's handle references) or
    raises :class:`EncodeError`."""
    if depth > MAX_DEPTH:
        raise EncodeError(f"nested deeper than {MAX_DEPTH} levels")
    t = type(x)
    if t is float and not math.isfinite(x):
        return {"$f": repr(x)}
    if t in _EXACT:
        return x
    if t is list:
        return [encode(v, depth + 1, other) for v in x]
    if t is tuple:
        return {"$t": [encode(v, depth + 1, other) for v in x]}
    if t is dict:
        return {"$d": [[encode(k, depth + 1, other), encode(v, depth + 1, other)] for k, v in x.items()]}
    if t is set or t is frozenset:
        return {"$s" if t is set else "$fs": [encode(v, depth + 1, other) for v in x]}
    if t is bytes:
        return {"$b": x.hex()}
    if other is not None:
        return other(x)
    raise EncodeError(f"a {t.__name__} is not plain data")


def decode(obj, depth=0, other=None):
    """Inverse of :func:`encode` on parsed JSON; raises ``ValueError`` on anything malformed.

    ``other(tag, body)`` decodes the handle tags (``$h`` from the candidate, ``$r`` from the runner)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    t = type(obj)
    if t in _EXACT:
        return obj
    if t is list:
        return [decode(v, depth + 1, other) for v in obj]
    if t is dict and len(obj) == 1:
        (tag, body), = obj.items()
        if tag == "$f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "$b" and type(body) is str:
            return bytes.fromhex(body)
        if tag in ("$h", "$r") and other is not None:
            return other(tag, body)
        if type(body) is list and tag in ("$t", "$s", "$fs", "$d"):
            items = [decode(v, depth + 1, other) for v in body]
            try:
                if tag == "$t":
                    return tuple(items)
                if tag == "$s":
                    return set(items)
                if tag == "$fs":
                    return frozenset(items)
                if all(type(kv) is list and len(kv) == 2 for kv in items):
                    return {k: v for k, v in items}
            except TypeError:  # an unhashable key or member
                raise ValueError("malformed value") from None
    raise ValueError("malformed value")


def dumps(obj):
    line = (json.dumps(obj, allow_nan=False) + "\n").encode()
    if len(line) > MAX_LINE:
        raise EncodeError(f"larger than {MAX_LINE} bytes")
    return line


def loads(line):
    """One bounded JSON line → object; ``ValueError`` for oversize, malformed or too deeply nested input."""
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    try:
        return json.loads(line)
    except RecursionError:
        raise ValueError("nested too deeply") from None


class LineReader:
    """Reads ``\\n``-terminated lines from a blocking fd, at most :data:`MAX_LINE` bytes each."""

    def __init__(self, fd):
        self.fd, self.buf = fd, bytearray()

    def readline(self):
        """The next line (without the newline), or None at end of file. ``ValueError`` when too long."""
        while True:
            i = self.buf.find(b"\n")
            if i > MAX_LINE:
                raise ValueError("line too long")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > MAX_LINE:
                raise ValueError("line too long")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk


def write_all(fd, data):
    try:
        while data:
            data = data[os.write(fd, data):]
        return True
    except OSError:
        return False


def describe(exc):
    """One line for a failed test: the assert's source line when the assertion has no message."""
    if isinstance(exc, MemoryError):
        return "MemoryError"
    if isinstance(exc, AssertionError) and not exc.args:
        frames = traceback.extract_tb(exc.__traceback__)
        if frames and frames[-1].line:
            return (f"AssertionError: {frames[-1].line.strip()}")[:400]
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[-400:]


class Channel:
    """Unbuffered JSON lines on a results fd (``os.write``: nothing buffered is lost on ``os._exit``)."""

    def __init__(self, fd):
        self.fd = fd

    def send(self, **obj):
        try:
            write_all(self.fd, (json.dumps(obj, default=repr) + "\n").encode())
        except Exception:  # noqa: BLE001 - e.g. out of memory while encoding
            pass

