"""ProjectedNormal: the direction of an isotropic normal vector, on the unit sphere."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints as torch_constraints

from ember.distributions import constraints
from ember.distributions.torch_distribution import TorchDistribution

__all__ = ["ProjectedNormal", "safe_normalize"]

_EMPTY = torch.Size()


def safe_normalize(x: torch.Tensor, *, p: int = 2) -> torch.Tensor:
    """``x / |x|`` along the last dim; the zero vector maps to ``(1, 0, ..., 0)``.

    Example::

        >>> safe_normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        tensor([[0.6000, 0.8000],
                [1.0000, 0.0000]])
    """
    x = x / torch.linalg.vector_norm(x, ord=p, dim=-1, keepdim=True).clamp(
        min=torch.finfo(x.dtype).tiny
    )
    # a zero vector stays zero above; give it the first basis vector
    first = torch.zeros_like(x)
    first[..., 0] = 1
    return torch.where((x == 0).all(-1, keepdim=True), first, x)


def _radial_moments(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``log of integral_0^inf r^(dim-1) exp(-(r - t)^2 / 2) dr``.

    With ``I_k`` that integral for ``r^k``: ``I_0 = sqrt(pi/2) erfc(-t / sqrt 2)``,
    ``I_1 = exp(-t^2/2) + t I_0`` and ``I_k = (k - 1) I_(k-2) + t I_(k-1)``
    (integration by parts).
    """
    i_prev = math.sqrt(math.pi / 2) * torch.erfc(-t / math.sqrt(2))
    if dim == 1:
        result = i_prev
    else:
        i_cur = torch.exp(-0.5 * t * t) + t * i_prev
        for k in range(2, dim):
            i_prev, i_cur = i_cur, (k - 1) * i_prev + t * i_cur
        result = i_cur
    return result.clamp(min=torch.finfo(t.dtype).tiny).log()


class ProjectedNormal(TorchDistribution):
    """``x / |x|`` for ``x ~ Normal(concentration, I)``: a distribution on the unit sphere.

    ``concentration``'s direction is the mode and its length the concentration
    (zero gives the uniform distribution on the sphere). The density with respect to
    the sphere's surface measure is, with ``t = <concentration, u>``,
    ``(2 pi)^(-d/2) exp(-(|c|^2 - t^2) / 2) * integral_0^inf r^(d-1) exp(-(r - t)^2 / 2) dr``,
    evaluated in closed form for every dimension ``d >= 2``. Draws are reparameterized.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.ProjectedNormal(torch.zeros(3))
        >>> d.log_prob(torch.tensor([1.0, 0.0, 0.0])).exp() * 4 * torch.pi  # uniform
        tensor(1.0000)
        >>> torch.allclose(d.sample((2,)).norm(dim=-1), torch.ones(2))
        True
    """

    arg_constraints = {"concentration": torch_constraints.real_vector}
    support = constraints.sphere
    has_rsample = True

    def __init__(self, concentration, *, validate_args=None):
        if not isinstance(concentration, torch.Tensor) or concentration.dim() < 1:
            raise ValueError(
                "ProjectedNormal: concentration must be a tensor with a rightmost event dim, "
                f"got {concentration!r}"
            )
        self.concentration = concentration
        super().__init__(
            concentration.shape[:-1], concentration.shape[-1:], validate_args=validate_args
        )

    @staticmethod
    def infer_shapes(concentration):
        """``(batch_shape, event_shape)`` from the shape of ``concentration``."""
        concentration = torch.Size(concentration)
        return concentration[:-1], concentration[-1:]

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.concentration = self.concentration.expand(batch_shape + self.event_shape)
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self):
        """The mode direction (the centroid on the sphere), ``concentration / |concentration|``."""
        return safe_normalize(self.concentration)

    @property
    def mode(self):
        return safe_normalize(self.concentration)

    def rsample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        c = self.concentration
        x = c + torch.randn(shape, dtype=c.dtype, device=c.device)
        return safe_normalize(x)

    def log_prob(self, value):
        if self._validate_args:
            if value.shape[-1:] != self.event_shape:
                raise ValueError(
                    f"ProjectedNormal.log_prob: expected event shape {tuple(self.event_shape)}, "
                    f"got value of shape {tuple(value.shape)}"
                )
            self._validate_sample(value)
        c = self.concentration
        d = c.size(-1)
        t = (c * value).sum(-1)
        r2 = (c * c).sum(-1) - t * t
        return -0.5 * d * math.log(2 * math.pi) - 0.5 * r2 + _radial_moments(t, d)
