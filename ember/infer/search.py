"""Search: the exact posterior of a discrete program by systematic enumeration.

Every execution path of the model is visited once, depth first, by
``poutine.queue``: a partial trace is replayed up to its first unassigned
sample site, which is then extended with every value of its support. Each
complete trace is weighted by its joint log-density, so the normalized weights
are the exact posterior over execution paths.
"""

from __future__ import annotations

import queue as _queue
from typing import Callable

import torch

from ember import poutine
from ember.infer.abstract_infer import TracePosterior

__all__ = ["Search"]


class Search(TracePosterior):
    """Systematic search over all executions of a model with discrete latent variables.

    :param model: a model whose latent sites all have enumerable supports.
    :param max_tries: the most times the search may try to complete one
        partial trace (guards against unbounded programs).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import Search, EmpiricalMarginal
        >>> def model():
        ...     a = ember.sample("a", dist.Bernoulli(0.5))
        ...     b = ember.sample("b", dist.Bernoulli(0.5))
        ...     ember.sample("c", dist.Bernoulli(0.9 * (a + b) / 2), obs=torch.tensor(1.0))
        ...     return a + b
        >>> posterior = Search(model).run()
        >>> len(posterior.exec_traces)
        4
        >>> marginal = EmpiricalMarginal(posterior)
        >>> round(marginal.mean.item(), 3)  # E[a + b | c = 1] = (0.45 + 0.45 + 1.8) / 1.8
        1.5
    """

    def __init__(self, model: Callable, max_tries: int = int(1e6), **kwargs):
        if not callable(model):
            raise TypeError(f"Search: model must be callable, got {type(model).__name__}")
        if not max_tries >= 1:
            raise ValueError(f"Search: max_tries must be >= 1, got {max_tries!r}")
        self.model = model
        self.max_tries = int(max_tries)
        super().__init__(**kwargs)

    def _traces(self, *args, **kwargs):
        pending = _queue.LifoQueue()
        pending.put(poutine.Trace())
        runner = poutine.trace(poutine.queue(self.model, queue=pending, max_tries=self.max_tries))
        while not pending.empty():
            tr = runner.get_trace(*args, **kwargs)
            log_w = tr.log_prob_sum()
            if not isinstance(log_w, torch.Tensor):
                log_w = torch.tensor(float(log_w))
            yield tr, log_w.detach()
