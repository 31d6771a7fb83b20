"""The orthonormal discrete Haar wavelet transform as a volume-preserving bijection."""

from __future__ import annotations

from ember.distributions.transforms.orthonormal import OrthonormalAlongDim
from ember.ops.tensor_utils import haar_transform, inverse_haar_transform


class HaarTransform(OrthonormalAlongDim):
    """The orthonormal Haar wavelet transform along dim ``dim`` (``log|det J| = 0``).

    See :func:`~ember.ops.tensor_utils.haar_transform` for the layout of the
    coefficients. A length that is not a power of two gives a block-structured
    transform whose blocks halve in size from left to right; ``flip=True``
    reverses the series first (so the finest blocks are at the start).

    :param int dim: the (negative) dim to transform; the event has ``-dim`` dims.
    :param bool flip: reverse the series along ``dim`` before transforming.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import HaarTransform
        >>> t = HaarTransform()
        >>> t(torch.tensor([1.0, 1.0, 3.0, 3.0]))
        tensor([ 4.0000, -2.0000,  0.0000,  0.0000])
        >>> t.inv(torch.tensor([4.0, -2.0, 0.0, 0.0]))
        tensor([1.0000, 1.0000, 3.0000, 3.0000])
    """

    options = ("flip",)

    def __init__(self, dim: int = -1, flip: bool = False, cache_size: int = 0) -> None:
        self.flip = bool(flip)
        super().__init__(dim, cache_size)

    def _to_last(self, x):
        self.check_input(x)
        return x if self.dim == -1 else x.transpose(self.dim, -1)

    def _from_last(self, x):
        return x if self.dim == -1 else x.transpose(self.dim, -1)

    def _call(self, x):
        x = self._to_last(x)
        if self.flip:
            x = x.flip(-1)
        return self._from_last(haar_transform(x))

    def _inverse(self, y):
        x = inverse_haar_transform(self._to_last(y))
        if self.flip:
            x = x.flip(-1)
        return self._from_last(x)
