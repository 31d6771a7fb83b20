"""A Gaussian random-walk Metropolis kernel over the unconstrained space."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable, Optional

import torch

from ember.infer.autoguide.initialization import init_to_uniform
from ember.infer.mcmc.mcmc_kernel import MCMCKernel
from ember.infer.mcmc.util import initialize_model

__all__ = ["RandomWalkKernel"]


class RandomWalkKernel(MCMCKernel):
    """Random-walk Metropolis: propose ``z + step_size * N(0, I)`` in the unconstrained
    space and accept with the Metropolis probability.

    During warm-up the log step size follows a Robbins-Monro recursion towards the
    target acceptance probability (0.234 is optimal for high-dimensional Gaussian
    targets); it is frozen afterwards.

    :param model: the model (continuous latent sites only, or enumerable discrete ones).
    :param float init_step_size: the initial proposal scale.
    :param float target_accept_prob: the acceptance probability warm-up aims at.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.mcmc import MCMC
        >>> def model():
        ...     ember.sample("x", dist.Normal(0.0, 1.0))
        >>> ember.set_rng_seed(0)
        >>> mcmc = MCMC(RandomWalkKernel(model), 100, warmup_steps=50, disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["x"].shape
        torch.Size([100])
    """

    def __init__(
        self,
        model: Callable,
        init_step_size: float = 0.1,
        target_accept_prob: float = 0.234,
        init_strategy: Callable = init_to_uniform,
        max_plate_nesting: Optional[int] = None,
    ):
        if not init_step_size > 0:
            raise ValueError(f"init_step_size must be positive, got {init_step_size}")
        if not 0 < target_accept_prob < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob}")
        self.model = model
        self.init_step_size = init_step_size
        self.target_accept_prob = target_accept_prob
        self._init_strategy = init_strategy
        self._max_plate_nesting = max_plate_nesting
        self._initial_params = None
        self.transforms = None

    @property
    def initial_params(self):
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params) -> None:
        self._initial_params = params

    def setup(self, warmup_steps: int, *args, **kwargs) -> None:
        init_params, potential_fn, transforms, _ = initialize_model(
            self.model, args, kwargs, max_plate_nesting=self._max_plate_nesting,
            init_strategy=self._init_strategy, initial_params=self._initial_params,
        )  # fmt: skip
        self._initial_params = init_params
        self.potential_fn = potential_fn
        self.transforms = transforms
        self._warmup_steps = warmup_steps
        self._log_step_size = math.log(self.init_step_size)
        self._t = 0
        self._accept_cnt = 0
        self._mean_accept_prob = 0.0
        self._potential_energy = None

    def sample(self, params: dict) -> dict:
        with torch.no_grad():
            if self._potential_energy is None:
                self._potential_energy = float(self.potential_fn(params))
            step_size = math.exp(self._log_step_size)
            proposal = {k: v + step_size * torch.randn_like(v) for k, v in params.items()}
            pe_new = float(self.potential_fn(proposal))
        delta = pe_new - self._potential_energy
        if math.isnan(delta):
            delta = math.inf
        accept_prob = 1.0 if delta <= 0 else math.exp(-delta)
        accepted = float(torch.rand(())) < accept_prob
        self._t += 1
        if self._t <= self._warmup_steps:
            self._log_step_size += (accept_prob - self.target_accept_prob) / self._t**0.6
            n = self._t
        else:
            self._accept_cnt += int(accepted)
            n = self._t - self._warmup_steps
        self._mean_accept_prob += (accept_prob - self._mean_accept_prob) / n
        if accepted:
            self._potential_energy = pe_new
            return proposal
        return params

    def end_warmup(self) -> None:
        self._mean_accept_prob = 0.0

    def logging(self) -> OrderedDict:
        return OrderedDict(
            [
                ("step size", f"{math.exp(self._log_step_size):.2e}"),
                ("acc. prob", f"{self._mean_accept_prob:.3f}"),
            ]
        )

    def diagnostics(self) -> dict:
        n = max(self._t - self._warmup_steps, 1)
        return {"acceptance rate": self._accept_cnt / n}
