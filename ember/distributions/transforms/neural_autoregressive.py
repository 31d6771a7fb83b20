"""Deep sigmoidal flow, a neural autoregressive flow (Huang et al. 2018, arXiv:1804.00779)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import constraints
from torch.nn import functional as F

from ember.distributions.transforms.torch_transform import TransformModule, inverse_not_available
from ember.nn.auto_reg_nn import AutoRegressiveNN


class DeepSigmoidalFlow(TransformModule):
    """Deep sigmoidal flow (Eq. 8 of Huang et al. 2018), "IAF flavour".

    For each dimension ``i``, with ``(a, b, w)`` the autoregressive network's
    outputs of shape ``(..., hidden_units, D)``::

        y_i = logit( sum_k softmax(w)_k * sigmoid(softplus(a_k) * x_i + b_k) )

    a monotone map of ``x_i`` whose parameters depend on the preceding inputs.
    Everything is computed in log space, so the flow stays finite for large
    inputs. ``log|det J|`` is the sum over ``i`` of ``log dy_i/dx_i``.

    There is no closed-form inverse: values produced by the latest forward call
    are scored from the cache, others raise :class:`InverseNotAvailableError`.

    :param autoregressive_nn: a network returning a tuple of three tensors of
        shape ``(..., hidden_units, D)``, e.g.
        ``AutoRegressiveNN(D, [H], param_dims=[hidden_units] * 3)``.
    :param hidden_units: the number ``K`` of sigmoids mixed per dimension.

    Example::

        >>> import torch, ember.distributions as dist
        >>> from ember.nn import AutoRegressiveNN
        >>> arn = AutoRegressiveNN(3, [12], param_dims=[16] * 3)
        >>> flow = dist.DeepSigmoidalFlow(arn, hidden_units=16)
        >>> d = dist.TransformedDistribution(dist.Normal(torch.zeros(3), 1.0), [flow])
        >>> d.log_prob(d.sample((5,))).shape
        torch.Size([5])
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    autoregressive = True

    def __init__(self, autoregressive_nn: torch.nn.Module, hidden_units: int = 16) -> None:
        super().__init__(cache_size=1)
        if not isinstance(hidden_units, int) or hidden_units < 1:
            raise ValueError(
                f"DeepSigmoidalFlow: hidden_units must be a positive int, got {hidden_units!r}"
            )
        self.arn = autoregressive_nn
        self.hidden_units = hidden_units
        self._cached_ladj = None

    def _transform(self, x):
        out = self.arn(x)
        expected = x.shape[:-1] + (self.hidden_units, x.shape[-1])
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise ValueError(
                "DeepSigmoidalFlow: autoregressive_nn must return three tensors (a, b, w), "
                f"e.g. AutoRegressiveNN(D, hidden_dims, param_dims=[{self.hidden_units}] * 3)"
            )
        if any(t.shape[-2:] != expected[-2:] for t in out):
            raise ValueError(
                f"DeepSigmoidalFlow: network outputs have shapes {[tuple(t.shape) for t in out]};"
                f" each must end in (hidden_units, D) = {tuple(expected[-2:])}"
            )
        a_raw, b, w_raw = out
        a = F.softplus(a_raw)
        log_w = F.log_softmax(w_raw, dim=-2)
        pre = a * x.unsqueeze(-2) + b
        log_sig, log_1m_sig = F.logsigmoid(pre), F.logsigmoid(-pre)
        log_s = torch.logsumexp(log_w + log_sig, dim=-2)
        log_1ms = torch.logsumexp(log_w + log_1m_sig, dim=-2)
        y = log_s - log_1ms
        # dy/dx = (ds/dx) / (s (1 - s)), ds/dx = sum_k w_k a_k sig_k (1 - sig_k)
        log_dsdx = torch.logsumexp(log_w + log_sig + log_1m_sig + torch.log(a), dim=-2)
        ladj = (log_dsdx - log_s - log_1ms).sum(-1)
        return y, ladj

    def _call(self, x):
        y, ladj = self._transform(x)
        self._cached_ladj = x, ladj  # kept with its x, see log_abs_det_jacobian
        return y

    def _inverse(self, y):
        raise inverse_not_available(
            self, "the mixture of sigmoids has no closed-form inverse (it needs root finding)"
        )

    def log_abs_det_jacobian(self, x, y):
        """Sum over the last dim of ``log dy_i/dx_i``."""
        cached = self._cached_ladj
        if cached is not None and cached[0] is x and self._cache_is_fresh(x, y):
            return cached[1]
        return self._transform(x)[1]


def deep_sigmoidal(
    input_dim: int, hidden_dims: Sequence[int] | None = None, hidden_units: int = 16
) -> DeepSigmoidalFlow:
    """A :class:`DeepSigmoidalFlow` on an :class:`~ember.nn.AutoRegressiveNN`.

    ``hidden_dims`` defaults to ``[3 * input_dim + 1]``.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import deep_sigmoidal
        >>> deep_sigmoidal(2, [8], hidden_units=4)(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
    """
    if hidden_dims is None:
        hidden_dims = [3 * input_dim + 1]
    arn = AutoRegressiveNN(input_dim, hidden_dims, param_dims=[hidden_units] * 3)
    return DeepSigmoidalFlow(arn, hidden_units=hidden_units)


def neural_autoregressive(
    input_dim: int,
    hidden_dims: Sequence[int] | None = None,
    activation: str = "sigmoid",
    width: int = 16,
) -> DeepSigmoidalFlow:
    """A neural autoregressive flow with the sigmoid activation: a :class:`DeepSigmoidalFlow`.

    ``width`` is the number of sigmoids mixed per dimension (``hidden_units``);
    ``hidden_dims`` defaults to ``[3 * input_dim + 1]``. Only
    ``activation="sigmoid"`` (the deep sigmoidal flow) is available.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import neural_autoregressive
        >>> flow = neural_autoregressive(2, [8], width=4)
        >>> flow.hidden_units, flow(torch.zeros(3, 2)).shape
        (4, torch.Size([3, 2]))
    """
    if activation != "sigmoid":
        raise ValueError(
            f"neural_autoregressive: activation={activation!r} is not available; only "
            "'sigmoid' (the deep sigmoidal flow of Huang et al. 2018) is implemented"
        )
    return deep_sigmoidal(input_dim, hidden_dims, hidden_units=width)
