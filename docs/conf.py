"""Sphinx configuration for the blackbox_sync documentation.

Build (warnings are errors): ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
"""

import importlib.util
import os
import sys
from typing import List

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # document this checkout, even when another copy is installed

from blackbox_sync import __version__  # noqa: E402

project = "blackbox_sync"
author = "blackbox_sync contributors"
copyright = "blackbox_sync contributors"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"undoc-members": False, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False


def _missing(modules: List[str]) -> List[str]:
    """Optional dependencies that are not installed here: autodoc imports stand-ins for them."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


# The voice extra (aiortc, PyAV) is large and only needed to run calls, not to document them.
autodoc_mock_imports = _missing(
    ["aiortc", "av", "numpy", "jsonschema", "tqdm", "pandas", "distributed"]
)

html_theme = "alabaster"
html_title = f"blackbox_sync {release}"
html_theme_options = {
    "description": "A synchronous Python client for Dasha BlackBox agents",
    "fixed_sidebar": True,
}
