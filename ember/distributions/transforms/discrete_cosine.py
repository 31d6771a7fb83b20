"""The orthonormal discrete cosine transform (type II) as a volume-preserving bijection."""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ember.ops.tensor_utils import dct, idct


class DiscreteCosineTransform(Transform):
    """The orthonormal DCT-II along dim ``dim``, optionally reweighted by frequency.

    With ``smooth = s`` the ``k``-th coefficient is multiplied by
    ``(k + 1/2)^s`` divided by the geometric mean of these weights, so the
    Jacobian's determinant stays 1 (``log|det J| = 0``) for every ``s``.
    ``s = 0`` maps white noise to white noise, ``s = 1`` Brownian (random walk)
    noise to roughly white noise, ``s = -1`` violet noise, and so on.

    :param int dim: the (negative) dim to transform; the event has ``-dim`` dims.
    :param float smooth: the frequency exponent ``s`` (any real).

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import DiscreteCosineTransform
        >>> t = DiscreteCosineTransform()
        >>> t(torch.ones(4))
        tensor([2., 0., 0., 0.])
        >>> t.inv(torch.tensor([2.0, 0.0, 0.0, 0.0]))
        tensor([1., 1., 1., 1.])
    """

    bijective = True

    def __init__(self, dim: int = -1, smooth: float = 0.0, cache_size: int = 0) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim >= 0:
            raise ValueError(f"DiscreteCosineTransform: dim must be a negative int, got {dim!r}")
        self.dim = dim
        self.smooth = float(smooth)
        super().__init__(cache_size=cache_size)

    def __hash__(self):
        return hash((type(self), self.dim, self.smooth))

    def __eq__(self, other):
        return type(self) is type(other) and (self.dim, self.smooth) == (other.dim, other.smooth)

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, -self.dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, -self.dim)

    def frequency_weights(self, size: int, dtype=None, device=None) -> torch.Tensor:
        """The weights ``(k + 1/2)^smooth`` of the ``size`` coefficients, scaled to a
        geometric mean of 1."""
        freq = torch.arange(size, dtype=dtype, device=device) + 0.5
        log_w = self.smooth * freq.log()
        return (log_w - log_w.mean()).exp()

    def _check(self, x):
        if x.dim() < -self.dim:
            raise ValueError(
                f"DiscreteCosineTransform: input of shape {tuple(x.shape)} has no dim {self.dim}"
            )

    def _call(self, x):
        self._check(x)
        y = dct(x, dim=self.dim)
        if self.smooth:
            w = self.frequency_weights(y.size(self.dim), y.dtype, y.device)
            y = y * w.reshape((-1,) + (1,) * (-1 - self.dim))
        return y

    def _inverse(self, y):
        self._check(y)
        if self.smooth:
            w = self.frequency_weights(y.size(self.dim), y.dtype, y.device)
            y = y / w.reshape((-1,) + (1,) * (-1 - self.dim))
        return idct(y, dim=self.dim)

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[: x.dim() + self.dim])

    def with_cache(self, cache_size: int = 1) -> DiscreteCosineTransform:
        if self._cache_size == cache_size:
            return self
        return DiscreteCosineTransform(self.dim, self.smooth, cache_size=cache_size)

    def forward_shape(self, shape):
        if len(shape) < -self.dim:
            raise ValueError(
                f"DiscreteCosineTransform: shape {tuple(shape)} has fewer than {-self.dim} dims"
            )
        return shape

    inverse_shape = forward_shape
