"""The staging folder: downloads wait in ``<library>/.lutnav/pull-*`` until verified.

Being inside the library keeps the final move a rename on one filesystem (a file
appears whole or not at all); being under ``.lutnav`` keeps the scanner away from
half-fetched files.  The folder is removed however the pull ends — success, a
refused file, an error, or Ctrl-C.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from catalog.index.library import Library


@contextmanager
def staging(lib: Library) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pull-", dir=lib.index_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)

