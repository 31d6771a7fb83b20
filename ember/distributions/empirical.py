"""Empirical: the weighted distribution of a finite set of samples."""

from __future__ import annotations

import torch
from torch.distributions import constraints

from ember.distributions.torch import Categorical
from ember.distributions.torch_distribution import TorchDistribution
from ember.util import is_validation_enabled

__all__ = ["Empirical"]

_EMPTY = torch.Size()


class Empirical(TorchDistribution):
    """Weighted empirical distribution of ``samples``.

    ``log_weights`` has the leftmost shape of ``samples``; its rightmost dim is
    the aggregation dim along which the samples of one distribution are laid
    out. The dims of ``log_weights`` before it are batch dims and the dims of
    ``samples`` after it are event dims. The weights need not be normalized.

    Example::

        >>> import torch, ember
        >>> from ember.distributions import Empirical
        >>> emp_dist = Empirical(torch.randn(2, 3, 10), torch.ones(2, 3))
        >>> emp_dist.batch_shape, emp_dist.event_shape
        (torch.Size([2]), torch.Size([10]))
        >>> emp_dist.sample((100,)).shape
        torch.Size([100, 2, 10])
        >>> emp_dist.log_prob(emp_dist.sample()).shape
        torch.Size([2])
        >>> with ember.util.validation_enabled():
        ...     emp_dist.log_prob(emp_dist.sample((100,))).shape
        Traceback (most recent call last):
            ...
        ValueError: ``value.shape`` must be torch.Size([2, 10])
    """

    arg_constraints = {}
    support = constraints.real
    has_enumerate_support = True

    def __init__(self, samples: torch.Tensor, log_weights: torch.Tensor, validate_args=None):
        if not isinstance(samples, torch.Tensor) or not isinstance(log_weights, torch.Tensor):
            raise TypeError(
                "Empirical expects tensors samples and log_weights, got "
                f"{type(samples).__name__} and {type(log_weights).__name__}"
            )
        if log_weights.dim() < 1:
            raise ValueError(
                "Empirical: log_weights needs at least one dim (the aggregation dim), "
                f"got shape {tuple(log_weights.shape)}"
            )
        k = log_weights.dim()
        if samples.shape[:k] != log_weights.shape:
            raise ValueError(
                f"Empirical: the shape of log_weights {tuple(log_weights.shape)} must equal the "
                f"leftmost {k} dims of samples {tuple(samples.shape)}"
            )
        self._samples = samples
        self._log_weights = log_weights
        self._categorical = Categorical(logits=log_weights, validate_args=False)
        self._aggregation_dim = k - 1
        batch_shape = log_weights.shape[:-1]
        event_shape = samples.shape[k:]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @classmethod
    def infer_shapes(cls, samples, log_weights):
        """``(batch_shape, event_shape)`` from the shapes of ``samples`` and ``log_weights``:
        the batch dims are those of ``log_weights`` before its rightmost (aggregation) dim,
        the event dims those of ``samples`` after the dims of ``log_weights``.

        Example::

            >>> import ember.distributions as dist
            >>> dist.Empirical.infer_shapes(samples=(2, 3, 10), log_weights=(2, 3))
            (torch.Size([2]), torch.Size([10]))
        """
        samples, log_weights = torch.Size(samples), torch.Size(log_weights)
        k = len(log_weights)
        if k < 1 or samples[:k] != log_weights:
            raise ValueError(
                f"Empirical.infer_shapes: log_weights shape {tuple(log_weights)} must be "
                f"non-empty and equal the leftmost dims of samples shape {tuple(samples)}"
            )
        return log_weights[:-1], samples[k:]

    @property
    def sample_size(self) -> int:
        """Number of samples that make up the empirical distribution."""
        return self._log_weights.size(-1)

    @property
    def log_weights(self) -> torch.Tensor:
        """The (unnormalized) log weights, as given."""
        return self._log_weights

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        n = self._log_weights.shape[-1:]
        samples = self._samples.expand(batch_shape + n + self.event_shape)
        log_weights = self._log_weights.expand(batch_shape + n)
        return Empirical(samples, log_weights, validate_args=self._validate_args)

    def _gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Pick ``samples[..., idx, ...]`` along the aggregation dim, for leading dims of idx."""
        lead = idx.shape[: idx.dim() - len(self.batch_shape)]
        event_ndim = len(self.event_shape)
        samples = self._samples.expand(lead + self._samples.shape)
        index = idx.reshape(idx.shape + (1,) * (1 + event_ndim))
        index = index.expand(idx.shape + (1,) + self.event_shape)
        return samples.gather(idx.dim(), index).squeeze(idx.dim())

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        idx = self._categorical.sample(torch.Size(sample_shape))
        return self._gather(idx)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log of the total normalized weight of the samples equal to ``value``.

        Only values with an empty ``sample_shape`` (shape ``batch_shape +
        event_shape``) can be scored.
        """
        expected = self.batch_shape + self.event_shape
        if value.shape != expected and (self._validate_args or is_validation_enabled()):
            raise ValueError(f"``value.shape`` must be {expected}")
        if value.shape != expected:
            try:
                value = value.expand(expected)
            except RuntimeError:
                raise ValueError(f"``value.shape`` must be {expected}") from None
        event_dims = tuple(range(-len(self.event_shape), 0))
        hit = self._samples == value.unsqueeze(self._aggregation_dim)
        if event_dims:
            hit = hit.all(dim=event_dims)
        log_w = self._categorical.logits  # normalized
        return torch.where(hit, log_w, log_w.new_full((), -float("inf"))).logsumexp(-1)

    def _weights(self) -> torch.Tensor:
        w = self._categorical.probs
        return w.reshape(w.shape + (1,) * len(self.event_shape))

    def _float_samples(self, what: str) -> torch.Tensor:
        if not self._samples.is_floating_point():
            raise ValueError(
                f"{what} of an Empirical over {self._samples.dtype} samples is undefined; "
                "pass floating point samples (e.g. samples.float())"
            )
        return self._samples

    @property
    def mean(self) -> torch.Tensor:
        samples = self._float_samples("mean")
        return (self._weights() * samples).sum(self._aggregation_dim)

    @property
    def variance(self) -> torch.Tensor:
        samples = self._float_samples("variance")
        deviation = samples - self.mean.unsqueeze(self._aggregation_dim)
        return (self._weights() * deviation**2).sum(self._aggregation_dim)

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """The samples, with the aggregation dim moved to the left.

        Each batch member has its own support, so the result always has the
        full shape ``(sample_size,) + batch_shape + event_shape``.
        """
        return self._samples.movedim(self._aggregation_dim, 0)
