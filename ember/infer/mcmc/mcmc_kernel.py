"""The interface every MCMC kernel implements, so that :class:`~ember.infer.mcmc.api.MCMC`
can drive it."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections import OrderedDict

__all__ = ["MCMCKernel"]


class MCMCKernel(metaclass=ABCMeta):
    """A Markov transition kernel over a dict of (unconstrained) parameters.

    :class:`~ember.infer.mcmc.api.MCMC` calls :meth:`setup` once per chain with the
    model's arguments, then :meth:`sample` once per iteration (warm-up first), then
    :meth:`cleanup`. Subclasses implement :meth:`sample` and usually :meth:`setup`.
    """

    def setup(self, warmup_steps: int, *args, **kwargs) -> None:  # noqa: B027
        """Prepare to run ``warmup_steps`` warm-up iterations on the model given ``args``."""

    def cleanup(self) -> None:  # noqa: B027
        """Release what :meth:`setup` built (called after the last iteration)."""

    def logging(self) -> OrderedDict:
        """Figures to show beside the progress bar (e.g. step size, acceptance rate)."""
        return OrderedDict()

    def diagnostics(self) -> dict:
        """Per-chain diagnostics reported by ``MCMC.diagnostics()`` (e.g. divergences)."""
        return {}

    def end_warmup(self) -> None:  # noqa: B027
        """Called once warm-up is over."""

    @property
    def initial_params(self):
        """The parameters the chain starts from."""
        raise NotImplementedError

    @initial_params.setter
    def initial_params(self, params) -> None:
        raise NotImplementedError

    @abstractmethod
    def sample(self, params: dict) -> dict:
        """One transition: return the next parameters given the current ones."""
        raise NotImplementedError

    def __call__(self, params: dict) -> dict:
        return self.sample(params)
