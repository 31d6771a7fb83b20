"""ember.nn sits at the bottom layer and exports the names of ember.nn.module lazily.

``import ember.nn`` runs ``ember/__init__.py`` first (which loads the whole
library), so the layering of ``ember.nn`` itself is checked in a subprocess where
the parent package ``ember`` is a bare package object: importing ``ember.nn`` then
loads exactly ``ember.nn`` and ``ember.nn.auto_reg_nn``.
"""

import importlib.util
import pathlib
import subprocess
import sys
import textwrap

import pytest

import ember.nn

ROOT = pathlib.Path(__file__).resolve().parents[2]
HAS_MODULE = importlib.util.find_spec("ember.nn.module") is not None

# A bare ``ember`` package: submodules import from their own files, nothing else runs.
BARE_PARENT = textwrap.dedent(
    f"""
    import sys, types
    ember = types.ModuleType("ember")
    ember.__path__ = [{str(ROOT / "ember")!r}]
    sys.modules["ember"] = ember
    """
)


def run(code):
    result = subprocess.run(
        [sys.executable, "-c", BARE_PARENT + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_ember_nn_loads_no_runtime_module():
    out = run(
        """
        import ember.nn
        print(sorted(m for m in sys.modules if m.startswith("ember")))
        """
    )
    assert out == "['ember', 'ember.nn', 'ember.nn.auto_reg_nn']"
    for layer in ("ember.primitives", "ember.poutine", "ember.distributions"):
        assert layer not in out


def test_dir_lists_the_lazy_names():
    names = dir(ember.nn)
    for name in ember.nn.LAZY_NAMES:
        assert name in names
    assert set(ember.nn.LAZY_NAMES) <= set(ember.nn.__all__)
    assert {"DenseNN", "ConditionalDenseNN", "AutoRegressiveNN", "MaskedLinear"} <= set(names)


def test_a_lazy_name_comes_from_ember_nn_module_on_first_use():
    # a stand-in module object (not part of ember) plays ember.nn.module
    out = run(
        """
        import ember.nn
        assert "PyroParam" not in vars(ember.nn)
        fake = types.ModuleType("ember.nn.module")
        fake.PyroParam = marker = object()
        sys.modules["ember.nn.module"] = fake
        ember.nn.module = fake
        assert ember.nn.PyroParam is marker
        assert vars(ember.nn)["PyroParam"] is marker  # cached: no second lookup
        try:
            ember.nn.PyroSample
        except AttributeError as e:
            print(e)
        """
    )
    assert out == "ember.nn has no attribute 'PyroSample' (ember.nn.module does not define it)"


@pytest.mark.skipif(HAS_MODULE, reason="ember.nn.module exists")
def test_a_missing_ember_nn_module_is_a_clear_attribute_error():
    with pytest.raises(AttributeError, match=r"ember\.nn\.module is not available"):
        _ = ember.nn.PyroModule
    assert not hasattr(ember.nn, "PyroSample")


def test_unknown_names_are_plain_attribute_errors():
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchNet'"):
        _ = ember.nn.NoSuchNet
