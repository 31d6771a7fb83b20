"""Neural-network building blocks for ember (pure torch).

:class:`MaskedLinear` and the MADE networks :class:`AutoRegressiveNN` and
:class:`ConditionalAutoRegressiveNN` used by the autoregressive flows in
:mod:`ember.distributions.transforms`.
"""

from ember.nn.auto_reg_nn import (
    AutoRegressiveNN,
    ConditionalAutoRegressiveNN,
    MaskedLinear,
    create_mask,
    sample_mask_indices,
)

__all__ = [
    "AutoRegressiveNN",
    "ConditionalAutoRegressiveNN",
    "MaskedLinear",
    "create_mask",
    "sample_mask_indices",
]
