"""Streaming (Welford) estimates of a mean and a covariance, used for mass-matrix adaptation."""

from __future__ import annotations

from typing import Tuple

import torch

__all__ = ["WelfordCovariance", "WelfordArrowheadCovariance"]


class WelfordCovariance:
    """Running mean and (co)variance of a stream of vectors by Welford's algorithm.

    :param bool diagonal: keep only the variance of each coordinate (``True``) or the
        full covariance matrix (``False``).

    ``get_covariance(regularize=True)`` shrinks the estimate towards ``1e-3`` times the
    identity as Stan does (weight ``5 / (n + 5)``), which keeps a short window's estimate
    well conditioned.

    Example::

        >>> w = WelfordCovariance(diagonal=True)
        >>> for x in torch.tensor([[1.0, 2.0], [3.0, 6.0]]):
        ...     w.update(x)
        >>> w.get_covariance(regularize=False)
        tensor([2., 8.])
    """

    def __init__(self, diagonal: bool = True):
        self.diagonal = diagonal
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen so far."""
        self._mean = 0.0
        self._m2 = 0.0
        self.n_samples = 0

    def update(self, sample: torch.Tensor) -> None:
        """Add one sample (a vector) to the running estimate."""
        self.n_samples += 1
        delta_pre = sample - self._mean
        self._mean = self._mean + delta_pre / self.n_samples
        delta_post = sample - self._mean
        if self.diagonal:
            self._m2 = self._m2 + delta_pre * delta_post
        else:
            self._m2 = self._m2 + torch.outer(delta_post, delta_pre)

    def get_covariance(self, regularize: bool = True) -> torch.Tensor:
        """The sample (co)variance (divisor ``n - 1``), optionally shrunk as Stan does."""
        if self.n_samples < 2:
            raise RuntimeError(
                f"WelfordCovariance needs at least 2 samples to estimate a covariance, "
                f"got {self.n_samples}"
            )
        cov = self._m2 / (self.n_samples - 1)
        if regularize:
            n = self.n_samples
            cov = cov * (n / (n + 5.0))
            shrink = 1e-3 * (5.0 / (n + 5.0))
            if self.diagonal:
                cov = cov + shrink
            else:
                cov = cov + shrink * torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        return cov


class WelfordArrowheadCovariance:
    """Running estimate of an arrowhead covariance: a dense ``head_size`` block of the
    leading coordinates, their covariances with the rest, and a diagonal for the rest.

    ``get_covariance`` returns ``(top, bottom_diag)``: ``top`` is the first ``head_size``
    rows of the covariance matrix (shape ``(head_size, D)``) and ``bottom_diag`` the
    diagonal of the remaining ``D - head_size`` coordinates.
    """

    def __init__(self, head_size: int = 0):
        if head_size < 0:
            raise ValueError(f"head_size must be non-negative, got {head_size}")
        self.head_size = head_size
        self.reset()

    def reset(self) -> None:
        """Forget every sample seen so far."""
        self._mean = 0.0
        self._m2_top = 0.0
        self._m2_bottom = 0.0
        self.n_samples = 0

    def update(self, sample: torch.Tensor) -> None:
        """Add one sample (a vector) to the running estimate."""
        self.n_samples += 1
        delta_pre = sample - self._mean
        self._mean = self._mean + delta_pre / self.n_samples
        delta_post = sample - self._mean
        h = self.head_size
        if h > 0:
            self._m2_top = self._m2_top + torch.outer(delta_post[:h], delta_pre)
        self._m2_bottom = self._m2_bottom + delta_post[h:] * delta_pre[h:]

    def get_covariance(self, regularize: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(top, bottom_diag)`` of the sample covariance, optionally shrunk as Stan does."""
        if self.n_samples < 2:
            raise RuntimeError(
                f"WelfordArrowheadCovariance needs at least 2 samples, got {self.n_samples}"
            )
        n = self.n_samples
        h = self.head_size
        bottom = self._m2_bottom / (n - 1)
        dim = h + bottom.shape[-1]
        if h > 0:
            top = self._m2_top / (n - 1)
        else:
            top = bottom.new_zeros((0, dim))
        if regularize:
            top = top * (n / (n + 5.0))
            bottom = bottom * (n / (n + 5.0))
            shrink = 1e-3 * (5.0 / (n + 5.0))
            if h > 0:
                top = top + shrink * torch.eye(h, dim, dtype=top.dtype, device=top.device)
            bottom = bottom + shrink
        return top, bottom
