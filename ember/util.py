"""Bottom-layer utilities shared by every part of ember.

Holds the one validation switch that distributions, the runtime and inference
all read, and :func:`set_rng_seed` for reproducible runs.
"""

from __future__ import annotations

import random
import warnings

import torch

_VALIDATION_ENABLED = True
_WARNED = set()


def enable_validation(is_validate: bool = True) -> None:
    """Turn argument and shape validation on or off, everywhere at once.

    Validation is on by default. It checks distribution parameters and values
    against their constraints and site shapes against the plates in scope.
    Turning it off removes those checks (and their host syncs) from the hot
    path.

    Example::

        >>> import ember
        >>> ember.enable_validation(False)
        >>> ember.util.is_validation_enabled()
        False
        >>> ember.enable_validation(True)
    """
    global _VALIDATION_ENABLED
    _VALIDATION_ENABLED = bool(is_validate)
    torch.distributions.Distribution.set_default_validate_args(bool(is_validate))


def is_validation_enabled() -> bool:
    """Whether ember validates arguments and shapes (see :func:`enable_validation`)."""
    return _VALIDATION_ENABLED


class validation_enabled:
    """Context manager that sets validation on (or off) inside its block.

    Example::

        >>> import ember
        >>> with ember.util.validation_enabled(False):
        ...     ember.util.is_validation_enabled()
        False
    """

    def __init__(self, is_validate: bool = True):
        self.is_validate = is_validate

    def __enter__(self):
        self._old = _VALIDATION_ENABLED
        enable_validation(self.is_validate)
        return self

    def __exit__(self, *exc):
        enable_validation(self._old)
        return False


def set_rng_seed(rng_seed: int) -> None:
    """Seed torch, Python's ``random`` and NumPy (when installed) at once.

    Example::

        >>> import ember, torch
        >>> ember.set_rng_seed(0); a = torch.randn(2)
        >>> ember.set_rng_seed(0); b = torch.randn(2)
        >>> bool((a == b).all())
        True
    """
    torch.manual_seed(rng_seed)
    random.seed(rng_seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional at this layer
        return
    np.random.seed(rng_seed)


def warn_once(key: str, message: str, category=FutureWarning, stacklevel: int = 3) -> None:
    """Issue ``message`` as a warning the first time ``key`` is seen in this process."""
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(message, category, stacklevel=stacklevel)


enable_validation(True)
