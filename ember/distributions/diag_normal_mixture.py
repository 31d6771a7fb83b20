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
from ember.distributions.util import broadcast_shape

_EMPTY = torch.Size()

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _component_terms(z, locs, coord_scale):
    """Whitened coordinates ``(z - locs) / coord_scale`` and per-coordinate log densities."""
    x = (z.unsqueeze(-2) - locs) / coord_scale
    log_dens = -0.5 * x * x - coord_scale.log() - _HALF_LOG_2PI
    return x, log_dens


class _MixtureOfDiagNormalsSample(torch.autograd.Function):
    """``z[n] = locs[n, which[n]] + coord_scale[n, which[n]] * eps[n]`` with
    transport-equation gradients; every row ``n`` has its own parameters (``N x K x D``,
    ``N x K x D``, ``N x K``), so batches of mixtures and shared parameters (expanded
    views, whose gradients autograd sums) both work."""

    @staticmethod
    def forward(ctx, locs, coord_scale, component_logits, which, eps):
        index = which.reshape(-1, 1, 1).expand(-1, 1, locs.size(-1))
        z = (locs.gather(1, index) + coord_scale.gather(1, index) * eps.unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(locs, coord_scale, component_logits, z)
        return z

    @staticmethod
    def backward(ctx, grad_z):
        locs, coord_scale, component_logits, z = ctx.saved_tensors
        g = grad_z
        x, log_dens = _component_terms(z, locs, coord_scale)  # (N, K, D)
        log_pi = component_logits.log_softmax(-1)  # (N, K)

        grad_locs = grad_scale = grad_logits = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            resp = (log_pi + log_dens.sum(-1)).softmax(-1).unsqueeze(-1)  # (N, K, 1)
            if ctx.needs_input_grad[0]:
                grad_locs = resp * g.unsqueeze(-2)
            if ctx.needs_input_grad[1]:
                grad_scale = resp * g.unsqueeze(-2) * x
        if ctx.needs_input_grad[2]:
            grad_logits = _implicit_logits_grad(g, x, log_dens, log_pi, coord_scale)
        return grad_locs, grad_scale, grad_logits, None, None


def _implicit_logits_grad(g, x, log_dens, log_pi, coord_scale):
    """Vector-Jacobian product of the Knothe-Rosenblatt velocity for the logits, per row.

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
    return -torch.einsum("nj,nkj->nk", lam, dF_dlogits)


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
    """Draw ``sample_shape`` points of a (batch of) mixture(s) of diagonal normals with
    pathwise gradients.

    Component ``k`` (chosen with weight ``softmax(component_logits)_k``) is
    ``N(locs[..., k, :], diag(coord_scale[..., k, :] ** 2))``; ``locs`` and
    ``coord_scale`` are ``batch + (K, D)`` and ``component_logits`` is ``batch + (K,)``
    (the batch dims broadcast). Samples have shape ``sample_shape + batch + (D,)``.
    Gradients with respect to all three parameters follow the transport-equation
    velocity fields described in this module's docstring.

    Example::

        >>> locs = torch.zeros(2, 3, requires_grad=True)
        >>> z = rsample_diag_normal_mixture(locs, torch.ones(2, 3), torch.zeros(2), (4,))
        >>> z.shape, z.requires_grad
        (torch.Size([4, 3]), True)
    """
    sample_shape = torch.Size(sample_shape)
    K, D = locs.shape[-2:]
    batch_shape = broadcast_shape(
        locs.shape[:-2], coord_scale.shape[:-2], component_logits.shape[:-1]
    )
    shape = sample_shape + batch_shape
    n = shape.numel()
    flat_locs = locs.expand(shape + (K, D)).reshape(n, K, D)
    flat_scale = coord_scale.expand(shape + (K, D)).reshape(n, K, D)
    flat_logits = component_logits.expand(shape + (K,)).reshape(n, K)
    which = torch.distributions.Categorical(logits=flat_logits.detach()).sample()
    eps = torch.randn((n, D), dtype=locs.dtype, device=locs.device)
    z = _MixtureOfDiagNormalsSample.apply(flat_locs, flat_scale, flat_logits, which, eps)
    return z.reshape(shape + (D,))


def _check_mixture_shapes(name, locs, coord_scale, component_logits, scale_name, shared):
    for arg, value in (
        ("locs", locs),
        (scale_name, coord_scale),
        ("component_logits", component_logits),
    ):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(value).__name__}")
    if locs.dim() < 2:
        raise ValueError(
            f"{name}: locs must be batch + (K, D) (K components in D dims), got shape "
            f"{tuple(locs.shape)}"
        )
    K, D = locs.shape[-2:]
    want = (D,) if shared else (K, D)
    if coord_scale.shape[-len(want) :] != want or coord_scale.dim() < len(want):
        raise ValueError(
            f"{name}: {scale_name} must end in {want} to match locs of shape "
            f"{tuple(locs.shape)}, got shape {tuple(coord_scale.shape)}"
        )
    if component_logits.dim() < 1 or component_logits.size(-1) != K:
        raise ValueError(
            f"{name}: component_logits must end in ({K},) to match the {K} components of "
            f"locs, got shape {tuple(component_logits.shape)}"
        )
    if D < 2:
        raise ValueError(
            f"{name} needs dimension D >= 2, got locs of shape {tuple(locs.shape)}; for "
            "D = 1 use MixtureSameFamily(Categorical(logits), Normal(loc, scale))"
        )
    return (
        broadcast_shape(
            locs.shape[:-2],
            coord_scale.shape[: coord_scale.dim() - len(want)],
            component_logits.shape[:-1],
        ),
        K,
        D,
    )


class MixtureOfDiagNormals(TorchDistribution):
    """A mixture of ``K`` Gaussians in ``D >= 2`` dims, each with its own mean and diagonal scale.

    ``q(z) = sum_k softmax(component_logits)_k N(z; locs[k], diag(coord_scale[k] ** 2))``.
    :meth:`rsample` is reparameterized: gradients with respect to all three
    parameters are pathwise derivatives from exact transport-equation velocity
    fields (Jankowiak & Karaletsos 2018, arXiv:1806.01856), for even and odd
    ``D``. ``D = 1`` is not supported.

    :param torch.Tensor locs: ``batch + (K, D)`` component means.
    :param torch.Tensor coord_scale: ``batch + (K, D)`` positive component scales.
    :param torch.Tensor component_logits: ``batch + (K,)`` softmax logits of the weights.

    The batch dims of the three parameters broadcast to the batch shape.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.MixtureOfDiagNormals(torch.zeros(3, 2), torch.ones(3, 2), torch.zeros(3))
        >>> z = d.rsample((5,))
        >>> z.shape, d.log_prob(z).shape
        (torch.Size([5, 2]), torch.Size([5]))
        >>> dist.MixtureOfDiagNormals(torch.zeros(4, 3, 2), torch.ones(3, 2),
        ...                           torch.zeros(3)).batch_shape
        torch.Size([4])
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
        batch_shape, K, D = _check_mixture_shapes(
            type(self).__name__, locs, coord_scale, component_logits, "coord_scale", False
        )
        self.locs = locs
        self.coord_scale = coord_scale
        self.component_logits = component_logits
        self.dim = D
        super().__init__(batch_shape, torch.Size((D,)), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, locs, coord_scale, component_logits):
        """``(batch_shape, event_shape)`` from parameter shapes: the broadcast batch dims
        and ``(D,)``."""
        batch = broadcast_shape(locs[:-2], coord_scale[:-2], component_logits[:-1])
        return batch, torch.Size(locs[-1:])

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        K, D = self.locs.shape[-2:]
        new.locs = self.locs.expand(batch_shape + (K, D))
        new.coord_scale = self._expand_scale(batch_shape)
        new.component_logits = self.component_logits.expand(batch_shape + (K,))
        new.dim = D
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _expand_scale(self, batch_shape):
        return self.coord_scale.expand(batch_shape + self.locs.shape[-2:])

    def _component_scales(self):
        """The ``batch + (K, D)`` scales of the components."""
        return self.coord_scale

    @property
    def num_components(self) -> int:
        return self.locs.size(-2)

    @property
    def mean(self):
        pi = self.component_logits.softmax(-1).unsqueeze(-1)
        return (pi * self.locs).sum(-2).expand(self.batch_shape + self.event_shape)

    @property
    def variance(self):
        pi = self.component_logits.softmax(-1).unsqueeze(-1)
        scales = self._component_scales()
        second = (pi * (scales.pow(2) + self.locs.pow(2))).sum(-2)
        return (second - self.mean.pow(2)).expand(self.batch_shape + self.event_shape)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        _, log_dens = _component_terms(value, self.locs, self._component_scales())
        log_pi = self.component_logits.log_softmax(-1)
        return torch.logsumexp(log_pi + log_dens.sum(-1), dim=-1)

    def rsample(self, sample_shape=_EMPTY):
        z = rsample_diag_normal_mixture(
            self.locs, self._component_scales(), self.component_logits, sample_shape
        )
        return z.expand(torch.Size(sample_shape) + self.batch_shape + self.event_shape)

    def sample(self, sample_shape=_EMPTY):
        with torch.no_grad():
            return self.rsample(sample_shape)


class MixtureOfDiagNormalsSharedCovariance(MixtureOfDiagNormals):
    """A mixture of ``K`` Gaussians in ``D >= 2`` dims with their own means and one shared
    diagonal scale ``coord_scale``.

    ``q(z) = sum_k softmax(component_logits)_k N(z; locs[k], diag(coord_scale ** 2))``.
    Draws are reparameterized with the same transport-equation gradients as
    :class:`MixtureOfDiagNormals` (the shared scale's field is the sum of the
    per-component fields).

    :param torch.Tensor locs: ``batch + (K, D)`` component means.
    :param torch.Tensor coord_scale: ``batch + (D,)`` positive shared scale.
    :param torch.Tensor component_logits: ``batch + (K,)`` softmax logits of the weights.

    Example::

        >>> import math, torch, ember.distributions as dist
        >>> d = dist.MixtureOfDiagNormalsSharedCovariance(
        ...     torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), torch.tensor([2.0, 2.0]),
        ...     torch.tensor([0.25, 0.75]).log())
        >>> d.log_prob(torch.tensor([0.5, 0.5]))
        tensor(-3.3902)
    """

    def __init__(
        self,
        locs: torch.Tensor,
        coord_scale: torch.Tensor,
        component_logits: torch.Tensor,
        validate_args=None,
    ):
        batch_shape, K, D = _check_mixture_shapes(
            type(self).__name__, locs, coord_scale, component_logits, "coord_scale", True
        )
        self.locs = locs
        self.coord_scale = coord_scale
        self.component_logits = component_logits
        self.dim = D
        TorchDistribution.__init__(self, batch_shape, torch.Size((D,)), validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, locs, coord_scale, component_logits):
        """``(batch_shape, event_shape)`` from parameter shapes."""
        batch = broadcast_shape(locs[:-2], coord_scale[:-1], component_logits[:-1])
        return batch, torch.Size(locs[-1:])

    def _expand_scale(self, batch_shape):
        return self.coord_scale.expand(batch_shape + self.locs.shape[-1:])

    def _component_scales(self):
        return self.coord_scale.unsqueeze(-2).expand(
            self.coord_scale.shape[:-1] + self.locs.shape[-2:]
        )
