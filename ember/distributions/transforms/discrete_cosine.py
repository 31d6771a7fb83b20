"""The orthonormal discrete cosine transform (type II) as a volume-preserving bijection."""

from __future__ import annotations

import torch

from ember.distributions.transforms.orthonormal import OrthonormalAlongDim
from ember.ops.tensor_utils import dct, idct


class DiscreteCosineTransform(OrthonormalAlongDim):
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

    options = ("smooth",)

    def __init__(self, dim: int = -1, smooth: float = 0.0, cache_size: int = 0) -> None:
        self.smooth = float(smooth)
        super().__init__(dim, cache_size)

    def frequency_weights(self, size: int, dtype=None, device=None) -> torch.Tensor:
        """The weights ``(k + 1/2)^smooth`` of the ``size`` coefficients, scaled to a
        geometric mean of 1."""
        freq = torch.arange(size, dtype=dtype, device=device) + 0.5
        log_w = self.smooth * freq.log()
        return (log_w - log_w.mean()).exp()

    def _call(self, x):
        self.check_input(x)
        y = dct(x, dim=self.dim)
        if self.smooth:
            w = self.frequency_weights(y.size(self.dim), y.dtype, y.device)
            y = y * w.reshape((-1,) + (1,) * (-1 - self.dim))
        return y

    def _inverse(self, y):
        self.check_input(y)
        if self.smooth:
            w = self.frequency_weights(y.size(self.dim), y.dtype, y.device)
            y = y / w.reshape((-1,) + (1,) * (-1 - self.dim))
        return idct(y, dim=self.dim)
