"""Sphinx configuration: the documentation is built from the sources (``make docs``, with
warnings as errors in CI); tables that depend on the code or on benchmark results are
generated into ``_generated/`` at build time by ``_generate.py``."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import _generate  # noqa: E402

project = "recsys"
author = "the recsys developers"
copyright = "2026, the recsys developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinxarg.ext",
]
html_theme = "furo"
html_title = "recsys"
exclude_patterns = ["_build", "README.md"]
autodoc_member_order = "bysource"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set = set()
suppress_warnings = ["ref.citation"]

_generate.main(HERE / "_generated")
