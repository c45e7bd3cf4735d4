"""Adaptive units for counts, FLOPs and bytes (ASCII only)."""

from __future__ import annotations

import pytest

from lumos.analysis.units import format_bytes, format_count, format_flops, memory_unit, unit_bytes


@pytest.mark.parametrize("n, text", [(0, "0"), (812, "812"), (1936, "1.9K"), (45_944_920, "45.9M"),
                                     (456_089_655_296, "456.1B"), (2.5e12, "2.5T"), (3.2e15, "3,200T")])
def test_format_count(n, text):
    assert format_count(n) == text


@pytest.mark.parametrize("x, text", [(512, "512 FLOPs"), (3.2e6, "3.2 MFLOPs"), (1.377e11, "137.7 GFLOPs"),
                                     (311_700, "311.7 KFLOPs"), (4e12, "4.0 TFLOPs"), (0.25, "0.25 FLOPs")])
def test_format_flops(x, text):
    assert format_flops(x) == text


def test_memory_units():
    assert memory_unit(72 * 2 ** 30) == ("GiB", 2.0 ** 30)
    assert memory_unit(921.6 * 2 ** 20) == ("MiB", 2.0 ** 20)
    assert memory_unit(12) == ("B", 1.0) and unit_bytes("TiB") == 2.0 ** 40
    assert format_bytes(3 * 2 ** 30) == "3.0 GiB" and format_bytes(2048) == "2.0 KiB" and format_bytes(12) == "12 B"
