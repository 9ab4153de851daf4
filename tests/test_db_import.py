"""``catalog.index.db`` keeps numpy out of the start-up without leaving the interpreter changed."""

from __future__ import annotations

import subprocess
import sys


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_opening_the_catalog_does_not_load_numpy_and_leaves_it_importable():
    out = python("import sys, catalog.index.db\n"
                 "print(sorted(m for m in ('numpy', 'pandas') if m in sys.modules))\n"
                 "import numpy\n"
                 "print(numpy.zeros(2).sum())")
    assert out.splitlines() == ["[]", "0.0"]  # no module loaded, no None left behind


def test_where_numpy_is_loaded_sqlite_utils_gets_it():
    out = python("import numpy, catalog.index.db, sqlite_utils.db as d\n"
                 "print(d.np is numpy, numpy.int64 in d.COLUMN_TYPE_MAPPING)")
    assert out == "True True"


def test_sqlite_utils_still_imports_numpy_by_itself():
    """When this fails, sqlite-utils no longer loads numpy on import: remove
    ``catalog.index.db._import_sqlite_utils`` and import it plainly."""
    assert python("import sys, sqlite_utils\nprint('numpy' in sys.modules)") == "True"
