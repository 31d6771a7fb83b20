"""Tensor operations with no model knowledge: log-space einsum and plated
sum-product contraction (tensor variable elimination) for enumeration,
vectorized indexing (:mod:`ember.ops.indexing`) and tensor utilities
(:mod:`ember.ops.tensor_utils`)."""

from ember.ops import tensor_utils  # noqa: F401  (registers cholesky_relative_jitter)
from ember.ops.contract import (
    IntractableError,
    LogFactor,
    ancestral_marginal,
    contract_to_scalar,
    contract_tree,
    marginal,
    total,
)
from ember.ops.einsum import align_dims, log_einsum
from ember.ops.indexing import Index, Vindex, index, vindex

__all__ = [
    "Index",
    "IntractableError",
    "Vindex",
    "LogFactor",
    "ancestral_marginal",
    "contract_to_scalar",
    "contract_tree",
    "align_dims",
    "index",
    "log_einsum",
    "marginal",
    "total",
    "vindex",
]
