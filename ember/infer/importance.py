"""Importance: posterior inference by importance sampling from a guide (or the prior).

When the model allows it, all samples are drawn in one vectorized pass: model
and guide run once inside a plate of ``num_samples`` placed left of every
other plate, and the log weights are reduced per sample with tensor ops. A
model that cannot run vectorized (Python control flow on sampled values, ...)
falls back to drawing one trace at a time.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from ember import poutine
from ember.infer.abstract_infer import _SAMPLES_PLATE, TracePosterior, _Batch, _log_mean_exp
from ember.infer.util import (
    _prune_in_place,
    check_site_shape,
    particle_sum,
    vectorize,
)
from ember.util import is_validation_enabled

__all__ = ["Importance"]


def _observed_only(site) -> bool:
    return site["type"] == "sample" and site["is_observed"]


def _latent_names(trace):
    return [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    ]


def _sample_trace(batch: _Batch, trace, i: int):
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
        if guide is None:
            model_trace = poutine.trace(model).get_trace(*args, **kwargs)
            model_trace = _prune_in_place(model_trace)
            model_trace.compute_log_prob(lambda name, site: site["is_observed"])
            return model_trace, None
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
        model_trace = _prune_in_place(model_trace)
        guide_trace = _prune_in_place(guide_trace)
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
        return model_trace, guide_trace

    def _log_weight(self, model_trace, guide_trace, particle_dim):
        log_w = 0.0
        for site in model_trace.nodes.values():
            if site["type"] != "sample":
                continue
            if guide_trace is None and not site["is_observed"]:
                continue  # prior proposal: latent terms cancel
            log_w = log_w + particle_sum(site["log_prob"], particle_dim)
        if guide_trace is not None:
            for site in guide_trace.nodes.values():
                if site["type"] == "sample" and not site["is_observed"]:
                    log_w = log_w - particle_sum(site["log_prob"], particle_dim)
        return log_w

    def _traces(self, *args, **kwargs):
        for _ in range(self.num_samples):
            model_trace, guide_trace = self._one(self.model, self.guide, args, kwargs)
            log_w = self._log_weight(model_trace, guide_trace, None)
            if not isinstance(log_w, torch.Tensor):
                log_w = torch.tensor(float(log_w))
            yield model_trace, log_w.detach()

    # -------------------------------------------------------- vectorized
    def _plate_nesting(self, args, kwargs) -> int:
        if self.max_plate_nesting is not None:
            return int(self.max_plate_nesting)
        depth = 0
        model_trace, guide_trace = self._one(self.model, self.guide, args, kwargs)
        for tr in (model_trace, guide_trace):
            if tr is None:
                continue
            for site in tr.nodes.values():
                for f in site.get("cond_indep_stack", ()) or ():
                    if getattr(f, "vectorized", True) and f.dim is not None:
                        depth = max(depth, -f.dim)
        return depth

    def _run_vectorized(self, args, kwargs) -> _Batch:
        depth = self._plate_nesting(args, kwargs)
        dim = -depth - 1
        n = self.num_samples
        model = vectorize(self.model, n, dim, _SAMPLES_PLATE)
        guide = None if self.guide is None else vectorize(self.guide, n, dim, _SAMPLES_PLATE)
        model_trace, guide_trace = self._one(model, guide, args, kwargs)
        if is_validation_enabled():
            for tr in (model_trace, guide_trace):
                if tr is None:
                    continue
                for site in tr.nodes.values():
                    if site["type"] == "sample" and "log_prob" in site:
                        check_site_shape(site, depth + 1)
        log_w = self._log_weight(model_trace, guide_trace, dim)
        if not isinstance(log_w, torch.Tensor):
            log_w = torch.tensor(float(log_w))
        log_w = log_w.detach()
        if log_w.dim() == 0 or log_w.numel() == 1:
            log_w = log_w.reshape(()).expand(n).clone()
        if log_w.shape != (n,):
            raise ValueError(
                f"Importance: vectorized log weights have shape {tuple(log_w.shape)}, "
                f"expected ({n},)"
            )
        batch = _Batch(model_trace, log_w, n, depth, self.model, (args, kwargs))
        for site in model_trace.nodes.values():
            if site["type"] == "sample" and not site["is_observed"]:
                batch.sample_dim(site, site["value"])  # raises if the sample dim is wrong
        # A model may run vectorized without error and still be wrong (e.g. it
        # sums a latent over all dims, mixing the samples). Replay the first and
        # the last sample one at a time and insist on the same log weights.
        for i in sorted({0, n - 1}):
            self._check_sample(batch, guide_trace, i, args, kwargs)
        return batch

    def _check_sample(self, batch: _Batch, guide_trace, i: int, args, kwargs) -> None:
        """Raise ``ValueError`` unless sample ``i`` of ``batch`` replays to its log weight."""
        values = _sample_trace(batch, batch.trace, i)
        if guide_trace is not None:
            values = _sample_trace(batch, guide_trace, i)
            guide = poutine.replay(self.guide, trace=values)
            guide_tr = poutine.trace(guide).get_trace(*args, **kwargs)
            model_tr = poutine.trace(poutine.replay(self.model, trace=guide_tr)).get_trace(
                *args, **kwargs
            )
            _prune_in_place(guide_tr)
            guide_tr.compute_log_prob()
        else:
            model_tr = poutine.trace(poutine.replay(self.model, trace=values)).get_trace(
                *args, **kwargs
            )
            guide_tr = None
        _prune_in_place(model_tr)
        model_tr.compute_log_prob()
        if set(_latent_names(model_tr)) != set(_latent_names(batch.trace)):
            raise ValueError(
                "the sites of one sample differ from those of the vectorized run "
                f"({sorted(_latent_names(model_tr))} vs {sorted(_latent_names(batch.trace))})"
            )
        one = self._log_weight(model_tr, guide_tr, None)
        one = float(one) if not isinstance(one, torch.Tensor) else one.item()
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
        self._add_batch(batch)
        return self

    # -------------------------------------------------------- weights
    def get_log_normalizer(self) -> torch.Tensor:
        """Log of the mean importance weight: an estimate of ``log p(data)``."""
        log_w = self._log_weights_tensor()
        return _log_mean_exp(log_w)

    def get_normalized_weights(self, log_scale: bool = False) -> torch.Tensor:
        """The importance weights normalized to sum to one (or their logs)."""
        log_w = self._log_weights_tensor()
        log_w = log_w - torch.logsumexp(log_w, 0)
        return log_w if log_scale else log_w.exp()

    def get_ESS(self) -> torch.Tensor:
        """Effective sample size ``1 / sum(w_i^2)`` of the normalized weights."""
        log_w = self.get_normalized_weights(log_scale=True)
        return torch.exp(-torch.logsumexp(2 * log_w, 0))

    effective_sample_size = get_ESS
