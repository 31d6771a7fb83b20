"""ELBO: the base class of the evidence-lower-bound estimators, and their one contract.

An estimator implements :meth:`ELBO.particle_elbo`: from one particle (a guide
trace with the model replayed against it; or all particles at once, vectorized)
it returns an estimate of the ELBO, a surrogate whose gradient is an unbiased
estimate of the ELBO's gradient, and the traces it made. Everything else is
written once here on top of it: :meth:`ELBO.loss_and_surrogate` (the one
particle loop), :meth:`~ELBO.loss`, :meth:`~ELBO.loss_and_grads`,
:meth:`~ELBO.differentiable_loss` and :meth:`~ELBO.loss_and_params`, which
:class:`~ember.infer.svi.SVI` uses to find the parameters of a step.
"""

from __future__ import annotations

import math
from typing import Callable, List, NamedTuple, Sequence, Tuple, Union

import torch

from ember import poutine
from ember.infer.util import (
    VECTORIZED_PARTICLES_PLATE,
    check_if_enumerated,
    check_step_finite,
    get_importance_trace,
    guess_max_plate_nesting,
    is_validation_enabled,
    torch_item,
    unconstrained_param,
    vectorize,
)
from ember.util import warn_if_nan

__all__ = ["ELBO", "ELBOModule", "ParticleEstimate"]


class ParticleEstimate(NamedTuple):
    """What :meth:`ELBO.particle_elbo` returns for one particle (or all, vectorized).

    * ``elbo``: the ELBO estimate (a tensor or a number). With vectorized
      particles, a tensor whose mean over its entries is the average over the
      particles: one entry per particle, or a scalar shared by all.
    * ``surrogate_elbo``: the same for a surrogate whose gradient is an unbiased
      estimate of the ELBO's gradient (its value need not be the ELBO's). It may
      be ``elbo`` itself when the two coincide (e.g. every site reparameterized).
    * ``traces``: the traces the estimate was made from; their ``param`` sites
      are the parameters the step touched.
    """

    elbo: Union[torch.Tensor, float]
    surrogate_elbo: Union[torch.Tensor, float]
    traces: Sequence


def _negated(value) -> torch.Tensor:
    """``0.0 - value`` as a tensor (not ``-value``: a zero stays +0.0)."""
    if isinstance(value, torch.Tensor):
        return torch.rsub(value, 0.0)
    return torch.tensor(0.0 - float(value))


def _particle_mean(value):
    """The particle average of a vectorized estimate (per-particle entries or a shared scalar)."""
    if isinstance(value, torch.Tensor) and value.dim():
        return value.mean()
    return value


class ELBO:
    """Base class of the ELBO estimators used by :class:`~ember.infer.svi.SVI`.

    :param num_particles: particles (samples from the guide) per estimate.
    :param max_plate_nesting: the number of plate dimensions in model and
        guide. With ``vectorize_particles=True`` the particles get the next
        dimension to the left; if not given it is found by tracing model and
        guide once.
    :param vectorize_particles: draw all particles in one pass, in a plate of
        size ``num_particles`` at ``dim=-(max_plate_nesting + 1)``, instead of
        a Python loop.
    :param strict_enumeration_warning: whether
        :class:`~ember.infer.traceenum_elbo.TraceEnum_ELBO` warns when nothing is
        enumerated.
    :param ignore_jit_warnings: kept for Pyro compatibility.
    :param retain_graph: passed to ``backward``.
    :param tail_adaptive_beta: kept for Pyro compatibility.

    A subclass implements :meth:`particle_elbo`; every other method is built on it.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import Trace_ELBO, TraceMeanField_ELBO
        >>> elbo = Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=1)
        >>> elbo.num_particles, elbo.max_plate_nesting
        (10, 1)
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     loc = ember.param("loc_elbo_doc", torch.tensor(1.0))
        ...     ember.sample("z", dist.Normal(loc, 1.0))
        >>> loss, params = TraceMeanField_ELBO().loss_and_params(model, guide)
        >>> loss  # KL(N(1, 1) || N(0, 1))
        tensor(0.5000)
        >>> [p.shape for p in params], params[0].grad  # d KL / d loc = loc
        ([torch.Size([])], tensor(1.))
    """

    def __init__(
        self,
        num_particles: int = 1,
        max_plate_nesting: float = math.inf,
        max_iarange_nesting: float | None = None,
        vectorize_particles: bool = False,
        strict_enumeration_warning: bool = True,
        ignore_jit_warnings: bool = False,
        jit_options: dict | None = None,
        retain_graph: bool | None = None,
        tail_adaptive_beta: float = -1.0,
    ):
        if max_iarange_nesting is not None:
            max_plate_nesting = max_iarange_nesting
        if not isinstance(num_particles, int) or isinstance(num_particles, bool):
            raise TypeError(f"num_particles must be an int, got {num_particles!r}")
        if num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {num_particles}")
        if max_plate_nesting != math.inf:
            if int(max_plate_nesting) != max_plate_nesting or max_plate_nesting < 0:
                raise ValueError(
                    "max_plate_nesting must be a non-negative int or inf, got "
                    f"{max_plate_nesting!r}"
                )
            max_plate_nesting = int(max_plate_nesting)
        self.num_particles = num_particles
        self.max_plate_nesting = max_plate_nesting
        self.vectorize_particles = bool(vectorize_particles)
        self.retain_graph = retain_graph
        self.strict_enumeration_warning = strict_enumeration_warning
        self.ignore_jit_warnings = ignore_jit_warnings
        self.jit_options = jit_options
        self.tail_adaptive_beta = tail_adaptive_beta

    # --------------------------------------------------------------- the contract
    def particle_elbo(
        self, model: Callable, guide: Callable, args: Tuple, kwargs: dict, particle_dim: int | None
    ) -> ParticleEstimate:
        """The ELBO and its surrogate from one particle: the one method an estimator implements.

        With ``particle_dim`` not None, ``model`` and ``guide`` already run all
        particles at once inside a plate at that dim (named
        :data:`~ember.infer.util.VECTORIZED_PARTICLES_PLATE`; the traces need
        ``-particle_dim`` plate dims) and the estimate is per particle (see
        :class:`ParticleEstimate`). Under ``torch.no_grad()`` only the ELBO is
        needed: an estimator may return it as the surrogate and must not update
        any state it learns across steps (e.g. baselines).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement particle_elbo(model, guide, args, kwargs, "
            "particle_dim) (or override loss_and_surrogate)"
        )

    def get_trace_pair(self, model, guide, args, kwargs, particle_dim: int | None = None):
        """The scored ``(model_trace, guide_trace)`` of one particle (all, when vectorized).

        :func:`~ember.infer.util.get_importance_trace` with this estimator's plate
        nesting (one more dim for vectorized particles); with validation on, guide
        sites configured for enumeration give a warning (only
        :class:`~ember.infer.traceenum_elbo.TraceEnum_ELBO` enumerates them).
        """
        nesting = self.max_plate_nesting if particle_dim is None else -particle_dim
        model_trace, guide_trace = get_importance_trace("flat", nesting, model, guide, args, kwargs)
        if is_validation_enabled():
            check_if_enumerated(guide_trace)
        return model_trace, guide_trace

    def _guess_max_plate_nesting(self, model, guide, args, kwargs) -> None:
        """Set ``max_plate_nesting`` by tracing guide and model once."""
        self.max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)

    def _estimate(self, model, guide, args, kwargs):
        """``(loss, surrogate_loss, traces)``: the particle loop, averaging over particles.

        The particles are drawn in one vectorized pass or one at a time; when every
        particle's surrogate *is* its ELBO, the loss is computed once and reused.
        """
        if self.vectorize_particles and self.num_particles > 1:
            if self.max_plate_nesting == math.inf:
                self._guess_max_plate_nesting(model, guide, args, kwargs)
            dim = -int(self.max_plate_nesting) - 1
            n = self.num_particles
            model = vectorize(model, n, dim, VECTORIZED_PARTICLES_PLATE)
            guide = vectorize(guide, n, dim, VECTORIZED_PARTICLES_PLATE)
            elbo, surrogate, traces = self.particle_elbo(model, guide, args, kwargs, dim)
            same = surrogate is elbo
            elbo = _particle_mean(elbo)
            surrogate = elbo if same else _particle_mean(surrogate)
        else:
            elbo = surrogate = None
            traces: List = []
            same = True
            for _ in range(self.num_particles):
                elbo_p, surrogate_p, traces_p = self.particle_elbo(model, guide, args, kwargs, None)
                traces.extend(traces_p)
                same = same and surrogate_p is elbo_p
                elbo = elbo_p if elbo is None else elbo + elbo_p
                if same:
                    surrogate = elbo
                else:
                    surrogate = surrogate_p if surrogate is None else surrogate + surrogate_p
            if self.num_particles > 1:
                elbo = elbo / self.num_particles
                surrogate = elbo if same else surrogate / self.num_particles
        # (0.0 - x rather than -x: a zero loss stays +0.0)
        loss = _negated(elbo)
        surrogate_loss = loss if surrogate is elbo else _negated(surrogate)
        return loss, surrogate_loss, traces

    def loss_and_surrogate(
        self, model: Callable, guide: Callable, *args, **kwargs
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(loss, surrogate_loss)`` as tensors, averaged over ``num_particles``.

        ``loss`` estimates the negative ELBO; the gradient of ``surrogate_loss``
        is an unbiased estimate of the loss's gradient. Arguments after
        ``guide`` go to both.
        """
        loss, surrogate_loss, _ = self._estimate(model, guide, args, kwargs)
        return loss, surrogate_loss

    # --------------------------------------------------------------- built on it
    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """An estimate of the loss (the negative ELBO) as a float, without gradients."""
        with torch.no_grad():
            loss, _ = self.loss_and_surrogate(model, guide, *args, **kwargs)
        return _checked_float(loss)

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """Estimate the loss and run ``backward`` on its surrogate; returns the loss as a float."""
        loss, surrogate_loss = self.loss_and_surrogate(model, guide, *args, **kwargs)
        if surrogate_loss.requires_grad:
            surrogate_loss.backward(retain_graph=self.retain_graph)
        return _checked_float(loss)

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs):
        """The surrogate loss as a tensor one can differentiate (its value is the loss)."""
        loss, surrogate_loss = self.loss_and_surrogate(model, guide, *args, **kwargs)
        if surrogate_loss is loss:
            return loss
        return surrogate_loss - surrogate_loss.detach() + loss.detach()

    def loss_and_params(
        self, model: Callable, guide: Callable, *args, **kwargs
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Run ``backward`` on the surrogate loss; return ``(loss, params)``.

        ``loss`` is the detached loss tensor; ``params`` are the unconstrained
        parameter tensors (the leaves an optimizer updates) of every ``param``
        site in the traces the estimate was made from, each once. This is one
        step's work for :class:`~ember.infer.svi.SVI`. With validation on, a NaN
        or infinite loss or gradient raises
        :class:`~ember.infer.util.NonFiniteLossError` naming the sites and
        parameters concerned (see :func:`~ember.infer.util.check_step_finite`).
        """
        if type(self).loss_and_surrogate is not ELBO.loss_and_surrogate:
            # a subclass computes its losses its own way: record the params it reads
            with poutine.trace(param_only=True) as capture:
                loss, surrogate_loss = self.loss_and_surrogate(model, guide, *args, **kwargs)
            traces = [capture.trace]
        else:
            loss, surrogate_loss, traces = self._estimate(model, guide, args, kwargs)
        if surrogate_loss.requires_grad:
            surrogate_loss.backward(retain_graph=self.retain_graph)
        params = {}
        for trace in traces:
            for site in trace.nodes.values():
                if site["type"] == "param":
                    p = unconstrained_param(site["value"])
                    if p.requires_grad:
                        params[id(p)] = p
        params = list(params.values())
        loss = loss.detach()
        if is_validation_enabled():
            check_step_finite(loss, params, traces)
        return loss, params

    def __call__(self, model: Callable, guide: Callable) -> ELBOModule:
        """Bind the loss to a model and a guide as a ``torch.nn.Module``."""
        return ELBOModule(model, guide, self)


def _checked_float(loss: torch.Tensor) -> float:
    value = torch_item(loss)
    if value != value:
        warn_if_nan(value, "loss")
    return value


class ELBOModule(torch.nn.Module):
    """An ELBO bound to a model and a guide; calling it returns the differentiable loss.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import Trace_ELBO
        >>> def model(): ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     loc = ember.param("loc_elbo_module_doc", torch.tensor(0.0))
        ...     ember.sample("z", dist.Normal(loc, 1.0))
        >>> loss_fn = Trace_ELBO()(model, guide)
        >>> loss_fn().shape
        torch.Size([])
    """

    def __init__(self, model: Callable, guide: Callable, elbo: ELBO):
        super().__init__()
        self.model = model
        self.guide = guide
        self.elbo = elbo

    def forward(self, *args, **kwargs):
        return self.elbo.differentiable_loss(self.model, self.guide, *args, **kwargs)
