"""Writing files so that readers see the old file or the complete new one, never a partial one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".tmp-"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` only if the block succeeds.

    Works for files and folders; an existing folder at `path` is replaced as a whole.
    """
    tmp = path.with_name(f"{TMP_PREFIX}{path.stem}-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            old = path.with_name(f"{TMP_PREFIX}{path.stem}-{os.getpid()}-old")
            path.replace(old)
            tmp.replace(path)
            shutil.rmtree(old)
        else:
            tmp.replace(path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        else:
            tmp.unlink(missing_ok=True)
