"""SVI: stochastic variational inference, one gradient step at a time.

Each step estimates the loss (by default an ELBO), back-propagates its
surrogate, and lets an :class:`~ember.optim.PyroOptim` update every parameter
the step touched. Parameters are found through the traces of the step (their
``param`` sites; :meth:`ELBO.loss_and_params <ember.infer.elbo.ELBO.loss_and_params>`),
so parameters created for the first time mid-training join the optimization
as soon as they appear.
"""

from __future__ import annotations

from typing import Callable, List, Union

import torch

from ember import poutine
from ember.infer.elbo import ELBO
from ember.infer.progress import progress_loop
from ember.infer.util import torch_item, unconstrained_param, zero_grads
from ember.params.param_store import get_param_store

__all__ = ["SVI"]


class SVI:
    """Stochastic variational inference: optimize a guide's (and model's) parameters.

    :param model: the model (a callable with ember primitives).
    :param guide: the guide (variational distribution) for the model.
    :param optim: an optimizer from :mod:`ember.optim` (a ``PyroOptim``): called
        with the step's parameters after their gradients are computed.
    :param loss: an :class:`~ember.infer.elbo.ELBO` instance, or a callable
        ``loss(model, guide, *args, **kwargs)`` returning a differentiable scalar
        tensor (then ``step`` runs backward on it).
    :param loss_and_grads: optional callable with the signature of
        :meth:`ELBO.loss_and_grads` that computes the loss and runs backward.

    A step makes one host synchronisation: converting the loss to a float.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import SVI, Trace_ELBO
        >>> from ember.optim import Adam
        >>> ember.clear_param_store(); ember.set_rng_seed(0)
        >>> def model(data):
        ...     mu = ember.sample("mu", dist.Normal(0.0, 10.0))
        ...     with ember.plate("data", len(data)):
        ...         ember.sample("obs", dist.Normal(mu, 1.0), obs=data)
        >>> def guide(data):
        ...     loc = ember.param("loc", torch.tensor(0.0))
        ...     ember.sample("mu", dist.Normal(loc, 0.1))
        >>> svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
        >>> data = torch.full((20,), 3.0)
        >>> losses = svi.run(300, data, progress=False)
        >>> round(ember.param("loc").item())
        3
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim,
        loss: Union[ELBO, Callable],
        loss_and_grads: Callable | None = None,
        num_samples: int = 0,
        num_steps: int = 0,
        **kwargs,
    ):
        if not callable(model):
            raise TypeError(f"SVI: model must be callable, got {type(model).__name__}")
        if not callable(guide):
            raise TypeError(f"SVI: guide must be callable, got {type(guide).__name__}")
        if isinstance(optim, torch.optim.Optimizer):
            raise TypeError(
                "SVI: optim must be an ember.optim optimizer (e.g. "
                "ember.optim.Adam({'lr': 0.01})), "
                f"not a torch.optim.{type(optim).__name__} instance: ember creates parameters "
                "while the model runs, so the optimizer must take them up as they appear"
            )
        if not callable(optim):
            raise TypeError(
                "SVI: optim must be an ember.optim optimizer, called as optim(params), got "
                f"{type(optim).__name__}"
            )
        self.model = model
        self.guide = guide
        self.optim = optim
        self.num_steps = num_steps
        self.num_samples = num_samples
        self._elbo: ELBO | None = None
        if isinstance(loss, ELBO):
            self._elbo = loss
            self.loss = loss.loss
            self.loss_and_grads = loss.loss_and_grads if loss_and_grads is None else loss_and_grads
            if loss_and_grads is not None or type(loss).loss_and_grads is not ELBO.loss_and_grads:
                self._elbo = None  # a custom loss_and_grads: call it as given
        elif callable(loss):
            self.loss = loss
            if loss_and_grads is None:

                def _loss_and_grads(model, guide, *args, **kwargs):
                    value = loss(model, guide, *args, **kwargs)
                    if isinstance(value, torch.Tensor) and value.requires_grad:
                        value.backward(retain_graph=True)
                    return value.detach() if isinstance(value, torch.Tensor) else value

                loss_and_grads = _loss_and_grads
            self.loss_and_grads = loss_and_grads
        else:
            raise TypeError(
                "SVI: loss must be an ELBO instance (e.g. Trace_ELBO()) or a callable "
                f"loss(model, guide, *args, **kwargs), got {type(loss).__name__}"
            )

    def evaluate_loss(self, *args, **kwargs) -> float:
        """Estimate the loss without taking a step; arguments go to model and guide."""
        with torch.no_grad():
            value = self.loss(self.model, self.guide, *args, **kwargs)
        return torch_item(value)

    def step(self, *args, **kwargs) -> float:
        """Take one gradient step on the loss; returns the loss estimate as a float."""
        step_context = getattr(self.optim, "step_context", None)
        if step_context is not None:
            # e.g. a distributed optimizer that synchronizes parameters as they are read
            with step_context():
                return self._step(args, kwargs)
        return self._step(args, kwargs)

    def _step(self, args, kwargs) -> float:
        try:
            return self._take_step(args, kwargs)
        except BaseException:
            # A step stopped after its backward pass (an error, or Ctrl-C before the
            # optimizer ran) must not leave gradients that the next step would add to.
            zero_grads(p for _, p in get_param_store().named_parameters())
            raise

    def _take_step(self, args, kwargs) -> float:
        if self._elbo is not None:
            # the estimator reports the params of the traces it made
            loss, params = self._elbo.loss_and_params(self.model, self.guide, *args, **kwargs)
        else:
            with poutine.trace(param_only=True) as param_capture:
                loss = self.loss_and_grads(self.model, self.guide, *args, **kwargs)
            params = {}
            for site in param_capture.trace.nodes.values():
                p = unconstrained_param(site["value"])
                if p.requires_grad:
                    params[id(p)] = p
            params = list(params.values())
        self.optim(params)
        zero_grads(params)
        return torch_item(loss)

    def run(self, num_steps: int, *args, progress: bool = True, **kwargs) -> List[float]:
        """Take ``num_steps`` steps and return the loss of each (beyond Pyro's API).

        A progress display (``ember.infer.progress.progress_loop``) shows the
        running loss; ``progress=False`` turns it off. Arguments after
        ``num_steps`` go to model and guide on every step.

        Example: ``losses = svi.run(1000, data)`` replaces the usual
        ``for _ in range(1000): svi.step(data)`` loop.
        """
        if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 0:
            raise ValueError(f"SVI.run: num_steps must be an int >= 0, got {num_steps!r}")
        return progress_loop(
            lambda: self.step(*args, **kwargs),
            num_steps,
            desc="svi",
            disable=None if progress else True,
        )
