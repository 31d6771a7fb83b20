"""Predictive: samples from the posterior predictive (or prior predictive) distribution.

The model is run with its latent sites set to posterior samples (given
directly, or drawn from a guide), and the values of the requested sites are
collected. With ``parallel=True`` all samples are drawn in one vectorized
pass, in a plate placed left of the model's own plates.
"""

from __future__ import annotations

import warnings
from typing import Callable, Dict, Sequence

import torch

from ember import poutine
from ember.infer.autoguide.initialization import InitMessenger, init_to_sample_or_feasible
from ember.infer.util import plate_depth, vectorize
from ember.poutine.util import prune_subsample_sites

__all__ = ["Predictive"]

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
