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
from ember.infer.util import (
    NonFiniteLossError,
    check_step_finite,
    is_validation_enabled,
    torch_item,
    unconstrained_param,
    zero_grads,
)
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

    A step makes one host synchronisation: converting the loss to a float. With
    validation on (the default), a NaN or infinite loss or gradient raises
    :class:`~ember.infer.util.NonFiniteLossError` before the optimizer runs,
    naming the step, the sites and the parameters concerned; the parameters keep
    their last finite values.

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
        #: how many times :meth:`step` has been called (failed steps included); error
        #: messages name a step by this count
        self.steps_taken = 0
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
        if isinstance(value, tuple):  # several losses, e.g. ReweightedWakeSleep's pair
            return type(value)(torch_item(x) for x in value)
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
        self.steps_taken += 1
        try:
            return self._take_step(args, kwargs)
        except BaseException as e:
            # A step stopped after its backward pass (an error, or Ctrl-C before the
            # optimizer ran) must not leave gradients that the next step would add to.
            zero_grads(p for _, p in get_param_store().named_parameters())
            if isinstance(e, NonFiniteLossError):
                raise NonFiniteLossError(f"SVI step {self.steps_taken}: {e}") from None
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
            if is_validation_enabled():
                check_step_finite(sum(loss) if isinstance(loss, tuple) else loss, params)
        self.optim(params)
        zero_grads(params)
        if isinstance(loss, tuple):  # several losses, e.g. ReweightedWakeSleep's pair
            return type(loss)(torch_item(x) for x in loss)
        return torch_item(loss)

    def run(
        self,
        num_steps: int,
        *args,
        progress: bool = True,
        callback: Callable[[int, float], None] | None = None,
        **kwargs,
    ) -> List[float]:
        """Take ``num_steps`` steps and return the loss of each (beyond Pyro's API).

        A progress display (``ember.infer.progress.progress_loop``) shows the
        running loss; ``progress=False`` turns it off. ``callback(step, loss)``,
        if given, is called after every step (``step`` counts from 1). Other
        arguments after ``num_steps`` go to model and guide on every step.

        If a step raises (a bad model, a non-finite loss with validation on) or
        the run is interrupted (Ctrl-C: ``KeyboardInterrupt``), the exception
        propagates with the history so far attached: ``err.losses`` is the list
        of the losses of the steps that completed (their parameter updates are
        kept).

        Example::

            >>> import torch, ember, ember.distributions as dist
            >>> from ember.infer import SVI, Trace_ELBO
            >>> from ember.optim import Adam
            >>> ember.clear_param_store()
            >>> def model():
            ...     ember.sample("z", dist.Normal(0.0, 1.0))
            >>> def guide():
            ...     loc = ember.param("loc", torch.tensor(0.0))
            ...     ember.sample("z", dist.Normal(loc, 1.0))
            >>> def stop_after_two(step, loss):
            ...     if step == 2:
            ...         raise KeyboardInterrupt
            >>> svi = SVI(model, guide, Adam({"lr": 0.1}), Trace_ELBO())
            >>> try:
            ...     svi.run(10, progress=False, callback=stop_after_two)
            ... except KeyboardInterrupt as err:
            ...     len(err.losses)
            2
        """
        if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 0:
            raise ValueError(f"SVI.run: num_steps must be an int >= 0, got {num_steps!r}")
        if callback is not None and not callable(callback):
            raise TypeError(
                f"SVI.run: callback must be callable as callback(step, loss), got "
                f"{type(callback).__name__}"
            )
        losses: List[float] = []
        step = self.step

        def one_step():
            loss = step(*args, **kwargs)
            losses.append(loss)
            if callback is not None:
                callback(len(losses), loss)
            return loss

        try:
            return progress_loop(
                one_step, num_steps, desc="svi", disable=None if progress else True
            )
        except BaseException as err:
            # the history so far, for a caller that catches the error (or Ctrl-C)
            try:
                err.losses = losses
            except AttributeError:  # an exception type that takes no attributes
                pass
            raise
