"""Statistics accumulated one sample at a time, mergeable across workers.

Every :class:`StreamingStats` has ``update(sample)`` to fold in one sample,
``merge(other)`` to combine with the statistics of another stream (the result equals
updating one object with both streams, up to the order of stacked samples) and
``get()`` returning a dict of results. They are used to summarise MCMC draws without
keeping them all in memory.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections import defaultdict
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Union

import torch

__all__ = [
    "CountMeanStats",
    "CountMeanVarianceStats",
    "CountStats",
    "StackStats",
    "StatsOfDict",
    "StreamingStats",
]


class StreamingStats(ABC):
    """The interface of streaming statistics: ``update``, ``merge`` and ``get``."""

    @abstractmethod
    def update(self, sample) -> None:
        """Fold one sample into the statistics."""
        raise NotImplementedError

    @abstractmethod
    def merge(self, other: StreamingStats) -> StreamingStats:
        """A new object with the statistics of both streams (neither input changes)."""
        raise NotImplementedError

    @abstractmethod
    def get(self) -> Any:
        """The statistics collected so far, as a dict."""
        raise NotImplementedError

    def _check_same_type(self, other) -> None:
        if type(other) is not type(self):
            raise TypeError(
                f"cannot merge {type(self).__name__} with {type(other).__name__}: "
                "merge statistics of the same type"
            )


def _check_tensor(stats: StreamingStats, sample) -> torch.Tensor:
    if not isinstance(sample, torch.Tensor):
        raise TypeError(
            f"{type(stats).__name__}.update expects a torch.Tensor, got {type(sample).__name__}"
        )
    return sample.detach()


class CountStats(StreamingStats):
    """Counts samples. ``get()`` returns ``{"count": n}``.

    Example::

        >>> s = CountStats()
        >>> s.update(None); s.update(None)
        >>> s.merge(s).get()
        {'count': 4}
    """

    def __init__(self) -> None:
        self.count = 0

    def update(self, sample) -> None:
        self.count += 1

    def merge(self, other: CountStats) -> CountStats:
        self._check_same_type(other)
        result = type(self)()
        result.count = self.count + other.count
        return result

    def get(self) -> Dict[str, int]:
        return {"count": self.count}


class StatsOfDict(StreamingStats):
    """Statistics of dict-valued samples: one statistics object per key.

    :param dict types: for some keys, a callable making that key's statistics.
    :param callable default: makes the statistics of every other key (on first sight).

    ``get()`` returns ``{key: stats.get()}``.

    Example::

        >>> s = StatsOfDict({"x": CountMeanStats})
        >>> s.update({"x": torch.tensor(1.0), "y": torch.tensor(5.0)})
        >>> s.update({"x": torch.tensor(3.0)})
        >>> s.get()
        {'x': {'count': 2, 'mean': tensor(2.)}, 'y': {'count': 1}}
    """

    def __init__(
        self,
        types: Optional[Mapping[Hashable, Callable[[], StreamingStats]]] = None,
        default: Callable[[], StreamingStats] = CountStats,
    ) -> None:
        self.stats: Dict[Hashable, StreamingStats] = defaultdict(default)
        for key, make in (types or {}).items():
            self.stats[key] = make()

    def update(self, sample: Mapping[Hashable, Any]) -> None:
        if not isinstance(sample, Mapping):
            raise TypeError(f"StatsOfDict.update expects a dict, got {type(sample).__name__}")
        for key, value in sample.items():
            self.stats[key].update(value)

    def merge(self, other: StatsOfDict) -> StatsOfDict:
        self._check_same_type(other)
        result = copy.deepcopy(self)
        for key, theirs in other.stats.items():
            if key in self.stats:
                result.stats[key] = self.stats[key].merge(theirs)
            else:
                result.stats[key] = copy.deepcopy(theirs)
        return result

    def get(self) -> Dict[Hashable, Any]:
        return {key: stats.get() for key, stats in self.stats.items()}


class StackStats(StreamingStats):
    """Keeps every (tensor) sample. ``get()`` returns ``{"count": n, "samples":
    torch.stack(samples)}`` (just ``{"count": 0}`` when empty)."""

    def __init__(self) -> None:
        self.samples = []

    def update(self, sample: torch.Tensor) -> None:
        self.samples.append(_check_tensor(self, sample))

    def merge(self, other: StackStats) -> StackStats:
        self._check_same_type(other)
        result = type(self)()
        result.samples = self.samples + other.samples
        return result

    def get(self) -> Dict[str, Union[int, torch.Tensor]]:
        if not self.samples:
            return {"count": 0}
        return {"count": len(self.samples), "samples": torch.stack(self.samples)}


class CountMeanStats(StreamingStats):
    """Count and elementwise running mean of tensor samples. ``get()`` returns
    ``{"count": n, "mean": mean}`` (just ``{"count": 0}`` when empty)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Union[int, torch.Tensor] = 0

    def update(self, sample: torch.Tensor) -> None:
        sample = _check_tensor(self, sample)
        self.count += 1
        self.mean = self.mean + (sample - self.mean) / self.count

    def merge(self, other: CountMeanStats) -> CountMeanStats:
        self._check_same_type(other)
        result = type(self)()
        result.count = self.count + other.count
        if result.count:
            w = self.count / result.count
            result.mean = w * self.mean + (1 - w) * other.mean
        return result

    def get(self) -> Dict[str, Union[int, torch.Tensor]]:
        if not self.count:
            return {"count": 0}
        return {"count": self.count, "mean": self.mean}


class CountMeanVarianceStats(StreamingStats):
    """Count, elementwise mean and unbiased elementwise variance of tensor samples
    of one fixed shape, by Welford's update and Chan et al.'s parallel merge.
    ``get()`` returns ``{"count", "mean", "variance"}`` (just ``{"count": 0}`` when
    empty; the variance of a single sample is reported as 0).

    Example::

        >>> s = CountMeanVarianceStats()
        >>> for v in [1.0, 2.0, 6.0]:
        ...     s.update(torch.tensor(v))
        >>> s.get()
        {'count': 3, 'mean': tensor(3.), 'variance': tensor(7.)}
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: Optional[torch.Tensor] = None
        self.m2: Optional[torch.Tensor] = None  # sum of squared deviations from the mean

    def update(self, sample: torch.Tensor) -> None:
        sample = _check_tensor(self, sample)
        if self.mean is None:
            self.count = 1
            self.mean = sample.clone()
            self.m2 = torch.zeros_like(sample)
            return
        if sample.shape != self.mean.shape:
            raise ValueError(
                f"CountMeanVarianceStats: sample shape {tuple(sample.shape)} differs from "
                f"the shape {tuple(self.mean.shape)} of earlier samples"
            )
        self.count += 1
        delta = sample - self.mean
        self.mean = self.mean + delta / self.count
        self.m2 = self.m2 + delta * (sample - self.mean)

    def merge(self, other: CountMeanVarianceStats) -> CountMeanVarianceStats:
        self._check_same_type(other)
        if other.mean is None:
            return copy.deepcopy(self)
        if self.mean is None:
            return copy.deepcopy(other)
        if other.mean.shape != self.mean.shape:
            raise ValueError(
                f"CountMeanVarianceStats: cannot merge shapes {tuple(self.mean.shape)} "
                f"and {tuple(other.mean.shape)}"
            )
        result = type(self)()
        n = self.count + other.count
        delta = other.mean - self.mean
        result.count = n
        result.mean = self.mean + delta * (other.count / n)
        result.m2 = self.m2 + other.m2 + delta.pow(2) * (self.count * other.count / n)
        return result

    def get(self) -> Dict[str, Union[int, torch.Tensor]]:
        if self.mean is None:
            return {"count": 0}
        variance = self.m2 / max(self.count - 1, 1)
        return {"count": self.count, "mean": self.mean, "variance": variance}
