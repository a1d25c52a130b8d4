"""Ways a raw CSV gets damaged on disk, applied to a real MNIST CSV for tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# Line 2 is the first data row, line 1 the header.
RAGGED_LINE = 7
BINARY_LINE = 12


def truncate_mid_row(path: Path) -> str:
    """Cut the file in the middle of its last row, as an interrupted copy does."""
    data = path.read_bytes()
    last_row = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_row + 500])
    rows = data[:last_row].count(b"\n") + 1
    return f"the file ends in the middle of line {rows:,} ("


def add_binary_garbage(path: Path) -> str:
    """Overwrite part of a row with non-text bytes, as a damaged disk block does."""
    lines = path.read_bytes().split(b"\n")
    line = lines[BINARY_LINE - 1]
    lines[BINARY_LINE - 1] = line[:100] + bytes(range(128, 256)) + line[228:]
    path.write_bytes(b"\n".join(lines))
    return f"line {BINARY_LINE} holds binary (non-text) bytes"


def add_ragged_row(path: Path) -> str:
    """Give one row two extra fields."""
    lines = path.read_bytes().split(b"\n")
    lines[RAGGED_LINE - 1] += b",0,0"
    path.write_bytes(b"\n".join(lines))
    return f"line {RAGGED_LINE} has 787 fields but the header has 785 (a ragged row)"


def drop_header(path: Path) -> str:
    """Remove the header line."""
    data = path.read_bytes()
    path.write_bytes(data[data.index(b"\n") + 1 :])
    return "has no header row: its first line holds numbers"


DAMAGES: dict[str, Callable[[Path], str]] = {
    "truncated mid-row": truncate_mid_row,
    "binary garbage": add_binary_garbage,
    "ragged row": add_ragged_row,
    "missing header": drop_header,
}
