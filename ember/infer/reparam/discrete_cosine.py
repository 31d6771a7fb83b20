"""Reparameterize a site by its discrete cosine transform."""

from __future__ import annotations

from ember.distributions.transforms.discrete_cosine import DiscreteCosineTransform
from ember.infer.reparam.unit_jacobian import UnitJacobianReparam

__all__ = ["DiscreteCosineReparam"]


class DiscreteCosineReparam(UnitJacobianReparam):
    """Sample the discrete cosine transform of a site (along ``dim``) as the site
    ``"<name>_dct"``: smooth series become a few large coefficients, which often
    decorrelates them for SVI or HMC. The transform is orthonormal (``smooth``
    reweights the frequencies by ``(k + 1/2)^smooth`` with a geometric mean of one),
    so the Jacobian determinant is one and the model's density is unchanged.

    :param int dim: the (negative) event dim to transform along.
    :param float smooth: the frequency weighting exponent (0: plain DCT-II).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> d = dist.Normal(torch.zeros(4), 1.0).to_event(1)
        >>> model = lambda: ember.sample("x", d)
        >>> tr = ember.poutine.trace(
        ...     ember.poutine.reparam(model, {"x": DiscreteCosineReparam()})).get_trace()
        >>> sorted(n for n in tr.nodes if n.startswith("x"))
        ['x', 'x_dct']
    """

    def __init__(self, dim: int = -1, smooth: float = 0.0, *, experimental_allow_batch=False):
        super().__init__(
            DiscreteCosineTransform(dim=dim, smooth=smooth, cache_size=1),
            suffix="dct",
            experimental_allow_batch=experimental_allow_batch,
        )
