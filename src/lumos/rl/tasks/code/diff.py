"""Unified diffs from untrusted completions: a strict parser and an in-memory applier.

A model's patch is data, never a command: it is parsed here, every path is checked to stay inside the
repository (no absolute paths, no ``..``, no protected files such as the tests), and it is applied to an
in-memory copy of the repository (``dict`` path → text). Hunks must match exactly (``patch --fuzz 0``);
like GNU ``patch``, a hunk whose context moved is searched for at other offsets, nearest first.
Malformed diffs raise :class:`PatchError` (a :class:`~lumos.core.errors.LumosError`) with the reason.

The diff is a model's output, parsed and applied on the host before any sandbox: its size is bounded
(:data:`MAX_DIFF_CHARS`), hunk numbers are at most 9 digits, the search for a moved hunk starts from the
header's line clamped to the file (a huge offset costs nothing) and never looks outside it, and the
whole search is capped at :data:`MAX_SEARCH` compared lines (a :class:`PatchError` beyond).

Example::

    >>> files = {"m.py": "x = 1\\n"}
    >>> d = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x = 1\\n+x = 2\\n"
    >>> apply_patch(files, parse_unified_diff(d))
    {'m.py': 'x = 2\\n'}
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from lumos.core.errors import LumosError

__all__ = ["PatchError", "Hunk", "FilePatch", "parse_unified_diff", "apply_patch", "check_repo_path",
           "MAX_DIFF_CHARS", "MAX_SEARCH"]

#: Longest diff parsed (characters), most lines compared while searching for moved hunks in one patch.
MAX_DIFF_CHARS = 200_000
MAX_SEARCH = 5_000_000
_HUNK = re.compile(r"^@@ -(\d{1,9})(?:,(\d{1,9}))? \+(\d{1,9})(?:,(\d{1,9}))? @@")
_NO_NEWLINE = "\\ No newline at end of file"


class PatchError(LumosError):
    """A diff that is malformed, escapes the repository, touches protected files or does not apply."""


@dataclass
class Hunk:
    """One ``@@`` block: ``lines`` are ``(tag, text)`` with tag in ``' '``, ``'-'``, ``'+'``."""

    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: list[tuple[str, str]] = field(default_factory=list)
    no_newline_old: bool = False
    no_newline_new: bool = False


@dataclass
class FilePatch:
    """The hunks for one file; ``old_path``/``new_path`` are None for a created/deleted file."""

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk] = field(default_factory=list)


def check_repo_path(path: str, protected: tuple[str, ...] = ()) -> str:
    """Normalise a repository-relative path; raise :class:`PatchError` when it could escape or is protected."""
    if not path or "\x00" in path or "\\" in path:
        raise PatchError(f"Invalid path {path!r} in diff.")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise PatchError(f"The diff touches {path!r}, an absolute path outside the repository.")
    norm = posixpath.normpath(path)
    if norm == "." or norm.startswith("../") or norm == ".." or "/../" in f"/{path}/":
        raise PatchError(f"The diff touches {path!r}, which is outside the repository.")
    if norm.startswith(".git/") or norm == ".git":
        raise PatchError(f"The diff touches {path!r}, inside .git.")
    for p in protected:  # a path, a directory (and all below it), or "**/NAME": a file NAME anywhere
        if (norm == p or norm.startswith(p.rstrip("/") + "/")
                or (p.startswith("**/") and posixpath.basename(norm) == p[3:])):
            raise PatchError(f"The diff touches {path!r}, which is protected (tests may not be edited).")
    return norm


def _strip_prefix(raw: str) -> str | None:
    path = raw.split("\t")[0].strip()
    if path == "/dev/null":
        return None
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def _parse_hunk(lines: list[str], i: int, header: re.Match) -> tuple[Hunk, int]:
    old_len = int(header.group(2)) if header.group(2) is not None else 1
    new_len = int(header.group(4)) if header.group(4) is not None else 1
    hunk = Hunk(int(header.group(1)), old_len, int(header.group(3)), new_len)
    n_old = n_new = 0
    while i < len(lines) and (n_old < old_len or n_new < new_len):
        line = lines[i]
        tag, text = (line[0], line[1:]) if line else (" ", "")  # a blank line is context stripped of its space
        if tag not in " -+":
            raise PatchError(f"Malformed hunk line {i + 1}: {line[:60]!r} (expected ' ', '-' or '+').")
        hunk.lines.append((tag, text))
        n_old += tag in " -"
        n_new += tag in " +"
        i += 1
        if i < len(lines) and lines[i].startswith("\\"):
            hunk.no_newline_old |= tag in " -"
            hunk.no_newline_new |= tag in " +"
            i += 1
    if n_old != old_len or n_new != new_len:
        raise PatchError(f"Truncated hunk: header says -{old_len} +{new_len} lines, body has -{n_old} +{n_new}.")
    return hunk, i


def parse_unified_diff(text: str) -> list[FilePatch]:
    """Parse a unified diff (``git diff`` or ``diff -u``; ``a/``/``b/`` prefixes optional)."""
    if not isinstance(text, str) or not text.strip():
        raise PatchError("Empty diff.")
    if len(text) > MAX_DIFF_CHARS:
        raise PatchError(f"The diff is {len(text)} characters long; at most {MAX_DIFF_CHARS} are read.")
    lines = text.splitlines()
    patches: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
                raise PatchError(f"Line {i + 1}: '---' header without a following '+++' header.")
            fp = FilePatch(_strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:]))
            if fp.old_path is None and fp.new_path is None:
                raise PatchError("A file patch from /dev/null to /dev/null.")
            patches.append(fp)
            i += 2
        elif line.startswith("@@"):
            header = _HUNK.match(line)
            if header is None:
                raise PatchError(f"Line {i + 1}: malformed hunk header {line[:60]!r}.")
            if not patches:
                raise PatchError(f"Line {i + 1}: hunk before any '---'/'+++' file header.")
            hunk, i = _parse_hunk(lines, i + 1, header)
            patches[-1].hunks.append(hunk)
        else:
            i += 1  # diff --git, index, mode lines and surrounding prose are ignored
    if not patches:
        raise PatchError("No '---'/'+++' file headers found: not a unified diff.")
    for fp in patches:
        if not fp.hunks:
            raise PatchError(f"File patch for {fp.new_path or fp.old_path!r} has no hunks.")
    return patches


class _Budget:
    """Lines left to compare while searching for hunks (:data:`MAX_SEARCH` per patch)."""

    def __init__(self, lines: int = MAX_SEARCH):
        self.left = lines

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise PatchError(f"Searching for the diff's hunks compared more than {MAX_SEARCH} lines; send a diff "
                             "whose line numbers and context match the file.")


def _find(lines: list[str], old: list[str], at: int, budget: _Budget | None = None) -> int:
    """Position of ``old`` in ``lines``, trying ``at`` (clamped into the file) first, then nearest offsets
    (-1 when absent). At most ``len(lines) + 1`` positions are tried, whatever ``at`` says."""
    budget = budget or _Budget()
    n = len(lines) - len(old)
    if n < 0:
        return -1
    at = min(max(at, 0), n)
    for delta in range(0, max(at, n - at) + 1):
        for pos in ((at,) if delta == 0 else (at - delta, at + delta)):
            if 0 <= pos <= n and (not old or lines[pos] == old[0]):
                budget.spend(len(old) or 1)
                if lines[pos:pos + len(old)] == old:
                    return pos
    return -1


def _find_reference(lines: list[str], old: list[str], at: int) -> int:
    """The slow, obviously correct twin of :func:`_find`: every position, nearest to ``at`` first (ties to
    the earlier one), with no bound on work."""
    n = len(lines) - len(old)
    candidates = [pos for pos in range(n + 1) if lines[pos:pos + len(old)] == old]
    at = min(max(at, 0), max(n, 0))
    return min(candidates, key=lambda pos: (abs(pos - at), pos), default=-1)


def _apply_file(text: str | None, fp: FilePatch, path: str, budget: _Budget) -> str | None:
    lines = [] if not text else text.split("\n")
    trailing_newline = not text or text.endswith("\n")
    if text and trailing_newline:
        lines.pop()
    shift = 0
    for hunk in fp.hunks:
        old = [t for tag, t in hunk.lines if tag in " -"]
        new = [t for tag, t in hunk.lines if tag in " +"]
        start = hunk.old_start - 1 if hunk.old_len else hunk.old_start
        pos = _find(lines, old, start + shift, budget)
        if pos < 0:
            raise PatchError(f"Hunk @@ -{hunk.old_start},{hunk.old_len} @@ does not apply to {path!r}.")
        lines[pos:pos + len(old)] = new
        shift += len(new) - len(old)
        if pos + len(new) == len(lines):  # the hunk reaches the end of the file: it decides the last newline
            trailing_newline = not hunk.no_newline_new
    if fp.new_path is None:
        if lines:
            raise PatchError(f"Deleting {path!r} but the diff leaves {len(lines)} line(s).")
        return None
    return "\n".join(lines) + ("\n" if trailing_newline and lines else "")


def apply_patch(files: dict[str, str], patches: list[FilePatch], protected: tuple[str, ...] = ()) -> dict[str, str]:
    """Apply ``patches`` to a copy of ``files`` (path → text); the input is not modified. ``protected``: paths,
    directories (everything below them) and ``"**/NAME"`` (a file ``NAME`` in any directory).

    Raises :class:`PatchError` when a path escapes the repository or is ``protected``, a file to modify
    does not exist, a file to create exists, or a hunk's context is not found.
    """
    out = dict(files)
    budget = _Budget()
    for fp in patches:
        old = None if fp.old_path is None else check_repo_path(fp.old_path, protected)
        new = None if fp.new_path is None else check_repo_path(fp.new_path, protected)
        if old is not None and new is not None and old != new:
            raise PatchError(f"Renames are not supported ({old!r} -> {new!r}).")
        path = new or old
        if path is None:
            raise PatchError("A file patch from /dev/null to /dev/null.")
        if old is None and path in out:
            raise PatchError(f"The diff creates {path!r}, which already exists.")
        if old is not None and path not in out:
            raise PatchError(f"The diff modifies {path!r}, which is not in the repository.")
        result = _apply_file(out.get(path) if old is not None else None, fp, path, budget)
        if result is None:
            del out[path]
        else:
            out[path] = result
    return out
