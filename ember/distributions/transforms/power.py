"""The odd power map ``sign(x) |x|^p`` on the whole real line."""

from __future__ import annotations

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.transforms import Transform


class PositivePowerTransform(Transform):
    """``y = sign(x) |x|^exponent`` for ``exponent > 0``: a bijection of the reals.

    torch's ``PowerTransform`` takes any exponent but only positive inputs;
    this one takes positive exponents and any real input.
    ``log|dy/dx| = log(exponent) + (exponent - 1) log|x|``, which is infinite
    at ``x = 0`` unless ``exponent == 1``. ``exponent`` may be a tensor; it
    broadcasts against the input.

    :param exponent: a positive number or tensor.
    :param validate_args: check ``exponent > 0`` (default: the global
        validation setting).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import PositivePowerTransform
        >>> t = PositivePowerTransform(3.0)
        >>> t(torch.tensor([-2.0, 0.5]))
        tensor([-8.0000,  0.1250])
        >>> t.inv(torch.tensor([-8.0, 0.125]))
        tensor([-2.0000,  0.5000])
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, exponent, *, cache_size: int = 0, validate_args=None) -> None:
        super().__init__(cache_size=cache_size)
        if isinstance(exponent, bool):
            raise TypeError("PositivePowerTransform: exponent must be a number or tensor")
        if isinstance(exponent, int):
            exponent = float(exponent)
        exponent = torch.as_tensor(exponent)
        if not exponent.is_floating_point():
            exponent = exponent.to(torch.get_default_dtype())
        if validate_args is None:
            validate_args = Distribution._validate_args
        if validate_args and not bool((exponent > 0).all()):
            raise ValueError(
                f"PositivePowerTransform: expected exponent > 0, got {exponent}; for "
                "other exponents use PowerTransform on positive values"
            )
        self.exponent = exponent

    def with_cache(self, cache_size: int = 1) -> PositivePowerTransform:
        if self._cache_size == cache_size:
            return self
        return PositivePowerTransform(self.exponent, cache_size=cache_size, validate_args=False)

    def __eq__(self, other):
        if not isinstance(other, PositivePowerTransform):
            return False
        return self.exponent.shape == other.exponent.shape and bool(
            self.exponent.eq(other.exponent).all()
        )

    def __hash__(self):
        return hash(PositivePowerTransform)

    def _call(self, x):
        return x.abs().pow(self.exponent) * x.sign()

    def _inverse(self, y):
        return y.abs().pow(self.exponent.reciprocal()) * y.sign()

    def log_abs_det_jacobian(self, x, y):
        exponent = self.exponent
        # xlogy: exactly 0 (not 0 * -inf) at x = 0 when exponent == 1
        return exponent.log() + torch.xlogy(exponent - 1, x.abs())

    def forward_shape(self, shape):
        return torch.broadcast_shapes(shape, self.exponent.shape)

    def inverse_shape(self, shape):
        return torch.broadcast_shapes(shape, self.exponent.shape)
