"""Tensor operations with no model knowledge: log-space einsum and plated
sum-product contraction (tensor variable elimination) for enumeration,
vectorized indexing (:mod:`ember.ops.indexing`) and tensor utilities
(:mod:`ember.ops.tensor_utils`)."""

# tensor_utils registers cholesky_relative_jitter; stats (sample statistics and MCMC
# diagnostics), streaming, arrowhead and provenance are reachable as submodules.
from ember.ops import (  # noqa: F401
    arrowhead,
    hessian,
    jit,
    linalg,
    newton,
    packed,
    provenance,
    rings,
    special,
    ssm_gp,
    stats,
    streaming,
    tensor_utils,
)
from ember.ops.contract import (
    IntractableError,
    LogFactor,
    ancestral_marginal,
    contract_to_scalar,
    contract_tree,
    marginal,
    total,
)

# with the einsum backends, reachable as ember.ops.einsum.torch_log etc.
from ember.ops.einsum import (  # noqa: F401
    align_dims,
    log_einsum,
    torch_log,
    torch_map,
    torch_marginal,
    torch_sample,
)
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
