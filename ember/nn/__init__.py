"""Neural-network building blocks for ember.

The pure-torch networks live in :mod:`ember.nn.auto_reg_nn` and are imported
here directly: :class:`MaskedLinear`, the MADE networks
:class:`AutoRegressiveNN` and :class:`ConditionalAutoRegressiveNN` used by the
autoregressive flows, and the dense networks :class:`DenseNN` and
:class:`ConditionalDenseNN`.

The modules whose parameters and samples go through ember's effect handlers
(``PyroModule``, ``PyroParam``, ``PyroSample``, ...) live in
:mod:`ember.nn.module`, which sits above :mod:`ember.primitives` in the layer
order while this package sits at the bottom. They are exported lazily (PEP
562): ``ember.nn.PyroModule`` imports :mod:`ember.nn.module` on first use, so
``import ember.nn`` never loads the handler stack.

Example::

    >>> import ember.nn
    >>> "PyroModule" in dir(ember.nn)
    True
    >>> ember.nn.DenseNN(2, [4])
    DenseNN(
      (nonlinearity): ReLU()
      (layers): ModuleList(
        (0): Linear(in_features=2, out_features=4, bias=True)
        (1): Linear(in_features=4, out_features=2, bias=True)
      )
    )
"""

from ember.nn.auto_reg_nn import (
    AutoRegressiveNN,
    ConditionalAutoRegressiveNN,
    ConditionalDenseNN,
    DenseNN,
    MaskedLinear,
    create_mask,
    sample_mask_indices,
)

#: Names exported from :mod:`ember.nn.module`, imported on first access.
LAZY_NAMES = (
    "PyroModule",
    "PyroModuleList",
    "PyroParam",
    "PyroSample",
    "clear",
    "module_local_param_enabled",
    "pyro_method",
    "to_pyro_module_",
)

_LAZY_MODULE = "ember.nn.module"

__all__ = [
    "AutoRegressiveNN",
    "ConditionalAutoRegressiveNN",
    "ConditionalDenseNN",
    "DenseNN",
    "MaskedLinear",
    "create_mask",
    "sample_mask_indices",
    *LAZY_NAMES,
]


def __getattr__(name):
    """Import :mod:`ember.nn.module` for one of :data:`LAZY_NAMES` (PEP 562)."""
    if name not in LAZY_NAMES:
        raise AttributeError(f"module 'ember.nn' has no attribute {name!r}")
    try:
        import ember.nn.module  # the allowed lazy import: ember.nn.module is a higher layer
    except ModuleNotFoundError as e:
        if e.name != _LAZY_MODULE:
            raise  # a missing dependency inside ember.nn.module: report it as it is
        raise AttributeError(
            f"ember.nn has no attribute {name!r} ({_LAZY_MODULE} is not available)"
        ) from e
    try:
        value = getattr(ember.nn.module, name)
    except AttributeError:
        raise AttributeError(
            f"ember.nn has no attribute {name!r} ({_LAZY_MODULE} does not define it)"
        ) from None
    globals()[name] = value  # later lookups find it without calling __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(LAZY_NAMES))
