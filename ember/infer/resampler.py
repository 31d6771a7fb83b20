"""Resampler: importance-resampling cache for tuning priors interactively.

A prior predictive check runs an (often expensive) simulator on draws from the
prior. While tuning the prior's parameters, most of that work can be reused:
draw many samples once from a diffuse ``guide`` (and extend them with the
simulator), then, for each candidate ``model``, importance-resample the cached
samples with weights ``p_model(z) / p_guide(z)`` instead of simulating again.
"""

from __future__ import annotations

from typing import Callable, Dict

import torch

from ember import poutine
from ember.infer.util import particle_sum, plate_depth
from ember.poutine.trace_messenger import trace_run
from ember.poutine.util import site_is_subsample
from ember.primitives import plate

__all__ = ["Resampler"]

#: The name of the plate that holds the cached samples.
RESAMPLER_PLATE = "particles"


def _log_prob_per_sample(trace, num_samples: int, sample_dim: int) -> torch.Tensor:
    """Sum of every sample site's log-probability, one entry per cached sample."""
    trace.compute_log_prob()
    total = torch.zeros(num_samples)
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        part = particle_sum(site["log_prob"], sample_dim)
        if isinstance(part, torch.Tensor) and part.dim() == 1 and part.shape != (num_samples,):
            raise ValueError(
                f"Resampler: site {name!r} has log_prob of shape {tuple(site['log_prob'].shape)} "
                f"whose dim {sample_dim} should hold the {num_samples} samples; pass a larger "
                "max_plate_nesting"
            )
        total = total + part
    return total


def _with_sample_dim(site, value: torch.Tensor, num_samples: int, depth: int) -> torch.Tensor:
    """``value`` with the samples along its leading dim (broadcast when it lacks them)."""
    event_dim = len(getattr(site["fn"], "event_shape", ()))
    pos = value.dim() - event_dim - depth - 1
    if pos == 0 and value.size(0) == num_samples:
        return value
    if pos > 0:
        raise ValueError(
            f"Resampler: site {site['name']!r} has value of shape {tuple(value.shape)} with "
            f"dims left of the samples' dim {-depth - 1 - event_dim}; pass a larger "
            "max_plate_nesting"
        )
    if pos < 0:
        value = value.reshape((1,) * (-pos) + value.shape)
    return value.expand((num_samples,) + value.shape[1:])


class Resampler:
    """Cache of samples for interactive tuning of a model's prior.

    On construction, draws ``num_guide_samples`` samples from ``guide`` in one
    vectorized pass (and extends each with ``simulator``, a larger model that
    contains the guide's latent sites, replayed on the guide's values).
    :meth:`sample` then draws samples of a ``model`` with the same latent
    sites by importance resampling the cache, without running guide or
    simulator again: sample ``i`` is chosen with probability proportional to
    ``p_model(z_i) / p_guide(z_i)``. The guide should be more diffuse than
    every model asked about; if it covers a model poorly, the resampled values
    repeat.

    :param guide: a model without arguments; vectorizable with a plate.
    :param simulator: optional larger model, vectorizable with a plate.
    :param int num_guide_samples: how many samples to cache (much more than
        asked of :meth:`sample`).
    :param int max_plate_nesting: plate dims of guide and simulator (found by
        running them once when not given); the samples sit left of them.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.set_rng_seed(0)
        >>> def prior(loc):
        ...     ember.sample("z", dist.Normal(loc, 1.0))
        >>> cache = Resampler(lambda: prior(0.0), num_guide_samples=20000)
        >>> samples = cache.sample(lambda: prior(0.5), 2000)
        >>> samples["z"].shape, round(samples["z"].mean().item(), 1)
        (torch.Size([2000]), 0.5)
    """

    def __init__(
        self,
        guide: Callable,
        simulator: Callable | None = None,
        *,
        num_guide_samples: int,
        max_plate_nesting: int | None = None,
    ):
        if not callable(guide):
            raise TypeError(f"Resampler: guide must be callable, got {type(guide).__name__}")
        if simulator is not None and not callable(simulator):
            raise TypeError(
                f"Resampler: simulator must be callable or None, got {type(simulator).__name__}"
            )
        if (
            not isinstance(num_guide_samples, int)
            or isinstance(num_guide_samples, bool)
            or num_guide_samples < 1
        ):
            raise ValueError(
                f"Resampler: num_guide_samples must be an int >= 1, got {num_guide_samples!r}"
            )
        if max_plate_nesting is None:
            with torch.no_grad(), poutine.block(), poutine.mask(mask=False):
                first = trace_run(guide if simulator is None else simulator, (), {})
            max_plate_nesting = plate_depth(first.nodes.values())
        if not isinstance(max_plate_nesting, int) or max_plate_nesting < 0:
            raise ValueError(
                f"Resampler: max_plate_nesting must be an int >= 0, got {max_plate_nesting!r}"
            )
        self.num_guide_samples = num_guide_samples
        self.max_plate_nesting = max_plate_nesting
        self.sample_dim = -1 - max_plate_nesting
        self.gumbels: torch.Tensor | None = None
        with torch.no_grad(), poutine.block():
            with plate(RESAMPLER_PLATE, num_guide_samples, dim=self.sample_dim):
                trace = trace_run(guide, (), {})
                self.guide_log_prob = _log_prob_per_sample(
                    trace, num_guide_samples, self.sample_dim
                )
                if simulator is not None:
                    trace = trace_run(poutine.replay(simulator, trace=trace), (), {})
        self.samples: Dict[str, torch.Tensor] = {
            name: _with_sample_dim(site, site["value"], num_guide_samples, max_plate_nesting)
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site_is_subsample(site)
        }

    @torch.no_grad()
    def sample(
        self, model: Callable, num_samples: int, stable: bool = True
    ) -> Dict[str, torch.Tensor]:
        """Draw ``num_samples`` samples of ``model`` (with the simulator's sites) from the cache.

        :param model: a model over the guide's latent sites, vectorizable with a plate.
        :param int num_samples: how many samples to return (drawn with replacement).
        :param bool stable: reuse the same Gumbel noise on every call, so the
            chosen samples change piecewise-constantly as the model's
            parameters move (good for plots); ``False`` draws fresh
            multinomial samples (for Monte Carlo estimates).
        :returns: dict of site name -> tensor with ``num_samples`` leading rows.
        """
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(
                f"Resampler.sample: num_samples must be an int >= 1, got {num_samples!r}"
            )
        n = self.num_guide_samples
        with poutine.block(), plate(RESAMPLER_PLATE, n, dim=self.sample_dim):
            trace = trace_run(poutine.condition(model, data=self.samples), (), {})
        logits = _log_prob_per_sample(trace, n, self.sample_dim) - self.guide_log_prob
        index = self.choose(logits, num_samples, stable)
        return {name: value[index] for name, value in self.samples.items()}

    def choose(self, logits: torch.Tensor, num_samples: int, stable: bool) -> torch.Tensor:
        """``num_samples`` indices drawn with probabilities ``softmax(logits)``.

        ``stable=True`` uses the Gumbel-max trick with noise cached across
        calls (``argmax(logits + g)`` per row of cached noise ``g``).
        """
        if not bool(torch.isfinite(logits).any()):
            raise ValueError(
                "Resampler.sample: the model gives zero density to every cached sample; "
                "draw the cache from a more diffuse guide"
            )
        if not stable:
            probs = (logits - logits.max()).exp()
            return torch.multinomial(probs, num_samples, replacement=True)
        if self.gumbels is None or self.gumbels.size(0) < num_samples:
            tiny = torch.finfo(logits.dtype).tiny
            u = torch.rand(num_samples, logits.numel(), dtype=logits.dtype, device=logits.device)
            self.gumbels = -(-(u.clamp(min=tiny).log())).clamp(min=tiny).log()
        return (self.gumbels[:num_samples] + logits).argmax(-1)
