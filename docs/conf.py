"""Sphinx configuration for ember's API reference (``make docs``; warnings are errors).

The API pages are generated here, at build time, from the package itself: one
page per subpackage, with an ``automodule`` for each of its modules, so a new
module is documented without editing the docs.
"""

import importlib
import os
import pkgutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

import ember  # noqa: E402

project = "ember"
author = "the ember authors"
copyright = "2026, the ember authors"
release = ember.__version__
version = ember.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
# torch's own docstrings are not reStructuredText-clean; document ember's text only
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
suppress_warnings = ["ref.python"]

# Pages of the API reference: (page name, title, packages whose modules it lists).
API_PAGES = [
    ("primitives", "Primitives", ["ember"]),
    ("distributions", "Distributions", ["ember.distributions"]),
    ("transforms", "Transforms and normalizing flows", ["ember.distributions.transforms"]),
    ("nn", "Neural network helpers", ["ember.nn"]),
    ("poutine", "Effect handlers (poutine)", ["ember.poutine"]),
    ("params", "Parameter store", ["ember.params"]),
    ("infer", "Inference", ["ember.infer"]),
    ("optim", "Optimizers", ["ember.optim"]),
    ("ops", "Tensor contraction", ["ember.ops"]),
    ("demo", "Demo and bundled data", ["ember.demo"]),
]
# Modules that are not part of the reference.
SKIP = {"ember.__main__"}


def _modules_of(package_name):
    """The package itself and its direct (non-package) modules, sorted."""
    package = importlib.import_module(package_name)
    names = [package_name]
    if package_name == "ember":  # top level: only plain modules, subpackages get pages
        for info in pkgutil.iter_modules(package.__path__):
            if not info.ispkg and not info.name.startswith("_"):
                names.append(f"ember.{info.name}")
        return [n for n in names if n not in SKIP]
    for info in pkgutil.iter_modules(package.__path__):
        full = f"{package_name}.{info.name}"
        if info.name.startswith("_") or full in SKIP:
            continue
        if info.ispkg and any(full == p for _, _, pkgs in API_PAGES for p in pkgs):
            continue  # documented on its own page
        names.append(full)
    return names


def _write_api_pages(app):
    out = os.path.join(app.srcdir, "api")
    os.makedirs(out, exist_ok=True)
    for page, title, packages in API_PAGES:
        lines = [title, "=" * len(title), ""]
        for package_name in packages:
            try:
                modules = _modules_of(package_name)
            except ImportError:
                continue  # a package not built yet
            for name in modules:
                lines += [name, "-" * len(name), "", f".. automodule:: {name}"]
                lines += ["   :members:", "   :ignore-module-all:", ""]
        text = "\n".join(lines)
        path = os.path.join(out, f"{page}.rst")
        if not os.path.exists(path) or open(path).read() != text:
            with open(path, "w") as f:
                f.write(text)


def setup(app):
    app.connect("builder-inited", _write_api_pages)
