"""A registry of global settings, readable and changeable in one place.

Modules register a setting once, naming where its value lives::

    @settings.register("binomial_approx_sample_thresh", __name__,
                       "Binomial.approx_sample_thresh")
    def _validate(value): ...

Then users read and change them without knowing where they are stored::

    >>> from ember import settings
    >>> import ember.distributions  # registers the Binomial settings
    >>> settings.get("binomial_approx_sample_thresh")
    inf
    >>> with settings.context(binomial_approx_sample_thresh=1e6):
    ...     settings.get("binomial_approx_sample_thresh")
    1000000.0
    >>> settings.get("binomial_approx_sample_thresh")
    inf
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Any, Callable, Dict, Optional, Tuple

# alias -> (module name, dotted attribute path, validator or None)
_REGISTRY: Dict[str, Tuple[str, str, Optional[Callable[[Any], None]]]] = {}


def _resolve(alias: str):
    try:
        modulename, path, validator = _REGISTRY[alias]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none registered yet)"
        raise KeyError(f"no ember setting named {alias!r}; known settings: {known}") from None
    obj = importlib.import_module(modulename)
    *parents, attr = path.split(".")
    for name in parents:
        obj = getattr(obj, name)
    return obj, attr, validator


def get(alias: Optional[str] = None) -> Any:
    """The value of one setting, or a dict of all of them when ``alias`` is None."""
    if alias is None:
        return {name: get(name) for name in sorted(_REGISTRY)}
    obj, attr, _ = _resolve(alias)
    return getattr(obj, attr)


def set(**kwargs) -> None:  # noqa: A001 - mirrors Pyro's settings.set
    """Set one or more settings, validating each value first."""
    for alias, value in kwargs.items():
        obj, attr, validator = _resolve(alias)
        if validator is not None:
            validator(value)
        setattr(obj, attr, value)


@contextmanager
def context(**kwargs):
    """Temporarily set settings inside a ``with`` block, restoring them after."""
    old = {alias: get(alias) for alias in kwargs}
    try:
        set(**kwargs)
        yield
    finally:
        set(**old)


def register(alias: str, modulename: str, varname: str, validator: Optional[Callable] = None):
    """Register a setting stored at ``modulename.varname`` (a dotted path).

    Call it in the module that holds the value. ``validator(value)``, when given,
    raises on a bad value; it checks the current value at once and every value
    passed to :func:`set` or :func:`context`. Used as a decorator (without
    ``validator``) it registers the decorated function as the validator.

    Example::

        >>> from ember import settings
        >>> import ember.util  # registers the validation settings
        >>> settings.registered()["validate_poutine"]
        ('ember.util', '_POUTINE_VALIDATION_ENABLED')
    """
    if not isinstance(alias, str) or not alias.isidentifier():
        raise ValueError(f"a setting's alias must be a Python identifier, got {alias!r}")
    if alias in _REGISTRY and _REGISTRY[alias][:2] != (modulename, varname):
        raise ValueError(f"setting {alias!r} is already registered for {_REGISTRY[alias][:2]}")
    _REGISTRY[alias] = (modulename, varname, validator)
    if validator is not None:
        validator(get(alias))
        return validator

    def decorator(fn: Callable) -> Callable:
        return register(alias, modulename, varname, fn)

    return decorator


def registered() -> Dict[str, Tuple[str, str]]:
    """Where each registered setting lives, as ``{alias: (module, attribute)}``."""
    return {k: v[:2] for k, v in _REGISTRY.items()}
