"""GaussianScaleMixture: zero-mean Gaussians sharing coordinate scales, with
component-wise scale multipliers, sampled with pathwise gradients.

Component ``k`` is ``N(0, diag((component_scale[k] * coord_scale) ** 2))``.
This is the mixture of diagonal normals with ``locs = 0`` and
``scales[k, i] = component_scale[k] * coord_scale[i]``, so sampling reuses the
transport-equation gradients of
:mod:`ember.distributions.diag_normal_mixture`. Chained through the product,
they give the velocity ``z_i / coord_scale_i`` for ``coord_scale_i`` (every
component stretches coordinate ``i`` alike) and the responsibility-weighted
radial velocity ``r_k(z) z / component_scale_k`` for ``component_scale_k``.
"""

from __future__ import annotations

import torch
from torch.distributions import constraints

from ember.distributions.diag_normal_mixture import rsample_diag_normal_mixture
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape

_EMPTY = torch.Size()


class GaussianScaleMixture(TorchDistribution):
    """A mixture of ``K`` zero-mean diagonal Gaussians in ``D >= 2`` dims that differ by a scale.

    The covariance of component ``k`` is
    ``Sigma_ii = (component_scale[k] * coord_scale[i]) ** 2``; the weights are
    ``softmax(component_logits)``. :meth:`rsample` gives pathwise derivatives
    with respect to all parameters (Jankowiak & Karaletsos 2018,
    arXiv:1806.01856), for even and odd ``D``. ``D = 1`` is not supported. The
    parameters may carry batch dims on the left; they broadcast to the batch shape.

    :param torch.Tensor coord_scale: ``batch + (D,)`` positive coordinate scales.
    :param torch.Tensor component_logits: ``batch + (K,)`` softmax logits of the weights.
    :param torch.Tensor component_scale: ``batch + (K,)`` positive scale multipliers.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.GaussianScaleMixture(torch.ones(3), torch.zeros(2), torch.tensor([0.5, 2.0]))
        >>> z = d.rsample((4,))
        >>> z.shape, d.log_prob(z).shape, d.variance
        (torch.Size([4, 3]), torch.Size([4]), tensor([2.1250, 2.1250, 2.1250]))
    """

    arg_constraints = {
        "coord_scale": constraints.positive,
        "component_logits": constraints.real,
        "component_scale": constraints.positive,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        coord_scale: torch.Tensor,
        component_logits: torch.Tensor,
        component_scale: torch.Tensor,
        validate_args=None,
    ):
        params = {
            "coord_scale": coord_scale,
            "component_logits": component_logits,
            "component_scale": component_scale,
        }
        for name, value in params.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
            if value.dim() < 1:
                raise ValueError(f"{name} must have a rightmost dim, got a scalar")
        if component_scale.shape[-1] != component_logits.shape[-1]:
            raise ValueError(
                "component_scale and component_logits must both have K entries in their "
                f"rightmost dim, got shapes {tuple(component_scale.shape)} and "
                f"{tuple(component_logits.shape)}"
            )
        batch_shape = self.infer_shapes(**{k: v.shape for k, v in params.items()})[0]
        D = coord_scale.size(-1)
        if D < 2:
            raise ValueError(
                f"GaussianScaleMixture needs dimension D >= 2, got coord_scale of shape "
                f"{tuple(coord_scale.shape)}; for D = 1 use "
                "MixtureSameFamily(Categorical(logits), Normal(0, scale))"
            )
        K = component_logits.size(-1)
        self.coord_scale = coord_scale.expand(batch_shape + (D,))
        self.component_logits = component_logits.expand(batch_shape + (K,))
        self.component_scale = component_scale.expand(batch_shape + (K,))
        self.dim = D
        super().__init__(batch_shape, torch.Size((D,)), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, coord_scale, component_logits, component_scale):
        """``(batch_shape, event_shape)`` from parameter shapes: the broadcast of the
        batch dims (all dims but the rightmost) and ``(D,)``."""
        shapes = {
            "coord_scale": torch.Size(coord_scale),
            "component_logits": torch.Size(component_logits),
            "component_scale": torch.Size(component_scale),
        }
        try:
            batch_shape = broadcast_shape(*(s[:-1] for s in shapes.values()))
        except ValueError as e:
            shown = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
            raise ValueError(
                f"GaussianScaleMixture: the batch dims of the parameters do not broadcast: {shown}"
            ) from e
        return batch_shape, shapes["coord_scale"][-1:]

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        K = self.num_components
        new.coord_scale = self.coord_scale.expand(batch_shape + (self.dim,))
        new.component_logits = self.component_logits.expand(batch_shape + (K,))
        new.component_scale = self.component_scale.expand(batch_shape + (K,))
        new.dim = self.dim
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def num_components(self) -> int:
        return self.component_scale.size(-1)

    def _scales(self):
        # batch + (K, D)
        return self.component_scale.unsqueeze(-1) * self.coord_scale.unsqueeze(-2)

    @property
    def mean(self):
        return self.coord_scale.new_zeros(self.batch_shape + (self.dim,))

    @property
    def variance(self):
        pi = self.component_logits.softmax(-1)
        mix = (pi * self.component_scale.pow(2)).sum(-1, keepdim=True)
        return mix * self.coord_scale.pow(2)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        # sum_i log N(z_i; 0, s_k c_i) = -|z / c|^2 / (2 s_k^2) - D log s_k - sum_i log c_i - ...
        r2 = (value / self.coord_scale).pow(2).sum(-1, keepdim=True)
        s = self.component_scale
        log_pi = self.component_logits.log_softmax(-1)
        log_comp = -0.5 * r2 / s.pow(2) - self.dim * s.log()
        norm = self.coord_scale.log().sum(-1) + 0.5 * self.dim * torch.log(
            torch.tensor(2 * torch.pi, dtype=value.dtype, device=value.device)
        )
        return torch.logsumexp(log_pi + log_comp, dim=-1) - norm

    def rsample(self, sample_shape=_EMPTY):
        scales = self._scales()
        locs = scales.new_zeros(()).expand(scales.shape)
        return rsample_diag_normal_mixture(locs, scales, self.component_logits, sample_shape)

    def sample(self, sample_shape=_EMPTY):
        with torch.no_grad():
            return self.rsample(sample_shape)
