"""Posterior sampling and MAP estimation of a model's enumerated discrete sites.

:func:`infer_discrete` runs a model once with its discrete sites enumerated
(every value at once, along enumeration dims), turns the trace into packed
log-factors with the enumeration factor layer
(:func:`~ember.infer.enum_factors.model_log_factors`), and then chooses the
enumerated sites jointly by variable elimination with back-tracking
(:func:`~ember.infer.enum_choice.choose_enumerated`). The draws together come
from the exact joint posterior (or form the exact joint MAP, as the Viterbi
algorithm finds for a hidden Markov model). The model is then replayed with
the chosen values. Cost: linear in the length of a Markov chain, like
forward-filtering backward-sampling.
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, Optional

import torch

from ember import poutine
from ember.infer.enum_choice import choose_enumerated, chosen_value
from ember.infer.enum_factors import model_log_factors
from ember.infer.traceenum_elbo import TraceEnum_ELBO
from ember.poutine.subsample_messenger import site_is_subsample

__all__ = ["TraceEnumSample_ELBO", "infer_discrete"]


def _warn_if_nothing_enumerated(trace, strict: bool) -> None:
    if strict and not any(
        site["type"] == "sample" and "_enumerate_dim" in (site["infer"] or {})
        for site in trace.nodes.values()
    ):
        warnings.warn(
            "infer_discrete found no sample sites configured for enumeration. If you want to "
            "enumerate sites, you need to @config_enumerate or set "
            'infer={"enumerate": "parallel"} at those sites.',
            UserWarning,
            stacklevel=3,
        )


def _choose_and_replay(
    model: Callable,
    trace,
    max_plate_nesting: int,
    temperature: float,
    strict: bool,
    args,
    kwargs,
    extra: Optional[poutine.Trace] = None,
):
    """Choose the enumerated sites of ``trace`` and run ``model`` with those values."""
    _warn_if_nothing_enumerated(trace, strict)
    for site in trace.nodes.values():
        if site["type"] == "sample" and "_enum_num_samples" in (site["infer"] or {}):
            raise ValueError(
                f"infer_discrete: site {site['name']!r} is enumerated by Monte Carlo draws "
                "(num_samples); only exact enumeration of discrete sites is supported. Remove "
                "num_samples from its infer dict (or config_enumerate)"
            )
    sites = [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]
    with torch.no_grad():
        mf = model_log_factors(trace, max_plate_nesting, sites=sites)
        # the choices condition on the data as they are: a site's scale (e.g. from
        # subsampling) weighs its terms in a loss, not in the posterior
        factors = [f._replace(scale=1.0) for f in mf.factors]
        chosen = choose_enumerated(
            factors, {v: mf.var_ordinals[v] for v in mf.sum_vars}, temperature
        )
    replayed = poutine.Trace()
    for name, site in trace.nodes.items():  # the same subsample of every plate
        if site["type"] == "sample" and site_is_subsample(site):
            replayed.add_node(name, **site)
    if extra is not None:
        for name, site in extra.nodes.items():
            if site["type"] == "sample" and not site["is_observed"]:
                replayed.add_node(name, **site)
    for name, (index, index_dims) in chosen.items():
        value = chosen_value(trace.nodes[name], index, index_dims)
        replayed.add_node(name, type="sample", name=name, value=value, is_observed=False, infer={})
    return poutine.replay(model, trace=replayed)(*args, **kwargs)


def infer_discrete(
    fn: Optional[Callable] = None,
    first_available_dim: Optional[int] = None,
    temperature: float = 1,
    *,
    strict_enumeration_warning: bool = True,
):
    """A model that draws its enumerated discrete sites from their posterior.

    Wraps ``fn``, a model whose discrete sites are marked for parallel
    enumeration (e.g. with :func:`~ember.infer.enum.config_enumerate`). Each call
    of the returned function runs ``fn`` once enumerated, conditions on its
    observations, and runs it again with every enumerated site set to a value
    chosen jointly over all of them: a draw from their exact posterior
    (``temperature=1``) or their most probable joint value (``temperature=0``,
    the MAP, e.g. the Viterbi path of a hidden Markov model). Sites inside
    plates get one choice per plate element; sites in ``ember.markov`` chains
    cost linear time in the chain's length. Non-enumerated latent sites are
    drawn afresh. Usable as a decorator with arguments.

    :param first_available_dim: the first tensor dim (negative) free for
        enumeration: ``-1 - max_plate_nesting``.
    :param temperature: 1 to sample, 0 for the MAP.
    :param strict_enumeration_warning: warn when no site is enumerated.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import config_enumerate
        >>> @infer_discrete(first_available_dim=-1, temperature=0)
        ... @config_enumerate
        ... def model(data):
        ...     z = ember.sample("z", dist.Categorical(torch.ones(3) / 3))
        ...     ember.sample("x", dist.Normal(z.float(), 0.1), obs=data)
        ...     return z
        >>> model(torch.tensor(2.1))
        tensor(2)
    """
    if fn is None:
        return functools.partial(
            infer_discrete,
            first_available_dim=first_available_dim,
            temperature=temperature,
            strict_enumeration_warning=strict_enumeration_warning,
        )
    if not isinstance(first_available_dim, int) or first_available_dim >= 0:
        raise ValueError(
            "infer_discrete: first_available_dim must be a negative int, "
            f"-1 - max_plate_nesting; got {first_available_dim!r}"
        )
    if temperature not in (0, 1):
        raise ValueError(
            f"infer_discrete: temperature must be 0 (MAP) or 1 (sample), got {temperature!r}"
        )
    max_plate_nesting = -1 - first_available_dim

    @functools.wraps(fn)
    def sampled_model(*args, **kwargs):
        with poutine.block():
            trace = poutine.trace(
                poutine.enum(fn, first_available_dim=first_available_dim)
            ).get_trace(*args, **kwargs)
        return _choose_and_replay(
            fn, trace, max_plate_nesting, temperature, strict_enumeration_warning, args, kwargs
        )

    return sampled_model


class TraceEnumSample_ELBO(TraceEnum_ELBO):
    """:class:`~ember.infer.traceenum_elbo.TraceEnum_ELBO` that keeps the last model
    trace it evaluated, so that :meth:`sample_saved` can then draw the model's
    enumerated sites from their posterior at no extra model run for the loss.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import config_enumerate
        >>> @config_enumerate
        ... def model():
        ...     z = ember.sample("z", dist.Bernoulli(0.5))
        ...     ember.sample("x", dist.Normal(30.0 * z, 1.0), obs=torch.tensor(30.0))
        ...     return z
        >>> elbo = TraceEnumSample_ELBO(max_plate_nesting=0)
        >>> loss = elbo.loss(model, lambda: None)
        >>> elbo.sample_saved()
        tensor(1.)
    """

    _saved_state = None

    def _model_branches(self, model, guide_trace, args, kwargs, max_plate_nesting, traces=None):
        branches = super()._model_branches(
            model, guide_trace, args, kwargs, max_plate_nesting, traces
        )
        for model_trace, indices in branches:
            self._saved_state = (model, model_trace, guide_trace, args, kwargs, max_plate_nesting)
            yield model_trace, indices

    def sample_saved(self):
        """Run the model of the last loss evaluation with its enumerated sites drawn
        from their posterior (and the guide's sites replayed); returns the model's
        return value."""
        if self._saved_state is None:
            raise ValueError(
                "TraceEnumSample_ELBO.sample_saved: no saved trace; compute a loss first"
            )
        model, model_trace, guide_trace, args, kwargs, max_plate_nesting = self._saved_state
        for site in guide_trace.nodes.values():
            if site["type"] == "sample" and "_enumerate_dim" in (site["infer"] or {}):
                raise ValueError(
                    "TraceEnumSample_ELBO.sample_saved: guide site "
                    f"{site['name']!r} is enumerated; only model enumeration is supported"
                )
        return _choose_and_replay(
            model,
            model_trace,
            max_plate_nesting,
            1,
            self.strict_enumeration_warning,
            args,
            kwargs,
            extra=guide_trace,
        )
