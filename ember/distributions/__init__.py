"""Distributions for ember: wrappers of every torch distribution, ember's own
families, constraints, transforms and flows.

``import ember.distributions as dist`` gives all of them.
"""

from ember.distributions import constraints
from ember.distributions.distribution import Distribution
from ember.distributions.score_parts import ScoreParts
from ember.distributions.torch import *  # noqa: F403
from ember.distributions.torch import __all__ as _torch_all
from ember.distributions.torch_distribution import (
    ExpandedDistribution,
    MaskedDistribution,
    TorchDistribution,
    TorchDistributionMixin,
)
from ember.util import enable_validation, is_validation_enabled
from torch.distributions import biject_to, kl_divergence, register_kl, transform_to

__all__ = [
    "Distribution",
    "ExpandedDistribution",
    "MaskedDistribution",
    "ScoreParts",
    "TorchDistribution",
    "TorchDistributionMixin",
    "biject_to",
    "constraints",
    "enable_validation",
    "is_validation_enabled",
    "kl_divergence",
    "register_kl",
    "transform_to",
] + list(_torch_all)
