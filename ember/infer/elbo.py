"""ELBO: the base class of the evidence-lower-bound estimators.

An estimator draws particles (guide traces, with the model replayed against
each), turns them into an estimate of the ELBO and a surrogate whose gradient
is an unbiased estimate of the ELBO's gradient. Subclasses say how
(:class:`~ember.infer.trace_elbo.Trace_ELBO`,
:class:`~ember.infer.tracegraph_elbo.TraceGraph_ELBO`, ...).
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from typing import Callable, Iterator, Optional, Tuple

import torch

from ember.infer.util import (
    _guide_and_model_depth,
    get_importance_trace,
    torch_item,
    vectorize,
)

__all__ = ["ELBO", "ELBOModule"]


class ELBO(metaclass=ABCMeta):
    """Base class of the ELBO estimators used by :class:`~ember.infer.svi.SVI`.

    :param num_particles: particles (samples from the guide) per estimate.
    :param max_plate_nesting: the number of plate dimensions in model and
        guide. With ``vectorize_particles=True`` the particles get the next
        dimension to the left; if not given it is found by tracing model and
        guide once.
    :param vectorize_particles: draw all particles in one pass, in a plate of
        size ``num_particles`` at ``dim=-(max_plate_nesting + 1)``, instead of
        a Python loop.
    :param strict_enumeration_warning: kept for Pyro compatibility.
    :param ignore_jit_warnings: kept for Pyro compatibility.
    :param retain_graph: passed to ``backward``.
    :param tail_adaptive_beta: kept for Pyro compatibility.

    Example::

        >>> from ember.infer import Trace_ELBO
        >>> elbo = Trace_ELBO(num_particles=10, vectorize_particles=True, max_plate_nesting=1)
        >>> elbo.num_particles, elbo.max_plate_nesting
        (10, 1)
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
        self._vectorized_dim: int | None = None

    # --------------------------------------------------------------- particles
    def _guess_max_plate_nesting(self, model, guide, args, kwargs) -> None:
        """Find ``max_plate_nesting`` by tracing guide and model once."""
        self.max_plate_nesting = _guide_and_model_depth(model, guide, args, kwargs)

    def _particle_dim(self) -> int | None:
        if self.vectorize_particles and self.num_particles > 1:
            return -int(self.max_plate_nesting) - 1
        return None

    def _trace_plate_nesting(self) -> float:
        """Plate dims a site may use in the traces: one more with vectorized particles."""
        if self._particle_dim() is not None:
            return self.max_plate_nesting + 1
        return self.max_plate_nesting

    def _vectorized(self, fn: Callable) -> Callable:
        return vectorize(fn, self.num_particles, self._particle_dim())

    def _get_trace(self, model, guide, args, kwargs):
        """One pair ``(model_trace, guide_trace)``; subclasses choose how it is made."""
        return get_importance_trace("flat", self._trace_plate_nesting(), model, guide, args, kwargs)

    def _get_traces(self, model, guide, args, kwargs) -> Iterator[Tuple[object, object]]:
        """Yield ``(model_trace, guide_trace)`` pairs: one vectorized pair or one per particle."""
        if self.vectorize_particles and self.num_particles > 1:
            if self.max_plate_nesting == math.inf:
                self._guess_max_plate_nesting(model, guide, args, kwargs)
            pair = self._get_trace(self._vectorized(model), self._vectorized(guide), args, kwargs)
            self._collect_params(pair)
            yield pair
        else:
            for _ in range(self.num_particles):
                pair = self._get_trace(model, guide, args, kwargs)
                self._collect_params(pair)
                yield pair

    # Estimators whose traces all come from _get_traces report the param sites
    # they saw, so SVI need not run an extra param-recording handler.
    _reports_params = False
    _param_collector: Optional[dict] = None

    def _collect_params(self, pair) -> None:
        collector = self._param_collector
        if collector is None:
            return
        for trace in pair:
            for site in trace.nodes.values():
                if site["type"] == "param":
                    collector[site["name"]] = site["value"]

    # --------------------------------------------------------------- interface
    @abstractmethod
    def _loss_tensors(self, model, guide, args, kwargs, backward: bool, differentiable=False):
        """Estimate the loss (-ELBO) and return it as a detached scalar tensor.

        With ``backward`` also run backward on the surrogate loss; with
        ``differentiable`` append the differentiable surrogate loss (whose value
        is the loss) to ``self._differentiable``. :meth:`_finish` does both.
        """
        raise NotImplementedError  # abstract

    def _finish(self, loss, surrogate_loss, backward: bool, differentiable: bool):
        """Shared tail of :meth:`_loss_tensors`: backward / record, return detached loss."""
        if not isinstance(loss, torch.Tensor):
            loss = torch.tensor(float(loss))
        if not isinstance(surrogate_loss, torch.Tensor):
            surrogate_loss = loss
        if differentiable:
            self._differentiable.append(surrogate_loss - surrogate_loss.detach() + loss.detach())
        if backward and surrogate_loss.requires_grad:
            surrogate_loss.backward(retain_graph=self.retain_graph)
        return loss.detach()

    def _mean_over_particles(
        self, terms, model, guide, args, kwargs, backward: bool, differentiable: bool
    ):
        """:meth:`_loss_tensors` for estimators whose particle is ``terms(model_trace,
        guide_trace, particle_dim) -> (elbo, surrogate_elbo)``: average over the
        particles (one vectorized pass or a loop) and :meth:`_finish`. When every
        particle's surrogate *is* its ELBO, the loss is computed once and reused.
        """
        elbo = None
        surrogate_elbo = None
        same = True
        particle_dim = None
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            particle_dim = self._particle_dim()
            elbo_p, surrogate_p = terms(model_trace, guide_trace, particle_dim)
            same = same and surrogate_p is elbo_p
            elbo = elbo_p if elbo is None else elbo + elbo_p
            if same:
                surrogate_elbo = elbo
            else:
                surrogate_elbo = (
                    surrogate_p if surrogate_elbo is None else surrogate_elbo + surrogate_p
                )
        if particle_dim is not None:
            # one vectorized pass: per-particle entries (or a scalar shared by all)
            if hasattr(elbo, "mean"):
                elbo = elbo.mean()
            if same:
                surrogate_elbo = elbo
            elif hasattr(surrogate_elbo, "mean"):
                surrogate_elbo = surrogate_elbo.mean()
        elif self.num_particles > 1:
            elbo = elbo / self.num_particles
            surrogate_elbo = elbo if same else surrogate_elbo / self.num_particles
        # (0.0 - x rather than -x: a zero loss stays +0.0)
        loss = 0.0 - elbo
        surrogate_loss = loss if surrogate_elbo is elbo else 0.0 - surrogate_elbo
        return self._finish(loss, surrogate_loss, backward, differentiable)

    def _loss_and_grads_tensor(self, model, guide, args, kwargs) -> torch.Tensor:
        """Run backward on the surrogate and return the loss as a detached tensor."""
        return self._loss_tensors(model, guide, args, kwargs, backward=True)

    def loss(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """An estimate of the loss (the negative ELBO) as a float, without gradients."""
        with torch.no_grad():
            return torch_item(self._loss_tensors(model, guide, args, kwargs, backward=False))

    def loss_and_grads(self, model: Callable, guide: Callable, *args, **kwargs) -> float:
        """Estimate the loss and run ``backward`` on its surrogate; returns the loss as a float."""
        return torch_item(self._loss_tensors(model, guide, args, kwargs, backward=True))

    def differentiable_loss(self, model: Callable, guide: Callable, *args, **kwargs):
        """The surrogate loss as a tensor one can differentiate (its value is the loss)."""
        self._differentiable = []
        try:
            self._loss_tensors(model, guide, args, kwargs, backward=False, differentiable=True)
            return self._differentiable[0]
        finally:
            del self._differentiable

    def __call__(self, model: Callable, guide: Callable) -> ELBOModule:
        """Bind the loss to a model and a guide as a ``torch.nn.Module``."""
        return ELBOModule(model, guide, self)


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
