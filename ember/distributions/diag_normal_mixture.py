"""MixtureOfDiagNormals: a mixture of diagonal Gaussians with pathwise gradients.

Sampling picks a component ``k`` and draws ``z = locs[k] + coord_scale[k] * eps``.
That draw is not differentiable in the mixture weights, so gradients flow
through :class:`_MixtureOfDiagNormalsSample`, a custom autograd function whose
backward pass applies velocity fields solving the transport equation
``d/dtheta q + div(q v) = 0`` (Jankowiak & Karaletsos 2018, arXiv:1806.01856):

* ``locs[k]`` and ``coord_scale[k]``: the reparameterization velocity of
  component ``k`` weighted by its responsibility ``pi_k q_k(z) / q(z)``;
* ``component_logits``: the implicit (Knothe-Rosenblatt) velocity. The map
  ``F_j(z) = P(Z_j <= z_j | z_1..z_{j-1})`` sends ``q`` to the uniform
  distribution; holding ``F(z, theta)`` fixed gives
  ``dz/dtheta = -(dF/dz)^{-1} dF/dtheta``, with a lower-triangular ``dF/dz``
  whose diagonal holds the conditional densities.

Each field is exact, so the gradients are unbiased, and each decays like the
density in the tails, so they have finite variance for polynomial costs. (The
logits field depends on the order of the coordinates; any order is unbiased.)
A radial field built from incomplete gamma functions also solves the transport
equation for the logits, but it decays only polynomially, which makes the
estimator's variance infinite for quadratic costs; ember does not use it.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from ember.distributions.torch_distribution import TorchDistribution

_EMPTY = torch.Size()

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _component_terms(z, locs, coord_scale):
    """Whitened coordinates ``(z - locs) / coord_scale`` and per-coordinate log densities."""
    x = (z.unsqueeze(-2) - locs) / coord_scale
    log_dens = -0.5 * x * x - coord_scale.log() - _HALF_LOG_2PI
    return x, log_dens


class _MixtureOfDiagNormalsSample(torch.autograd.Function):
    """``z = locs[which] + coord_scale[which] * eps`` with transport-equation gradients."""

    @staticmethod
    def forward(ctx, locs, coord_scale, component_logits, which, eps):
        z = locs[which] + coord_scale[which] * eps
        ctx.save_for_backward(locs, coord_scale, component_logits, z)
        return z

    @staticmethod
    def backward(ctx, grad_z):
        locs, coord_scale, component_logits, z = ctx.saved_tensors
        dim = locs.size(-1)
        g = grad_z.reshape(-1, dim)
        z = z.reshape(-1, dim)
        x, log_dens = _component_terms(z, locs, coord_scale)  # (N, K, D)
        log_pi = component_logits.log_softmax(-1)

        grad_locs = grad_scale = grad_logits = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            resp = (log_pi + log_dens.sum(-1)).softmax(-1)  # (N, K)
            if ctx.needs_input_grad[0]:
                grad_locs = resp.t() @ g
            if ctx.needs_input_grad[1]:
                grad_scale = torch.einsum("nk,nkd->kd", resp, g.unsqueeze(-2) * x)
        if ctx.needs_input_grad[2]:
            grad_logits = _implicit_logits_grad(g, x, log_dens, log_pi, coord_scale)
        return grad_locs, grad_scale, grad_logits, None, None


def _implicit_logits_grad(g, x, log_dens, log_pi, coord_scale):
    """Vector-Jacobian product of the Knothe-Rosenblatt velocity for the logits.

    ``W[n, k, j]`` are the component weights of the conditional of coordinate
    ``j`` given the earlier coordinates; ``F[n, j]`` is that conditional CDF.
    """
    # exclusive cumulative sum over coordinates: condition on z_1..z_{j-1}
    prefix = log_dens.cumsum(-1) - log_dens
    W = (log_pi.unsqueeze(-1) + prefix).softmax(-2)  # (N, K, D)
    Phi = torch.special.ndtr(x)
    WPhi = W * Phi
    F = WPhi.sum(-2)  # (N, D)
    # (N, D), the diagonal of dF/dz; clamped so a sample far in a tail cannot divide by 0
    cond_density = (W * log_dens.exp()).sum(-2).clamp(min=torch.finfo(g.dtype).tiny)
    # d log q_k(z_i) / d z_i, which moves the weights of later coordinates
    score = -x / coord_scale  # (N, K, D)
    # J[n, j, i] = sum_k W_kj (Phi_kj - F_j) score_ki for i < j
    off = torch.einsum("nkj,nki->nji", WPhi, score) - F.unsqueeze(-1) * torch.einsum(
        "nkj,nki->nji", W, score
    )
    J = off.tril(-1) + torch.diag_embed(cond_density)
    lam = torch.linalg.solve_triangular(J.transpose(-1, -2), g.unsqueeze(-1), upper=True)
    lam = lam.squeeze(-1)  # (N, D)
    dF_dlogits = W * (Phi - F.unsqueeze(-2))  # (N, K, D)
    return -torch.einsum("nj,nkj->k", lam, dF_dlogits)


def check_parameter_rank(name: str, value, dim: int) -> None:
    """Raise unless the unbatched mixture parameter ``value`` is a tensor with ``dim`` dims.

    A TypeError for anything but a tensor, a ValueError naming ``name`` and the
    shape otherwise (batches of mixtures come from ``.expand()``).

    Example::

        >>> check_parameter_rank("locs", torch.zeros(3, 2), 2)
        >>> check_parameter_rank("locs", torch.zeros(2), 2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: locs must have 2 dim(s) (batched parameters are not supported), ...
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != dim:
        raise ValueError(
            f"{name} must have {dim} dim(s) (batched parameters are not supported), "
            f"got shape {tuple(value.shape)}; use .expand() for a batch of mixtures"
        )


def rsample_diag_normal_mixture(locs, coord_scale, component_logits, sample_shape=_EMPTY):
    """Draw ``sample_shape`` points of the mixture of diagonal normals with pathwise gradients.

    Component ``k`` (chosen with weight ``softmax(component_logits)_k``) is
    ``N(locs[k], diag(coord_scale[k] ** 2))``; ``locs`` and ``coord_scale`` are
    ``K x D``. Gradients with respect to all three parameters follow the
    transport-equation velocity fields described in this module's docstring.

    Example::

        >>> locs = torch.zeros(2, 3, requires_grad=True)
        >>> z = rsample_diag_normal_mixture(locs, torch.ones(2, 3), torch.zeros(2), (4,))
        >>> z.shape, z.requires_grad
        (torch.Size([4, 3]), True)
    """
    sample_shape = torch.Size(sample_shape)
    which = torch.distributions.Categorical(logits=component_logits).sample(sample_shape)
    eps = torch.randn(sample_shape + locs.shape[-1:], dtype=locs.dtype, device=locs.device)
    return _MixtureOfDiagNormalsSample.apply(locs, coord_scale, component_logits, which, eps)


class MixtureOfDiagNormals(TorchDistribution):
    """A mixture of ``K`` Gaussians in ``D >= 2`` dims, each with its own mean and diagonal scale.

    ``q(z) = sum_k softmax(component_logits)_k N(z; locs[k], diag(coord_scale[k] ** 2))``.
    :meth:`rsample` is reparameterized: gradients with respect to all three
    parameters are pathwise derivatives from exact transport-equation velocity
    fields (Jankowiak & Karaletsos 2018, arXiv:1806.01856), for even and odd
    ``D``. Parameters are not batched; ``D = 1`` is not supported.

    :param torch.Tensor locs: ``K x D`` component means.
    :param torch.Tensor coord_scale: ``K x D`` positive component scales.
    :param torch.Tensor component_logits: ``K`` softmax logits of the weights.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.MixtureOfDiagNormals(torch.zeros(3, 2), torch.ones(3, 2), torch.zeros(3))
        >>> z = d.rsample((5,))
        >>> z.shape, d.log_prob(z).shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    arg_constraints = {
        "locs": constraints.real,
        "coord_scale": constraints.positive,
        "component_logits": constraints.real,
    }
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        locs: torch.Tensor,
        coord_scale: torch.Tensor,
        component_logits: torch.Tensor,
        validate_args=None,
    ):
        check_parameter_rank("locs", locs, 2)
        check_parameter_rank("coord_scale", coord_scale, 2)
        check_parameter_rank("component_logits", component_logits, 1)
        K, D = locs.shape
        if coord_scale.shape != locs.shape:
            raise ValueError(
                f"coord_scale must have the shape of locs {tuple(locs.shape)} (K x D), "
                f"got {tuple(coord_scale.shape)}"
            )
        if component_logits.shape != (K,):
            raise ValueError(
                f"component_logits must have shape ({K},) to match the {K} rows of locs, "
                f"got {tuple(component_logits.shape)}"
            )
        if D < 2:
            raise ValueError(
                "MixtureOfDiagNormals needs dimension D >= 2, got locs of shape "
                f"{tuple(locs.shape)}; for D = 1 use "
                "MixtureSameFamily(Categorical(logits), Normal(loc, scale))"
            )
        self.locs = locs
        self.coord_scale = coord_scale
        self.component_logits = component_logits
        self.dim = D
        super().__init__(torch.Size(), torch.Size((D,)), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, locs, coord_scale, component_logits):
        """``(batch_shape, event_shape)`` from parameter shapes: ``((), (D,))``."""
        return torch.Size(), torch.Size(locs[-1:])

    @property
    def num_components(self) -> int:
        return self.locs.size(0)

    @property
    def mean(self):
        pi = self.component_logits.softmax(-1)
        return pi @ self.locs

    @property
    def variance(self):
        pi = self.component_logits.softmax(-1)
        second = pi @ (self.coord_scale.pow(2) + self.locs.pow(2))
        return second - self.mean.pow(2)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        _, log_dens = _component_terms(value, self.locs, self.coord_scale)
        log_pi = self.component_logits.log_softmax(-1)
        return torch.logsumexp(log_pi + log_dens.sum(-1), dim=-1)

    def rsample(self, sample_shape=_EMPTY):
        return rsample_diag_normal_mixture(
            self.locs, self.coord_scale, self.component_logits, sample_shape
        )

    def sample(self, sample_shape=_EMPTY):
        with torch.no_grad():
            return self.rsample(sample_shape)
