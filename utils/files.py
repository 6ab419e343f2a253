"""Names and fingerprints of the files a separation reads and writes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w\-. ()\[\]&,+']")
"""Anything but letters, digits and a few harmless marks becomes `_`: no separators, no shell or URL magic."""
MAX_NAME_LENGTH = 120
FALLBACK_NAME = "track"
HASH_BLOCK_BYTES = 1 << 20


def safe_name(stem: str) -> str:
    """A file name that stays one path component: no separators, no leading dots, not empty, not too long."""
    name = UNSAFE_NAME_CHARACTERS.sub("_", stem).strip(" .")[:MAX_NAME_LENGTH]
    return name or FALLBACK_NAME


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()
