"""Tensor operations for exact enumeration: log-space einsum and plated
sum-product contraction (tensor variable elimination)."""

from ember.ops.contract import (
    IntractableError,
    LogFactor,
    ancestral_marginal,
    contract_to_scalar,
    contract_tree,
    marginal,
    total,
)
from ember.ops.einsum import log_einsum

__all__ = [
    "IntractableError",
    "LogFactor",
    "ancestral_marginal",
    "contract_to_scalar",
    "contract_tree",
    "log_einsum",
    "marginal",
    "total",
]
