"""Importance: posterior inference by importance sampling from a guide (or the prior).

When the model allows it, all samples are drawn in one vectorized pass: model
and guide run once inside a plate of ``num_samples`` placed left of every
other plate, and the log weights are reduced per sample with tensor ops. A
model that cannot run vectorized (Python control flow on sampled values, ...)
falls back to drawing one trace at a time.

Also here: :func:`vectorized_importance_weights` (the log weights of a
vectorized run, with the traces) and :func:`psis_diagnostic` (the Pareto-k
diagnostic of a guide as an importance proposal).
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Tuple

import torch

from ember import poutine
from ember.infer.abstract_infer import SAMPLES_PLATE, TracePosterior, VectorizedSamples
from ember.infer.util import (
    VECTORIZED_PARTICLES_PLATE,
    check_site_shape,
    get_importance_trace,
    guess_max_plate_nesting,
    is_validation_enabled,
    log_mean_exp,
    particle_sum,
    vectorize,
)
from ember.poutine.trace_messenger import trace_run
from ember.poutine.util import prune_subsample_sites

__all__ = [
    "Importance",
    "fit_generalized_pareto",
    "importance_log_weights",
    "psis_diagnostic",
    "vectorized_importance_weights",
]


def importance_log_weights(model_trace, guide_trace, particle_dim: int | None = None):
    """``log p(x, z) - log q(z)`` of a scored trace pair, one entry per particle.

    With ``guide_trace=None`` the proposal is the model's prior: only observed
    sites count (the latent terms cancel). ``particle_dim=None`` sums
    everything to a scalar.
    """
    log_w = 0.0
    for site in model_trace.nodes.values():
        if site["type"] != "sample":
            continue
        if guide_trace is None and not site["is_observed"]:
            continue
        log_w = log_w + particle_sum(site["log_prob"], particle_dim)
    if guide_trace is not None:
        for site in guide_trace.nodes.values():
            if site["type"] == "sample" and not site["is_observed"]:
                log_w = log_w - particle_sum(site["log_prob"], particle_dim)
    if not isinstance(log_w, torch.Tensor):
        log_w = torch.tensor(float(log_w))
    return log_w


def _latent_names(trace):
    return [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    ]


def _sample_trace(batch: VectorizedSamples, trace, i: int):
    """A trace holding sample ``i``'s value at every latent site of a vectorized ``trace``."""
    out = poutine.Trace()
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        value = site["value"]
        pos = batch.sample_dim(site, value)
        if pos is not None:
            value = value.select(pos, i)
            value = value.reshape(batch.natural_shape(site, value.shape))
        out.add_node(name, type="sample", value=value, is_observed=False, infer=site["infer"])
    return out


class Importance(TracePosterior):
    """Importance sampling with the guide as proposal (the model's prior if no guide).

    :param model: the model.
    :param guide: the proposal; ``None`` proposes from the model's prior.
    :param num_samples: number of samples (default 10).
    :param vectorized: ``None`` (default) draws all samples in one vectorized
        pass when the model allows it and otherwise one at a time; ``True``
        insists on the vectorized pass; ``False`` draws one at a time.
    :param max_plate_nesting: plate dims used by model and guide (found by
        tracing once when not given); the sample dim goes to their left.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import Importance
        >>> ember.set_rng_seed(0)
        >>> def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(2.0))
        >>> posterior = Importance(model, num_samples=1000).run()
        >>> len(posterior.log_weights), posterior.get_ESS().item() > 100
        (1000, True)
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable | None = None,
        num_samples: int | None = None,
        vectorized: bool | None = None,
        max_plate_nesting: int | None = None,
    ):
        super().__init__()
        if num_samples is None:
            num_samples = 10
            warnings.warn("Importance: num_samples not given, using 10", UserWarning, stacklevel=2)
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(f"Importance: num_samples must be an int >= 1, got {num_samples!r}")
        if not callable(model):
            raise TypeError(f"Importance: model must be callable, got {type(model).__name__}")
        if guide is not None and not callable(guide):
            raise TypeError(
                f"Importance: guide must be callable or None, got {type(guide).__name__}"
            )
        self.model = model
        self.guide = guide
        self.num_samples = num_samples
        self.vectorized = vectorized
        self.max_plate_nesting = max_plate_nesting

    # -------------------------------------------------------- one at a time
    def _one(self, model, guide, args, kwargs):
        """The scored ``(model_trace, guide_trace)`` of one run (``guide_trace`` None: prior)."""
        if guide is None:
            model_trace = prune_subsample_sites(trace_run(model, args, kwargs))
            model_trace.compute_log_prob(lambda name, site: site["is_observed"])
            return model_trace, None
        return get_importance_trace("flat", math.inf, model, guide, args, kwargs, validate=False)

    def _traces(self, *args, **kwargs):
        for _ in range(self.num_samples):
            model_trace, guide_trace = self._one(self.model, self.guide, args, kwargs)
            yield model_trace, importance_log_weights(model_trace, guide_trace).detach()

    # -------------------------------------------------------- vectorized
    def _run_vectorized(self, args, kwargs) -> VectorizedSamples:
        depth = self.max_plate_nesting
        if depth is None:
            depth = guess_max_plate_nesting(self.model, self.guide, args, kwargs)
        depth = int(depth)
        dim = -depth - 1
        n = self.num_samples
        model = vectorize(self.model, n, dim, SAMPLES_PLATE)
        guide = None if self.guide is None else vectorize(self.guide, n, dim, SAMPLES_PLATE)
        model_trace, guide_trace = self._one(model, guide, args, kwargs)
        if is_validation_enabled():
            for tr in (model_trace, guide_trace):
                if tr is None:
                    continue
                for site in tr.nodes.values():
                    if site["type"] == "sample" and "log_prob" in site:
                        check_site_shape(site, depth + 1)
        log_w = importance_log_weights(model_trace, guide_trace, dim).detach()
        if log_w.dim() == 0 or log_w.numel() == 1:
            log_w = log_w.reshape(()).expand(n).clone()
        if log_w.shape != (n,):
            raise ValueError(
                f"Importance: vectorized log weights have shape {tuple(log_w.shape)}, "
                f"expected ({n},)"
            )
        batch = VectorizedSamples(model_trace, log_w, n, depth, self.model, (args, kwargs))
        for site in model_trace.nodes.values():
            if site["type"] == "sample" and not site["is_observed"]:
                batch.sample_dim(site, site["value"])  # raises if the sample dim is wrong
        # A model may run vectorized without error and still be wrong (e.g. it
        # sums a latent over all dims, mixing the samples). Replay the first and
        # the last sample one at a time and insist on the same log weights.
        for i in sorted({0, n - 1}):
            self._check_sample(batch, guide_trace, i, args, kwargs)
        return batch

    def _check_sample(self, batch: VectorizedSamples, guide_trace, i: int, args, kwargs) -> None:
        """Raise ``ValueError`` unless sample ``i`` of ``batch`` replays to its log weight."""
        if guide_trace is not None:
            guide = poutine.replay(self.guide, trace=_sample_trace(batch, guide_trace, i))
            model_tr, guide_tr = self._one(self.model, guide, args, kwargs)
        else:
            values = _sample_trace(batch, batch.trace, i)
            model_tr = prune_subsample_sites(
                trace_run(poutine.replay(self.model, trace=values), args, kwargs)
            )
            model_tr.compute_log_prob()
            guide_tr = None
        if set(_latent_names(model_tr)) != set(_latent_names(batch.trace)):
            raise ValueError(
                "the sites of one sample differ from those of the vectorized run "
                f"({sorted(_latent_names(model_tr))} vs {sorted(_latent_names(batch.trace))})"
            )
        one = importance_log_weights(model_tr, guide_tr).item()
        vec = batch.log_weights[i].item()
        if not abs(one - vec) <= 1e-3 + 1e-4 * abs(one):
            raise ValueError(
                f"sample {i} has log weight {vec:.6g} in the vectorized run but {one:.6g} when "
                "replayed alone: the model mixes the samples (e.g. it reduces a latent over "
                "all its dims, or indexes it by position)"
            )

    def run(self, *args, **kwargs) -> Importance:
        """Draw ``num_samples`` weighted traces; arguments go to model and guide."""
        if self.vectorized is False:
            return super().run(*args, **kwargs)
        self._reset()
        try:
            with torch.no_grad(), poutine.block():
                batch = self._run_vectorized(args, kwargs)
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            if self.vectorized:
                raise ValueError(
                    f"Importance(vectorized=True): the model could not be run vectorized over "
                    f"samples: {e}. Use vectorized=False to draw one sample at a time."
                ) from e
            return super().run(*args, **kwargs)
        self.add_vectorized_samples(batch)
        return self

    # -------------------------------------------------------- weights
    def get_log_normalizer(self) -> torch.Tensor:
        """Log of the mean importance weight: an estimate of ``log p(data)``."""
        return log_mean_exp(self.stacked_log_weights())

    def get_normalized_weights(self, log_scale: bool = False) -> torch.Tensor:
        """The importance weights normalized to sum to one (or their logs)."""
        log_w = self.stacked_log_weights()
        log_w = log_w - torch.logsumexp(log_w, 0)
        return log_w if log_scale else log_w.exp()

    def get_ESS(self) -> torch.Tensor:
        """Effective sample size ``1 / sum(w_i^2)`` of the normalized weights."""
        log_w = self.get_normalized_weights(log_scale=True)
        return torch.exp(-torch.logsumexp(2 * log_w, 0))

    effective_sample_size = get_ESS


def vectorized_importance_weights(
    model: Callable, guide: Callable, *args, **kwargs
) -> Tuple[torch.Tensor, object, object]:
    """Log importance weights of ``num_samples`` draws from ``guide``, in one vectorized pass.

    Keyword arguments ``num_samples`` (default 1), ``max_plate_nesting``
    (required: the plate dims of model and guide; the samples go to their left)
    and ``normalized`` (default False: subtract the weights' logsumexp) are
    taken here; the rest, and ``args``, go to model and guide. Returns
    ``(log_weights, model_trace, guide_trace)``: ``log_weights`` has shape
    ``(num_samples,)`` (a scalar when ``num_samples == 1``) and keeps its
    gradient with respect to the parameters.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> log_w, _, _ = vectorized_importance_weights(
        ...     model, guide, num_samples=5, max_plate_nesting=0)
        >>> log_w  # the guide is the posterior: every weight is 1
        tensor([0., 0., 0., 0., 0.])
    """
    num_samples = kwargs.pop("num_samples", 1)
    max_plate_nesting = kwargs.pop("max_plate_nesting", None)
    normalized = kwargs.pop("normalized", False)
    if max_plate_nesting is None:
        raise ValueError(
            "vectorized_importance_weights: must provide max_plate_nesting, the number of "
            "plate dims used by model and guide (the samples take the next dim to the left)"
        )
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(
            f"vectorized_importance_weights: num_samples must be an int >= 1, got {num_samples!r}"
        )
    dim = -int(max_plate_nesting) - 1
    model_trace, guide_trace = get_importance_trace(
        "flat",
        -dim,
        vectorize(model, num_samples, dim, VECTORIZED_PARTICLES_PLATE),
        vectorize(guide, num_samples, dim, VECTORIZED_PARTICLES_PLATE),
        args,
        kwargs,
    )
    if num_samples == 1:
        log_weights = importance_log_weights(model_trace, guide_trace)
    else:
        log_weights = importance_log_weights(model_trace, guide_trace, dim)
        if log_weights.dim() == 0:  # nothing varies per sample
            log_weights = log_weights.expand(num_samples)
    if normalized:
        log_weights = log_weights - torch.logsumexp(log_weights, -1)
    return log_weights, model_trace, guide_trace


def fit_generalized_pareto(x: torch.Tensor, prior_strength: float = 10.0):
    """Fit a generalized Pareto distribution to positive exceedances ``x``.

    Uses the empirical-Bayes estimator of Zhang and Stephens (2009): the
    profile likelihood of ``theta = k / sigma`` is averaged over a grid of
    ``30 + sqrt(n)`` values placed from the sample quartiles, then the shape is
    shrunk towards 0.5 with ``prior_strength`` pseudo-observations (Vehtari et
    al., Pareto smoothed importance sampling). Returns ``(k, sigma)`` as
    floats, where the tail decays like ``x ** (-1 / k)``.

    Example::

        >>> import torch
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> u = torch.rand(20000, dtype=torch.float64)
        >>> x = (u ** -0.5 - 1.0) / 0.5  # GPD with k = 0.5, sigma = 1
        >>> k, sigma = fit_generalized_pareto(x)
        >>> round(k, 1), round(sigma, 1)
        (0.5, 1.0)
    """
    x = torch.as_tensor(x, dtype=torch.float64).flatten().sort().values
    n = x.numel()
    if n < 2:
        raise ValueError(f"fit_generalized_pareto needs at least 2 points, got {n}")
    if not bool((x > 0).all()):
        raise ValueError("fit_generalized_pareto: the exceedances must be positive")
    m = 30 + int(math.sqrt(n))
    j = torch.arange(1, m + 1, dtype=torch.float64)
    quartile = x[int(n / 4 + 0.5) - 1]
    theta = 1.0 / x[-1] + (1.0 - torch.sqrt(m / (j - 0.5))) / (3.0 * quartile)
    # profile log-likelihood of each theta (in the k = -mean(log(1 - theta x)) form)
    k = torch.log1p(-theta[:, None] * x).mean(1)
    log_lik = n * (torch.log(-theta / k) - k - 1.0)
    weights = torch.softmax(log_lik, 0)
    theta_hat = (weights * theta).sum()
    k_hat = torch.log1p(-theta_hat * x).mean()
    sigma = -k_hat / theta_hat
    k_hat = (n * k_hat + prior_strength * 0.5) / (n + prior_strength)
    return float(k_hat), float(sigma)


def psis_diagnostic(model: Callable, guide: Callable, *args, **kwargs) -> float:
    """The Pareto-k diagnostic of ``guide`` as an importance proposal for ``model``.

    Draws ``num_particles`` (default 1000) importance weights in vectorized
    batches of ``max_simultaneous_particles`` (default: all at once; it must
    divide ``num_particles``) with ``max_plate_nesting`` (default 7) plate
    dims, and fits a generalized Pareto distribution to the largest
    ``min(0.2 S, 3 sqrt(S))`` weights (Yao, Vehtari, Simpson and Gelman 2018,
    "Yes, but did it work?"). ``k < 0.5``: the guide is a good approximation of
    the posterior; ``0.5 <= k <= 0.7``: usable but suboptimal; ``k > 0.7``: poor.
    Returns ``inf`` (with a warning) when too few weights lie in the tail.
    Remaining arguments go to model and guide, which must be vectorizable.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.set_rng_seed(0)
        >>> def model():
        ...     ember.sample("z", dist.Normal(0.0, 1.0))
        >>> def guide():
        ...     ember.sample("z", dist.Normal(0.0, 1.2))  # wider than the posterior
        >>> psis_diagnostic(model, guide, num_particles=5000) < 0.5
        True
    """
    num_particles = kwargs.pop("num_particles", 1000)
    chunk = kwargs.pop("max_simultaneous_particles", num_particles)
    max_plate_nesting = kwargs.pop("max_plate_nesting", 7)
    if num_particles % chunk != 0:
        raise ValueError(
            f"psis_diagnostic: num_particles ({num_particles}) must be divisible by "
            f"max_simultaneous_particles ({chunk})"
        )
    with torch.no_grad():
        log_weights = torch.cat(
            [
                vectorized_importance_weights(
                    model,
                    guide,
                    *args,
                    num_samples=chunk,
                    max_plate_nesting=max_plate_nesting,
                    **kwargs,
                )[0].reshape(-1)
                for _ in range(num_particles // chunk)
            ]
        )
    log_weights = (log_weights - log_weights.max()).sort().values
    tail_size = int(math.ceil(min(0.2 * num_particles, 3.0 * math.sqrt(num_particles))))
    threshold = max(math.log(1e-15), float(log_weights[-tail_size - 1]))
    tail = log_weights[log_weights > threshold]
    if tail.numel() < 10:
        warnings.warn(
            "Not enough tail samples to compute the PSIS diagnostic "
            f"({tail.numel()} < 10); increase num_particles.",
            UserWarning,
            stacklevel=2,
        )
        return math.inf
    k, _ = fit_generalized_pareto(tail.double().exp() - math.exp(threshold))
    return k
