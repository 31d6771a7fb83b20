"""AVFMultivariateNormal: a multivariate normal whose ``scale_tril`` gradient
carries an adaptive control variate built from a velocity field (AVF) that
leaves the distribution unchanged (Jankowiak & Karaletsos 2018, arXiv:1806.01856).

With ``z = loc + L eps``, any antisymmetric ``Omega`` gives a field
``w(z) = L Omega eps`` with ``div(q w) = 0``: in whitened coordinates it is an
infinitesimal rotation, which preserves the standard normal. Adding such a
field to the reparameterization velocity of every entry ``L_ab`` keeps the
gradient estimator unbiased. For a cost gradient ``g`` at ``z``, with
``h = L^T g`` and the antisymmetric ``xi = h eps^T - eps h^T``, ember uses the
fields whose contribution to the gradient of ``L`` is ``L^{-T} (K * xi)``
(``*`` elementwise), where ``K = B^T C`` is built from
``control_var = (B, C)`` of shape ``2 x L x D``. The expected value of that
term is zero whatever ``K`` is.

The backward pass hands ``control_var`` the gradient of the summed squared
norm of the per-sample ``scale_tril`` gradients, whose expectation is the
estimator's variance plus a constant, so any optimizer stepping on
``control_var`` adapts the control variate to lower the gradient variance.
"""

from __future__ import annotations

import torch
from torch.distributions import constraints

from ember.distributions.torch import MultivariateNormal
from ember.distributions.torch_distribution import TorchDistributionMixin
from ember.distributions.util import broadcast_shape

_EMPTY = torch.Size()


def _per_sample_tril_grads(g, eps, scale_tril, control_var):
    """Per-sample ``scale_tril`` gradients (shape ``g.shape + (D,)``): reparameterization
    plus control variate; ``scale_tril`` broadcasts with the batch dims of ``g``."""
    h = (g.unsqueeze(-2) @ scale_tril).squeeze(-2)  # L^T g
    xi = h.unsqueeze(-1) * eps.unsqueeze(-2)
    xi = xi - xi.transpose(-1, -2)
    K = control_var[0].transpose(-1, -2) @ control_var[1]  # (D, D), rank <= L
    cv = torch.linalg.solve_triangular(scale_tril.transpose(-1, -2), K * xi, upper=True)
    return g.unsqueeze(-1) * eps.unsqueeze(-2) + cv


class _AVFSample(torch.autograd.Function):
    """``z = loc + scale_tril @ eps``; backward applies and adapts the control variate."""

    @staticmethod
    def forward(ctx, loc, scale_tril, control_var, eps):
        ctx.save_for_backward(scale_tril, control_var, eps)
        ctx.loc_shape = loc.shape
        return loc + (scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def backward(ctx, grad_z):
        scale_tril, control_var, eps = ctx.saved_tensors
        g = grad_z
        grad_loc = g.sum_to_size(ctx.loc_shape) if ctx.needs_input_grad[0] else None
        grad_tril = grad_cv = None
        if ctx.needs_input_grad[2]:
            with torch.enable_grad():
                cv = control_var.detach().requires_grad_()
                per_sample = _per_sample_tril_grads(g, eps, scale_tril.detach(), cv)
                second_moment = per_sample.tril().pow(2).sum()  # of the entries used
                (grad_cv,) = torch.autograd.grad(second_moment, [cv])
            per_sample = per_sample.detach()
        elif ctx.needs_input_grad[1]:
            per_sample = _per_sample_tril_grads(g, eps, scale_tril, control_var)
        if ctx.needs_input_grad[1]:
            # summed over the draws (and broadcast batch dims); the upper triangle is zero
            grad_tril = per_sample.sum_to_size(scale_tril.shape).tril()
        return grad_loc, grad_tril, grad_cv, None


class AVFMultivariateNormal(MultivariateNormal):
    """Multivariate normal with an adaptive control variate for the ``scale_tril`` gradient.

    Samples are those of ``MultivariateNormal(loc, scale_tril=scale_tril)``.
    ``control_var`` (shape ``2 x L x D``, ``L`` any positive integer) shapes a
    family of velocity fields that leave the distribution invariant; adding
    them keeps the ``scale_tril`` gradient unbiased, and the gradient that
    :meth:`rsample`'s backward pass gives ``control_var`` is that of the
    gradient's second moment. Stepping an optimizer on ``control_var``
    therefore lowers the variance of the ``scale_tril`` gradient; adapt it
    alongside ``loc`` and ``scale_tril``. ``loc`` and ``scale_tril`` may carry batch dims
    (they broadcast, as for the MultivariateNormal); one ``control_var`` serves the batch.

    :param torch.Tensor loc: ``batch + (D,)`` mean.
    :param torch.Tensor scale_tril: ``batch + (D, D)`` Cholesky factor of the covariance.
    :param torch.Tensor control_var: ``2 x L x D`` control-variate parameters.

    Example::

        >>> import torch, ember.distributions as dist
        >>> _ = torch.manual_seed(0)
        >>> D = 2
        >>> loc, scale_tril = torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 0.0], [0.5, 1.0]])
        >>> control_var = torch.full((2, 1, D), 0.1, requires_grad=True)
        >>> opt_cv = torch.optim.Adam([control_var], lr=0.1, betas=(0.5, 0.999))
        >>> for _ in range(20):
        ...     d = dist.AVFMultivariateNormal(loc, scale_tril, control_var)
        ...     z = d.rsample()
        ...     cost = torch.pow(z, 2.0).sum()
        ...     cost.backward()
        ...     opt_cv.step()
        ...     opt_cv.zero_grad()
        >>> control_var.shape
        torch.Size([2, 1, 2])
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "scale_tril": constraints.lower_triangular,
        "control_var": constraints.real,
    }

    def __init__(
        self,
        loc: torch.Tensor,
        scale_tril: torch.Tensor,
        control_var: torch.Tensor,
        validate_args=None,
    ):
        for name, value in (("loc", loc), ("scale_tril", scale_tril), ("control_var", control_var)):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if loc.dim() < 1:
            raise ValueError(
                f"loc must have a rightmost dim of size D, got shape {tuple(loc.shape)}"
            )
        D = loc.size(-1)
        if scale_tril.dim() < 2 or scale_tril.shape[-2:] != (D, D):
            raise ValueError(
                f"scale_tril must have shape batch + ({D}, {D}) to match loc, got "
                f"{tuple(scale_tril.shape)}"
            )
        self.infer_shapes(loc.shape, scale_tril.shape, control_var.shape)  # batch dims broadcast
        if control_var.dim() != 3 or control_var.size(0) != 2 or control_var.size(-1) != D:
            raise ValueError(
                f"control_var must have shape (2, L, {D}) for some L >= 1, "
                f"got {tuple(control_var.shape)}"
            )
        if control_var.size(1) < 1:
            raise ValueError("control_var must have shape (2, L, D) with L >= 1, got L = 0")
        self.control_var = control_var
        super().__init__(loc, scale_tril=scale_tril, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, loc, scale_tril, control_var):
        """``(batch_shape, event_shape)`` from parameter shapes: the broadcast batch dims
        of ``loc`` and ``scale_tril``, and ``(D,)``."""
        loc, scale_tril = torch.Size(loc), torch.Size(scale_tril)
        try:
            batch_shape = broadcast_shape(loc[:-1], scale_tril[:-2])
        except ValueError as e:
            raise ValueError(
                f"AVFMultivariateNormal: the batch dims of loc {tuple(loc)} and scale_tril "
                f"{tuple(scale_tril)} do not broadcast"
            ) from e
        return batch_shape, loc[-1:]

    def expand(self, batch_shape, _instance=None):
        # the control variate is not batched: expand through ExpandedDistribution
        return TorchDistributionMixin.expand(self, batch_shape, _instance)

    def rsample(self, sample_shape=_EMPTY):
        shape = self.shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return _AVFSample.apply(self.loc, self._unbroadcasted_scale_tril, self.control_var, eps)
