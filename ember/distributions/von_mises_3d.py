"""VonMises3D: the von Mises-Fisher distribution on the unit sphere of R^3."""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from ember.distributions import constraints as ember_constraints
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.validation import fresh_instance

__all__ = ["VonMises3D"]

_EMPTY = torch.Size()


def _log_sinh_ratio_minus_k(kappa: torch.Tensor) -> torch.Tensor:
    """``log(sinh(k) / k) - k``, accurate from 0 to very large ``k``.

    Subtracting ``k`` here (and from ``concentration . x`` at the call site)
    avoids cancelling two large numbers when ``k`` is big.
    """
    small = kappa < 0.1
    k2 = kappa * kappa
    series = k2 / 6 - k2 * k2 / 180 + k2 * k2 * k2 / 2835 - kappa
    big = kappa.clamp_min(0.1)
    # sinh(k) = -exp(k) * expm1(-2k) / 2
    direct = torch.log(-torch.expm1(-2 * big) / (2 * big))
    return torch.where(small, series, direct)


class VonMises3D(TorchDistribution):
    """Von Mises-Fisher distribution on the unit sphere of ``R^3``.

    ``concentration`` is one vector holding both direction and strength: its
    direction is the mean direction ``mu`` and its norm the concentration
    ``k``. Values are unit 3-vectors (Cartesian coordinates) and the density
    with respect to the area measure of the sphere is
    ``k / (4 pi sinh(k)) * exp(concentration . x)``. Sampling uses Wood's
    (1994) algorithm, which is exact without rejection on the 2-sphere. See
    :class:`VonMises` for the circular cousin.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.VonMises3D(torch.tensor([0.0, 0.0, 5.0]))
        >>> d.batch_shape, d.event_shape
        (torch.Size([]), torch.Size([3]))
        >>> d.log_prob(torch.tensor([0.0, 0.0, 1.0]))
        tensor(-0.2284)
        >>> x = d.sample((4,))
        >>> torch.allclose(x.norm(dim=-1), torch.ones(4))
        True
    """

    arg_constraints = {"concentration": constraints.real_vector}
    support = ember_constraints.sphere
    has_rsample = False

    def __init__(self, concentration: torch.Tensor, validate_args=None):
        if not isinstance(concentration, torch.Tensor) or concentration.dim() < 1:
            raise ValueError(
                "VonMises3D: concentration must be a tensor whose rightmost dim has size 3, "
                f"got {concentration!r}"
            )
        if concentration.size(-1) != 3:
            raise ValueError(
                "VonMises3D: concentration must have rightmost dim of size 3 (a 3-vector), "
                f"got shape {tuple(concentration.shape)}"
            )
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], torch.Size((3,)), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, concentration):
        """``(batch_shape, event_shape)`` from the shape of ``concentration``."""
        concentration = torch.Size(concentration)
        return concentration[:-1], concentration[-1:]

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = fresh_instance(self, VonMises3D, _instance)
        new.concentration = self.concentration.expand(batch_shape + (3,))
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            if value.size(-1) != 3:
                raise ValueError(
                    f"VonMises3D.log_prob expects unit 3-vectors, got shape {tuple(value.shape)}"
                )
            self._validate_sample(value)
        kappa = torch.linalg.vector_norm(self.concentration, dim=-1)
        shifted_log_normalizer = math.log(4 * math.pi) + _log_sinh_ratio_minus_k(kappa)
        return ((self.concentration * value).sum(-1) - kappa) - shifted_log_normalizer

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        """Draw by Wood, A. T. A. (1994), "Simulation of the von Mises Fisher
        distribution", Communications in Statistics - Simulation and Computation."""
        shape = torch.Size(sample_shape) + self.batch_shape
        c = self.concentration.detach()
        with torch.no_grad():
            kappa = torch.linalg.vector_norm(c, dim=-1).double()
            mu = c.double() / kappa.unsqueeze(-1).clamp_min(torch.finfo(torch.float64).tiny)
            # A kappa of zero has no direction; any unit vector serves.
            mu = torch.where(kappa.unsqueeze(-1) > 0, mu, mu.new_tensor([0.0, 0.0, 1.0]))
            u = torch.rand(shape, dtype=torch.float64, device=c.device)
            # On the 2-sphere w = mu . x has density proportional to exp(kappa w) on [-1, 1]:
            # invert its CDF, w = 1 + log(u + (1 - u) exp(-2 kappa)) / kappa.
            k = kappa.expand(shape)
            safe = k.clamp_min(1e-12)
            w = 1 + torch.log(torch.exp(-2 * safe) - u * torch.expm1(-2 * safe)) / safe
            w = torch.where(k < 1e-12, 2 * u - 1, w).clamp(-1.0, 1.0)
            # A uniform direction orthogonal to mu.
            mu = mu.expand(shape + (3,))
            g = torch.randn(shape + (3,), dtype=torch.float64, device=c.device)
            v = g - (g * mu).sum(-1, keepdim=True) * mu
            v = v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)
            x = w.unsqueeze(-1) * mu + (1 - w * w).clamp_min(0).sqrt().unsqueeze(-1) * v
            return x.to(c.dtype)

    @property
    def mean(self) -> torch.Tensor:
        """``(coth(k) - 1/k) * mu``, the mean of the unit vectors (shorter than 1)."""
        c = self.concentration
        kappa = torch.linalg.vector_norm(c, dim=-1, keepdim=True)
        small = kappa < 1e-3
        safe = kappa.clamp_min(1e-3)
        # (coth k - 1/k) / k, with its series k^2 ... near 0: 1/3 - k^2/45
        ratio = torch.where(small, 1 / 3 - kappa**2 / 45, (1 / torch.tanh(safe) - 1 / safe) / safe)
        return ratio * c
