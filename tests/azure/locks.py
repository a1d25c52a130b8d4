"""The hash-pinned locks, as {distribution: version}."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

IMAGE_LOCK = ROOT / "conf/azure/environment/requirements.lock"


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """The pinned distributions of a `uv pip compile --generate-hashes` lock."""
    lines = path.read_text().splitlines()
    pinned = [line.split()[0] for line in lines if re.match(r"^[a-z0-9]", line)]
    return {  # hashes follow the pin
        normalized(name): version
        for name, version in (line.split("==") for line in pinned)
    }
