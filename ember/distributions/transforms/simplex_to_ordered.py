"""Probabilities of ordered categories onto the cutpoints between them."""

from __future__ import annotations

import torch
from torch.distributions import constraints as torch_constraints
from torch.distributions.transforms import Transform
from torch.nn.functional import softplus

from ember.distributions import constraints


class SimplexToOrderedTransform(Transform):
    """A probability vector ``x`` of ``K`` ordered categories onto ``K - 1`` cutpoints:
    ``y_k = anchor_point + logit(x_0 + ... + x_k)``.

    These are the cutpoints at which a logistic variable centred on
    ``anchor_point`` falls into each category with the probabilities ``x``
    (the inverse takes differences of the logistic CDF at the cutpoints). It
    serves as a prior on cutpoints of ordinal regression, through a Dirichlet
    on the category probabilities (Betancourt, "Ordinal Regression", 2019).

    Measured on the first ``K - 1`` entries of ``x`` (the last one is
    determined), ``log|det J| = sum_k -log(s_k (1 - s_k))`` with
    ``s_k = sigmoid(y_k - anchor_point)``. Because ``x`` has one more entry
    than ``y``, the transform is not marked ``bijective``.

    :param anchor_point: a number or tensor broadcasting against ``x.shape[:-1]``
        (default 0).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import SimplexToOrderedTransform
        >>> t = SimplexToOrderedTransform()
        >>> y = t(torch.tensor([0.5, 0.25, 0.25]))
        >>> y
        tensor([0.0000, 1.0986])
        >>> t.inv(y)
        tensor([0.5000, 0.2500, 0.2500])
    """

    domain = torch_constraints.simplex
    codomain = constraints.ordered_vector

    def __init__(self, anchor_point=None, cache_size: int = 0) -> None:
        super().__init__(cache_size=cache_size)
        if anchor_point is None:
            anchor_point = 0.0
        self.anchor_point = torch.as_tensor(anchor_point, dtype=torch.get_default_dtype())

    def with_cache(self, cache_size: int = 1) -> SimplexToOrderedTransform:
        if self._cache_size == cache_size:
            return self
        return SimplexToOrderedTransform(self.anchor_point, cache_size=cache_size)

    def __eq__(self, other):
        if not isinstance(other, SimplexToOrderedTransform):
            return False
        return self.anchor_point.shape == other.anchor_point.shape and bool(
            torch.equal(self.anchor_point, other.anchor_point)
        )

    def __hash__(self):
        return hash(SimplexToOrderedTransform)

    def _anchor(self, value):
        return self.anchor_point.to(dtype=value.dtype, device=value.device).unsqueeze(-1)

    def _call(self, x):
        if x.dim() < 1 or x.size(-1) < 2:
            raise ValueError(
                "SimplexToOrderedTransform: input must have shape (..., K) with K >= 2, got "
                f"{tuple(x.shape)}"
            )
        cdf = x[..., :-1].cumsum(-1)
        return torch.logit(cdf) + self._anchor(x)

    def _inverse(self, y):
        cdf = torch.sigmoid(y - self._anchor(y))
        zero = torch.zeros_like(cdf[..., :1])
        padded = torch.cat([zero, cdf, zero + 1], dim=-1)
        return padded[..., 1:] - padded[..., :-1]

    def log_abs_det_jacobian(self, x, y):
        # dy_k / ds_k = 1 / (s_k (1 - s_k)) and s = cumsum(x) has unit Jacobian
        centred = y - self._anchor(y)
        return (softplus(centred) + softplus(-centred)).sum(-1)

    def forward_shape(self, shape):
        if len(shape) < 1:
            raise ValueError("SimplexToOrderedTransform.forward_shape: needs at least one dim")
        return tuple(shape[:-1]) + (shape[-1] - 1,)

    def inverse_shape(self, shape):
        if len(shape) < 1:
            raise ValueError("SimplexToOrderedTransform.inverse_shape: needs at least one dim")
        return tuple(shape[:-1]) + (shape[-1] + 1,)
