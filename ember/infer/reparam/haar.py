"""Reparameterize a site by its Haar wavelet transform."""

from __future__ import annotations

from ember.distributions.transforms.haar import HaarTransform
from ember.infer.reparam.unit_jacobian import UnitJacobianReparam

__all__ = ["HaarReparam"]


class HaarReparam(UnitJacobianReparam):
    """Sample the Haar wavelet transform of a site (along ``dim``) as the site
    ``"<name>_haar"``: series with structure at several scales get coefficients
    that are closer to independent. The transform is orthonormal, so the Jacobian
    determinant is one and the model's density is unchanged.

    :param int dim: the (negative) event dim to transform along.
    :param bool flip: transform the reversed series (coarse scales at the end).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> d = dist.Normal(torch.zeros(4), 1.0).to_event(1)
        >>> model = lambda: ember.sample("x", d)
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": HaarReparam()})).get_trace()
        >>> sorted(n for n in tr.nodes if n.startswith("x"))
        ['x', 'x_haar']
    """

    def __init__(self, dim: int = -1, flip: bool = False, *, experimental_allow_batch=False):
        super().__init__(
            HaarTransform(dim=dim, flip=flip, cache_size=1),
            suffix="haar",
            experimental_allow_batch=experimental_allow_batch,
        )
