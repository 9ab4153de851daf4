"""JSON Schemas shipped with lutnav (model card, train config, mix recipe).

Kept as a package so the schemas travel as package data and load with
``importlib.resources`` from an installed wheel as well as from a checkout.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files


@cache
def load(name: str) -> dict:
    """Return the parsed schema ``<name>.schema.json``."""
    return json.loads(files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8"))
