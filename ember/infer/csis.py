"""Compiled sequential importance sampling (inference compilation).

:class:`CSIS` trains a guide to be a good importance proposal for *every*
observation: it minimizes ``E_{p(x, y)}[-log q(x | y)]`` (which is
``KL(p(x | y) || q(x | y))`` averaged over ``p(y)``, up to a constant) with
traces drawn from the model's joint distribution, then does importance
sampling with the trained guide (Le, Baydin and Wood 2017, "Inference
compilation and universal probabilistic programming").

The model takes its observations through a keyword argument
``observations`` (a dict of site name -> value) and the guide must accept the
same keyword: during training the guide is given the values the model's
observed sites took in a joint sample.
"""

from __future__ import annotations

from typing import Callable, Dict, List

import torch

from ember import poutine
from ember.infer.importance import Importance
from ember.infer.util import (
    check_model_guide_match,
    torch_item,
    unconstrained_param,
    zero_grads,
)
from ember.poutine.trace_messenger import trace_run
from ember.poutine.util import prune_subsample_sites
from ember.util import warn_if_nan

__all__ = ["CSIS"]


def _unique_params(param_trace, with_grad: bool) -> List[torch.Tensor]:
    """The optimizable leaves of the param sites of ``param_trace``, once each."""
    found: Dict[int, torch.Tensor] = {}
    for site in param_trace.nodes.values():
        if site["type"] != "param":
            continue
        leaf = unconstrained_param(site["value"])
        if with_grad and leaf.grad is None:
            continue
        found[id(leaf)] = leaf
    return list(found.values())


class CSIS(Importance):
    """Compiled sequential importance sampling: train a guide on the model's joint
    samples, then use it as the proposal of :class:`~ember.infer.importance.Importance`.

    :param model: the model; it receives its observations through the keyword
        argument ``observations`` (dict of site name -> value).
    :param guide: the proposal; it must also accept ``observations``.
    :param optim: an :mod:`ember.optim` optimizer for the guide's parameters.
    :param int num_inference_samples: importance samples drawn by ``run``.
    :param int training_batch_size: joint samples per gradient step.
    :param int validation_batch_size: joint samples in the fixed batch used by
        :meth:`validation_loss`.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.optim import Adam
        >>> ember.clear_param_store(); ember.set_rng_seed(0)
        >>> def model(observations={"y": 0.0}):
        ...     x = ember.sample("x", dist.Normal(0.0, 1.0))
        ...     ember.sample("y", dist.Normal(x, 1.0), obs=observations["y"])
        >>> def guide(observations={"y": 0.0}):
        ...     w = ember.param("w", torch.tensor(0.0))
        ...     ember.sample("x", dist.Normal(w * observations["y"], 0.75))
        >>> csis = CSIS(model, guide, Adam({"lr": 0.05}), num_inference_samples=100)
        >>> for _ in range(300):
        ...     loss = csis.step()
        >>> round(ember.param("w").item(), 1)  # the posterior mean is y / 2
        0.5
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable,
        optim,
        num_inference_samples: int = 10,
        training_batch_size: int = 10,
        validation_batch_size: int = 20,
    ):
        if guide is None:
            raise ValueError("CSIS: a guide (the proposal to train) is required")
        super().__init__(model, guide, num_inference_samples)
        for name, value in (
            ("training_batch_size", training_batch_size),
            ("validation_batch_size", validation_batch_size),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"CSIS: {name} must be an int >= 1, got {value!r}")
        if not callable(optim):
            raise TypeError(
                "CSIS: optim must be an ember.optim optimizer (called as optim(params)), got "
                f"{type(optim).__name__}"
            )
        self.optim = optim
        self.training_batch_size = training_batch_size
        self.validation_batch_size = validation_batch_size
        self.validation_batch = None

    def set_validation_batch(self, *args, **kwargs) -> None:
        """Draw and keep ``validation_batch_size`` joint samples of the model (arguments
        go to the model); :meth:`validation_loss` uses them."""
        self.validation_batch = [
            self._sample_from_joint(*args, **kwargs) for _ in range(self.validation_batch_size)
        ]

    def step(self, *args, **kwargs) -> float:
        """One gradient step on a fresh batch of joint samples; returns the loss estimate.

        Arguments go to model and guide.
        """
        with poutine.trace(param_only=True) as param_capture:
            loss = self.loss_and_grads(True, None, *args, **kwargs)
        params = _unique_params(param_capture.trace, with_grad=True)
        self.optim(params)
        zero_grads(params)
        return torch_item(loss)

    def loss_and_grads(self, grads: bool, batch, *args, **kwargs) -> float:
        """Estimate ``E_{p(x, y)}[-log q(x | y)]`` on ``batch`` (a list of model traces;
        ``None`` draws ``training_batch_size`` fresh ones). With ``grads``, add the
        loss's gradient to the guide's parameters' ``.grad``.
        """
        if batch is None:
            batch = [
                self._sample_from_joint(*args, **kwargs) for _ in range(self.training_batch_size)
            ]
        batch_size = len(batch)
        if batch_size == 0:
            raise ValueError("CSIS: the batch of model traces is empty")
        loss = 0.0
        for model_trace in batch:
            with poutine.trace(param_only=True) as param_capture:
                guide_trace = self._get_matched_trace(model_trace, *args, **kwargs)
            particle_loss = -guide_trace.log_prob_sum() / batch_size
            if grads:
                params = _unique_params(param_capture.trace, with_grad=False)
                params = [p for p in params if p.requires_grad]
                if params and particle_loss.requires_grad:
                    param_grads = torch.autograd.grad(particle_loss, params, allow_unused=True)
                    for p, g in zip(params, param_grads):
                        if g is not None:
                            p.grad = g if p.grad is None else p.grad + g
            loss += torch_item(particle_loss)
        warn_if_nan(loss, "loss")
        return loss

    def validation_loss(self, *args, **kwargs) -> float:
        """The loss on the fixed validation batch (drawn on first use with these
        arguments): a less noisy way to follow training."""
        if self.validation_batch is None:
            self.set_validation_batch(*args, **kwargs)
        return self.loss_and_grads(False, self.validation_batch, *args, **kwargs)

    def _get_matched_trace(self, model_trace, *args, **kwargs):
        """The guide's trace with its sites set to ``model_trace``'s values; the guide
        receives the model's observed values as ``observations``."""
        observations = {}
        for name, site in model_trace.nodes.items():
            if site["type"] == "sample" and (site.get("infer") or {}).get("was_observed", False):
                site["is_observed"] = True
                observations[name] = site["value"]
        kwargs["observations"] = observations
        guide_trace = trace_run(poutine.replay(self.guide, trace=model_trace), args, kwargs)
        check_model_guide_match(model_trace, guide_trace)
        return prune_subsample_sites(guide_trace)

    def _sample_from_joint(self, *args, **kwargs):
        """A trace of the model with its observed sites sampled (arguments go to the model)."""
        with torch.no_grad():
            return trace_run(poutine.uncondition(self.model), args, kwargs)
