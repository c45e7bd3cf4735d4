"""Numbers for people: parameter counts, FLOPs and bytes in the unit that suits their size (ASCII only, so the
output survives a C locale)."""

from __future__ import annotations

import math

__all__ = ["format_count", "format_flops", "memory_unit", "unit_bytes", "format_bytes"]

_COUNT = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))
_FLOPS = ((1e15, "PFLOPs"), (1e12, "TFLOPs"), (1e9, "GFLOPs"), (1e6, "MFLOPs"), (1e3, "KFLOPs"))
_BYTES = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def _scaled(x: float, table: tuple[tuple[float, str], ...], plain: str, sep: str) -> str:
    if not math.isfinite(x):
        return f"{x}{sep}{plain}".rstrip()
    for scale, name in table:
        if abs(x) >= scale:
            v = x / scale
            return f"{v:.1f}{sep}{name}" if abs(v) < 1000 else f"{v:,.0f}{sep}{name}"
    return f"{x:.0f}{sep}{plain}".rstrip() if float(x).is_integer() else f"{x:.3g}{sep}{plain}".rstrip()


def format_count(n: float) -> str:
    """456089655296 -> '456.1B', 45944920 -> '45.9M', 1936 -> '1.9K', 812 -> '812'."""
    return _scaled(n, _COUNT, "", "")


def format_flops(x: float) -> str:
    """FLOPs with a unit: 1.377e11 -> '137.7 GFLOPs', 3.2e6 -> '3.2 MFLOPs', 512 -> '512 FLOPs'."""
    return _scaled(x, _FLOPS, "FLOPs", " ")


def memory_unit(largest: float) -> tuple[str, float]:
    """(name, bytes per unit) of the binary unit in which ``largest`` bytes reads best (B ... TiB); one unit
    for a whole table keeps its columns comparable."""
    for scale, name in _BYTES:
        if abs(largest) >= scale:
            return name, float(scale)
    return "B", 1.0


def unit_bytes(name: str) -> float:
    """Bytes per ``name`` ("B", "KiB", "MiB", "GiB", "TiB")."""
    return 1.0 if name == "B" else float(dict((n, s) for s, n in _BYTES)[name])


def format_bytes(n: float) -> str:
    """Bytes with a binary unit: 3 * 2**30 -> '3.0 GiB', 2048 -> '2.0 KiB', 12 -> '12 B'."""
    name, scale = memory_unit(n)
    return f"{n:.0f} B" if name == "B" else f"{n / scale:.1f} {name}"
