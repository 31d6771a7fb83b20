"""Predictive: samples from the posterior predictive (or prior predictive) distribution.

The model is run with its latent sites set to posterior samples (given
directly, or drawn from a guide), and the values of the requested sites are
collected. With ``parallel=True`` all samples are drawn in one vectorized
pass, in a plate placed left of the model's own plates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Callable, Dict, Sequence

import torch

from ember import poutine
from ember.infer.autoguide.initialization import InitMessenger, init_to_sample_or_feasible
from ember.infer.util import particle_sum, plate_depth, vectorize
from ember.poutine.util import prune_subsample_sites

__all__ = ["MHResampler", "Predictive", "WeighedPredictive", "WeighedPredictiveResults"]

_PLATE = "_num_predictive_samples"


def _site_info(trace) -> Dict[str, dict]:
    info = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample":
            continue
        value = site["value"]
        fn = site["fn"]
        info[name] = {
            "shape": tuple(value.shape) if isinstance(value, torch.Tensor) else (),
            "batch_ndim": len(getattr(fn, "batch_shape", ())),
            "event_ndim": len(getattr(fn, "event_shape", ())),
            "observed": site["is_observed"],
        }
    return info


class Predictive(torch.nn.Module):
    """Draw samples of a model's sites given posterior samples or a guide.

    :param model: the model.
    :param posterior_samples: dict of site name -> tensor whose leading dim
        indexes the samples (e.g. from MCMC); those sites are fixed to the
        samples.
    :param guide: a guide to draw the posterior samples from instead.
    :param num_samples: number of samples (taken from ``posterior_samples``
        when given).
    :param return_sites: the sites to return; ``()`` (default) returns every
        sample site not in ``posterior_samples`` (every sample site, with a
        ``guide``); ``None`` returns all sample sites. ``"_RETURN"`` returns the
        model's return value.
    :param parallel: draw all samples in one vectorized pass.
    :param batch_ndims: number of leading batch dims of ``posterior_samples``
        (default 1; e.g. 2 for ``(num_chains, num_samples, ...)``).

    Every returned tensor has shape ``batch + (1,) * k + value_shape``, where
    ``value_shape`` is the site's shape in one run of the model and the ``k``
    ones pad its batch dims to ``max_plate_nesting``.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import Predictive
        >>> def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     with ember.plate("data", 3):
        ...         ember.sample("x", dist.Normal(z, 1.0))
        >>> samples = Predictive(model, {"z": torch.zeros(5)})()
        >>> list(samples), samples["x"].shape
        (['x'], torch.Size([5, 3]))
    """

    def __init__(
        self,
        model: Callable,
        posterior_samples: Dict[str, torch.Tensor] | None = None,
        guide: Callable | None = None,
        num_samples: int | None = None,
        return_sites: Sequence[str] | None = (),
        parallel: bool = False,
        batch_ndims: int | None = None,
    ):
        super().__init__()
        if posterior_samples is None:
            posterior_samples = {}
        if not isinstance(posterior_samples, dict):
            raise TypeError(
                "Predictive: posterior_samples must be a dict of site name -> tensor, got "
                f"{type(posterior_samples).__name__}"
            )
        if guide is not None and posterior_samples:
            raise ValueError("Predictive: give either posterior_samples or guide, not both")
        batch_ndims = 1 if batch_ndims is None else int(batch_ndims)
        if batch_ndims < 0:
            raise ValueError(f"Predictive: batch_ndims must be >= 0, got {batch_ndims}")
        batch_shape = None
        for name, value in posterior_samples.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"Predictive: posterior sample {name!r} must be a tensor, got "
                    f"{type(value).__name__}"
                )
            if value.dim() < batch_ndims:
                raise ValueError(
                    f"Predictive: posterior sample {name!r} of shape {tuple(value.shape)} has "
                    f"fewer than batch_ndims={batch_ndims} dims"
                )
            shape = value.shape[:batch_ndims]
            if batch_shape is None:
                batch_shape = shape
            elif shape != batch_shape:
                raise ValueError(
                    f"Predictive: posterior samples disagree on the sample dims: {name!r} has "
                    f"{tuple(shape)}, others {tuple(batch_shape)}"
                )
        if batch_shape is not None:
            n = 1
            for s in batch_shape:
                n *= s
            if num_samples is not None and num_samples != n:
                warnings.warn(
                    f"Predictive: num_samples={num_samples} differs from the {n} posterior "
                    "samples given; using the posterior samples",
                    UserWarning,
                    stacklevel=2,
                )
            num_samples = n
        else:
            batch_shape = torch.Size([num_samples]) if num_samples is not None else None
        if num_samples is None:
            raise ValueError(
                "Predictive: num_samples is needed when no posterior_samples are given"
            )
        if return_sites is not None and isinstance(return_sites, str):
            return_sites = (return_sites,)
        self.model = model
        self.posterior_samples = {
            k: v.reshape((num_samples,) + v.shape[batch_ndims:])
            for k, v in posterior_samples.items()
        }
        self.guide = guide
        self.num_samples = num_samples
        self.return_sites = return_sites
        self.parallel = parallel
        self.batch_ndims = batch_ndims
        self._batch_shape = torch.Size(batch_shape) if batch_ndims > 0 else torch.Size()

    # ------------------------------------------------------------------ core
    def _predict(self, fn, samples, return_sites, args, kwargs) -> Dict[str, torch.Tensor]:
        n = self.num_samples
        # No density is computed here: run under mask(False), so that a model can skip work
        # that only feeds log-densities (poutine.get_mask() is False), as in Pyro.
        fn = poutine.mask(fn, mask=False)
        with poutine.block():  # (sites without a sampler, e.g. an ImproperUniform, start feasible)
            structure = InitMessenger(init_to_sample_or_feasible)(fn)
            first = prune_subsample_sites(poutine.trace(structure).get_trace(*args, **kwargs))
        info = _site_info(first)
        depth = plate_depth(first.nodes.values())
        samples = {k: v for k, v in samples.items() if k in info}
        if return_sites is None:
            wanted = list(info)
        elif len(return_sites) == 0:
            wanted = [k for k in info if k not in samples]
        else:
            wanted = list(return_sites)
            unknown = [k for k in wanted if k != "_RETURN" and k not in first.nodes]
            if unknown:
                raise ValueError(
                    f"Predictive: return_sites {unknown} are not sites of the model; its sample "
                    f"sites are {sorted(info)}"
                )

        def padded(name):
            site = info[name]
            pad = max(depth - site["batch_ndim"], 0)
            return (n,) + (1,) * pad + site["shape"]

        if self.parallel:
            data = {}
            for k, v in samples.items():
                target = padded(k)
                data[k] = v.reshape(target)
            vec = vectorize(poutine.condition(fn, data=data), n, -depth - 1, _PLATE)
            with poutine.block():
                trace = poutine.trace(vec).get_trace(*args, **kwargs)
            out = {}
            for name in wanted:
                value = trace.nodes[name]["value"]
                if name == "_RETURN" or name not in info:
                    out[name] = value
                    continue
                target = padded(name)
                if value.dim() < len(target):
                    value = value.reshape((1,) * (len(target) - value.dim()) + value.shape)
                out[name] = value.expand(target) if value.shape != target else value
            return out

        collected = {name: [] for name in wanted}
        for i in range(n):
            data = {k: v[i].reshape(info[k]["shape"]) for k, v in samples.items()}
            with poutine.block():
                trace = poutine.trace(poutine.condition(fn, data=data)).get_trace(*args, **kwargs)
            for name in wanted:
                collected[name].append(trace.nodes[name]["value"])
        out = {}
        for name, values in collected.items():
            stacked = torch.stack([torch.as_tensor(v) for v in values])
            out[name] = stacked.reshape(padded(name)) if name in info else stacked
        return out

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """Samples of the return sites, one leading row per posterior sample."""
        with torch.no_grad():
            samples = self.posterior_samples
            return_sites = self.return_sites
            if self.guide is not None:
                samples = self._predict(self.guide, {}, None, args, kwargs)
                if not return_sites:
                    return_sites = None  # with a guide, every site by default (as Pyro)
            out = self._predict(self.model, samples, return_sites, args, kwargs)
        if self.batch_ndims != 1:
            out = {k: v.reshape(self._batch_shape + v.shape[1:]) for k, v in out.items()}
        return out

    def call(self, *args, **kwargs) -> tuple:
        """The samples as a tuple ordered by site name (what ``torch.jit.trace_module``
        can trace, unlike a dict)."""
        return tuple(v for _, v in sorted(self.forward(*args, **kwargs).items()))

    def get_samples(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """Same as calling the module."""
        return self.forward(*args, **kwargs)

    def get_vectorized_trace(self, *args, **kwargs):
        """One trace of the model run vectorized over all samples (as ``parallel=True`` does)."""
        with torch.no_grad():
            samples = self.posterior_samples
            if self.guide is not None:
                samples = self._predict(self.guide, {}, None, args, kwargs)
            with poutine.block():
                structure = InitMessenger(init_to_sample_or_feasible)(self.model)
                first = poutine.trace(structure).get_trace(*args, **kwargs)
            info = _site_info(first)
            depth = plate_depth(first.nodes.values())
            data = {}
            for k, v in samples.items():
                if k in info:
                    pad = max(depth - info[k]["batch_ndim"], 0)
                    data[k] = v.reshape((self.num_samples,) + (1,) * pad + info[k]["shape"])
            vec = vectorize(
                poutine.condition(self.model, data=data), self.num_samples, -depth - 1, _PLATE
            )
            return poutine.trace(vec).get_trace(*args, **kwargs)


# ------------------------------------------------------------------ weighed samples
@dataclass(frozen=True, eq=False)
class WeighedPredictiveResults:
    """What :class:`WeighedPredictive` returns: samples with per-sample importance weights.

    :ivar samples: dict of site name -> tensor with one leading row per sample
        (a tuple ordered by site name when returned by ``.call``).
    :ivar log_weights: ``model_log_prob - guide_log_prob``, shape ``(num_samples,)``.
    :ivar guide_log_prob: the guide's log density of each sample.
    :ivar model_log_prob: the (conditioned) model's log joint density of each sample.
    """

    samples: Dict[str, torch.Tensor] | tuple
    log_weights: torch.Tensor
    guide_log_prob: torch.Tensor
    model_log_prob: torch.Tensor

    def get_log_normalizer(self) -> torch.Tensor:
        """Log of the mean weight: an estimate of the model's log normalizing constant
        (``log p(observations)`` when the model conditions on data)."""
        log_w = self.log_weights
        return torch.logsumexp(log_w, 0) - torch.log(torch.tensor(float(log_w.numel())))

    def get_normalized_weights(self, log_scale: bool = False) -> torch.Tensor:
        """The weights normalized to sum to one (or their logs)."""
        log_w = self.log_weights - torch.logsumexp(self.log_weights, 0)
        return log_w if log_scale else log_w.exp()

    def get_ESS(self) -> torch.Tensor:
        """Effective sample size ``1 / sum(w_i ** 2)`` of the normalized weights."""
        log_w = self.get_normalized_weights(log_scale=True)
        return torch.exp(-torch.logsumexp(2 * log_w, 0))

    def clone(self) -> WeighedPredictiveResults:
        """A copy with every tensor cloned."""
        return type(self)(**{f.name: _clone_field(getattr(self, f.name)) for f in fields(self)})


def _clone_field(value):
    if isinstance(value, dict):
        return {k: _clone_field(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_clone_field(v) for v in value)
    return value.clone() if isinstance(value, torch.Tensor) else value


class WeighedPredictive(Predictive):
    """:class:`Predictive` that also returns each sample's importance weight.

    Constructed like :class:`Predictive`, with a ``guide`` (required). Calling
    it draws ``num_samples`` latent samples ``z`` from the guide and returns a
    :class:`WeighedPredictiveResults`: the model's sites given ``z`` (as
    :class:`Predictive` returns them) and the log weights
    ``log p(x_obs, z) - log q(z)``, where ``p`` is the keyword argument
    ``model_guide`` (the model the guide was fitted to, typically conditioned
    on the data; default: ``model``). Weighted by ``exp(log_weights)`` the
    samples follow the exact posterior predictive even when the guide is only
    approximate (e.g. for :func:`~ember.ops.stats.weighed_quantile`, or
    :class:`MHResampler`).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> ember.set_rng_seed(0)
        >>> def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     return ember.sample("x", dist.Normal(z, 1.0))
        >>> conditioned = poutine.condition(model, data={"x": torch.tensor(1.0)})
        >>> def guide():  # the exact posterior N(0.5, 0.5)
        ...     ember.sample("z", dist.Normal(0.5, 0.5**0.5))
        >>> out = WeighedPredictive(model, guide=guide, num_samples=4)(model_guide=conditioned)
        >>> sorted(out.samples), out.log_weights.shape
        (['x', 'z'], torch.Size([4]))
        >>> out.log_weights.std() < 1e-5  # exact guide: equal weights
        tensor(True)
    """

    def _scored_run(self, fn, data, args, kwargs):
        """Run ``fn`` (conditioned on ``data``) once per sample; return every sample site's
        values ``(num_samples, ...)`` and the per-sample log joint density of the run."""
        n = self.num_samples
        with poutine.block():
            structure = InitMessenger(init_to_sample_or_feasible)(fn)
            first = prune_subsample_sites(poutine.trace(structure).get_trace(*args, **kwargs))
        info = _site_info(first)
        depth = plate_depth(first.nodes.values())
        data = {k: v for k, v in data.items() if k in info}

        def padded(name):
            pad = max(depth - info[name]["batch_ndim"], 0)
            return (n,) + (1,) * pad + info[name]["shape"]

        if self.parallel:
            conditioned = {k: v.reshape(padded(k)) for k, v in data.items()}
            vec = vectorize(poutine.condition(fn, data=conditioned), n, -depth - 1, _PLATE)
            with poutine.block():
                trace = prune_subsample_sites(poutine.trace(vec).get_trace(*args, **kwargs))
            trace.compute_log_prob()
            log_prob = torch.zeros(n)
            values = {}
            for name, site in trace.nodes.items():
                if site["type"] != "sample":
                    continue
                log_prob = log_prob + particle_sum(site["log_prob"], -depth - 1)
                if name in info:
                    value, target = site["value"], padded(name)
                    if value.dim() < len(target):
                        value = value.reshape((1,) * (len(target) - value.dim()) + value.shape)
                    values[name] = value.expand(target)
            if log_prob.shape != (n,):
                raise ValueError(
                    f"WeighedPredictive: per-sample log densities have shape "
                    f"{tuple(log_prob.shape)}, expected ({n},); are all batch dims of the "
                    "model declared with plates?"
                )
            return values, log_prob
        log_probs, collected = [], {name: [] for name in info}
        for i in range(n):
            one = {k: v[i].reshape(info[k]["shape"]) for k, v in data.items()}
            with poutine.block():
                trace = poutine.trace(poutine.condition(fn, data=one)).get_trace(*args, **kwargs)
            trace = prune_subsample_sites(trace)
            log_probs.append(torch.as_tensor(trace.log_prob_sum()))
            for name in info:
                collected[name].append(torch.as_tensor(trace.nodes[name]["value"]))
        values = {k: torch.stack(v).reshape(padded(k)) for k, v in collected.items()}
        return values, torch.stack(log_probs)

    def forward(self, *args, **kwargs) -> WeighedPredictiveResults:
        """Weighed samples; the keyword ``model_guide`` (default: the model) is the model
        whose density the weights use; other arguments go to guide and models."""
        model_guide = kwargs.pop("model_guide", self.model)
        if self.guide is None:
            raise ValueError(
                "WeighedPredictive: a guide is required (the weights compare the model's "
                "density with the guide's)"
            )
        if not callable(model_guide):
            raise TypeError(
                f"WeighedPredictive: model_guide must be callable, got {type(model_guide).__name__}"
            )
        return_sites = self.return_sites if self.return_sites else None
        with torch.no_grad():
            guide_values, guide_lp = self._scored_run(self.guide, {}, args, kwargs)
            model_values, model_lp = self._scored_run(model_guide, guide_values, args, kwargs)
            if model_guide is self.model:
                # Return the very run that was scored (its sampled sites included).
                data = dict(guide_values)
                data.update(model_values)
            else:
                data = guide_values
            samples = self._predict(self.model, data, return_sites, args, kwargs)
        return WeighedPredictiveResults(
            samples=samples,
            log_weights=model_lp - guide_lp,
            guide_log_prob=guide_lp,
            model_log_prob=model_lp,
        )

    def call(self, *args, **kwargs) -> WeighedPredictiveResults:
        """As :meth:`forward`, with the samples as a tuple ordered by site name."""
        result = self.forward(*args, **kwargs)
        return WeighedPredictiveResults(
            samples=tuple(v for _, v in sorted(result.samples.items())),
            log_weights=result.log_weights,
            guide_log_prob=result.guide_log_prob,
            model_log_prob=result.model_log_prob,
        )


def _take(current, new, accept: torch.Tensor):
    """``new`` where ``accept`` (per leading row), else ``current``; through dicts/tuples."""
    if isinstance(current, dict):
        return {k: _take(v, new[k], accept) for k, v in current.items()}
    if isinstance(current, tuple):
        return tuple(_take(c, w, accept) for c, w in zip(current, new))
    if not isinstance(current, torch.Tensor) or current.dim() == 0:
        return current
    if current.size(0) != accept.numel():
        raise ValueError(
            f"MHResampler: a sample field of shape {tuple(current.shape)} does not have one "
            f"leading row per sample ({accept.numel()})"
        )
    mask = accept.reshape((-1,) + (1,) * (current.dim() - 1))
    return torch.where(mask, new, current)


def _concat(results, value_of):
    first = value_of(results[0])
    if isinstance(first, dict):
        return {k: _concat(results, lambda r, k=k: value_of(r)[k]) for k in first}
    if isinstance(first, tuple):
        return tuple(_concat(results, lambda r, i=i: value_of(r)[i]) for i in range(len(first)))
    return torch.cat([value_of(r) for r in results])


class MHResampler(torch.nn.Module):
    r"""Turn weighed samples into equally weighted ones by independent Metropolis–Hastings.

    ``sampler`` (e.g. a :class:`WeighedPredictive`) returns, on each call, a
    batch of candidates from the guide ``g`` with log weights ``log P - log g``.
    Each call of the resampler draws a new batch and, independently for every
    row, accepts the candidate ``x'`` over the current ``x`` with probability
    ``min(1, P(x') g(x) / (P(x) g(x')))`` — an independence sampler with the
    guide as proposal. The first call returns the guide's samples; with more
    calls each row's distribution approaches the target ``P``. With an exact
    guide every candidate is accepted.

    :param sampler: callable returning :class:`WeighedPredictiveResults`.
    :param slice source_samples_slice: which of the sampler's outputs to keep
        (``get_source_samples``); default none.
    :param slice stored_samples_slice: which of the resampler's outputs to
        keep (``get_stored_samples``); default none.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember import poutine
        >>> ember.set_rng_seed(0)
        >>> def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     return ember.sample("x", dist.Normal(z, 1.0))
        >>> conditioned = poutine.condition(model, data={"x": torch.tensor(1.0)})
        >>> def guide():  # wider than the posterior N(0.5, 0.5)
        ...     ember.sample("z", dist.Normal(0.0, 1.5))
        >>> predictive = WeighedPredictive(model, guide=guide, num_samples=4000, parallel=True)
        >>> resampler = MHResampler(predictive)
        >>> for _ in range(20):
        ...     out = resampler(model_guide=conditioned)
        >>> round(out.samples["z"].mean().item(), 1)
        0.5
    """

    def __init__(
        self,
        sampler: Callable,
        source_samples_slice: slice = slice(0),
        stored_samples_slice: slice = slice(0),
    ):
        super().__init__()
        if not callable(sampler):
            raise TypeError(f"MHResampler: sampler must be callable, got {type(sampler).__name__}")
        self.sampler = sampler
        self.samples = None
        self.transition_count = torch.tensor(0, dtype=torch.long)
        self.source_samples = []
        self.source_samples_slice = source_samples_slice
        self.stored_samples = []
        self.stored_samples_slice = stored_samples_slice

    def forward(self, *args, **kwargs) -> WeighedPredictiveResults:
        """One Metropolis–Hastings step for every row (arguments go to ``sampler``)."""
        with torch.no_grad():
            new = self.sampler(*args, **kwargs)
            if not isinstance(new, WeighedPredictiveResults):
                raise TypeError(
                    "MHResampler: the sampler must return WeighedPredictiveResults, got "
                    f"{type(new).__name__}"
                )
            self.source_samples.append(new)
            self.source_samples = self.source_samples[self.source_samples_slice]
            if self.samples is None:
                self.samples = new.clone()
                self.transition_count = torch.zeros(new.log_weights.shape, dtype=torch.long)
            else:
                log_ratio = (new.log_weights - self.samples.log_weights).clamp(max=0.0)
                accept = torch.rand(log_ratio.shape) <= log_ratio.exp()
                self.transition_count = self.transition_count + accept.long()
                self.samples = type(self.samples)(
                    **{
                        f.name: _take(getattr(self.samples, f.name), getattr(new, f.name), accept)
                        for f in fields(self.samples)
                    }
                )
        self.stored_samples.append(self.samples.clone())
        self.stored_samples = self.stored_samples[self.stored_samples_slice]
        return self.samples

    def get_min_sample_transition_count(self) -> torch.Tensor:
        """The fewest accepted transitions of any row."""
        return self.transition_count.min()

    def get_total_transition_count(self) -> torch.Tensor:
        """The number of accepted transitions, summed over rows."""
        return self.transition_count.sum()

    def get_source_samples(self) -> WeighedPredictiveResults:
        """The kept inputs (sampler outputs), concatenated along the sample dim."""
        return self.get_samples(self.source_samples)

    def get_stored_samples(self) -> WeighedPredictiveResults:
        """The kept outputs, concatenated along the sample dim."""
        return self.get_samples(self.stored_samples)

    def get_samples(self, samples) -> WeighedPredictiveResults:
        """A list of :class:`WeighedPredictiveResults` concatenated along the sample dim."""
        if not samples:
            raise ValueError(
                "MHResampler: no samples were kept; pass source_samples_slice / "
                "stored_samples_slice (e.g. slice(None)) to keep them"
            )
        cls = type(samples[0])
        return cls(
            **{
                f.name: _concat(samples, lambda r, name=f.name: getattr(r, name))
                for f in fields(samples[0])
            }
        )
