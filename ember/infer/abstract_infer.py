"""TracePosterior, the base of sampling-based posteriors, and EmpiricalMarginal.

A :class:`TracePosterior` holds weighted execution traces of a model (from
importance sampling, systematic search, ...). :class:`EmpiricalMarginal` turns
the values they took at some sites into an
:class:`~ember.distributions.Empirical` distribution.

Posteriors that draw their samples in one vectorized pass store the batch as a
single trace whose sites carry a sample dimension; the per-sample traces of
:attr:`TracePosterior.exec_traces` are only split out when someone asks for
them, and marginals read the batched values directly.
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from typing import Dict, Iterator, List, Sequence, Tuple, Union

import torch

from ember import poutine
from ember.distributions.empirical import Empirical
from ember.infer.util import plate_depth
from ember.poutine.trace_struct import Trace
from ember.poutine.util import site_is_subsample

__all__ = [
    "SAMPLES_PLATE",
    "EmpiricalMarginal",
    "TracePosterior",
    "TracePredictive",
    "VectorizedSamples",
]

#: The name of the plate that holds the samples of a vectorized posterior.
SAMPLES_PLATE = "_num_importance_samples"


class VectorizedSamples:
    """Samples drawn in one vectorized pass: one trace whose sites carry a sample dim.

    The sample dim of each site is the plate :data:`SAMPLES_PLATE`, at
    ``dim=-(max_plate_nesting + 1)``; ``log_weights`` has one entry per sample.
    ``args`` is ``(args, kwargs)`` to replay ``model`` with (for return values).
    """

    __slots__ = ("trace", "log_weights", "num_samples", "max_plate_nesting", "model", "args")

    def __init__(self, trace, log_weights, num_samples, max_plate_nesting, model, args):
        self.trace = trace
        self.log_weights = log_weights
        self.num_samples = num_samples
        self.max_plate_nesting = max_plate_nesting
        self.model = model
        self.args = args  # (args, kwargs) to replay the model for return values

    def sample_dim(self, site, value) -> int | None:
        """Position of the sample dim in ``value`` (or ``None`` when it is shared)."""
        if not isinstance(value, torch.Tensor):
            return None
        fn = site.get("fn")
        event_dim = len(getattr(fn, "event_shape", ()))
        pos = value.dim() - event_dim - self.max_plate_nesting - 1
        if pos < 0 or value.shape[pos] == 1:
            return None
        if value.shape[pos] != self.num_samples:
            raise ValueError(
                f"site {site['name']!r}: value of shape {tuple(value.shape)} does not have the "
                f"{self.num_samples} samples at dim {pos - value.dim()}"
            )
        return pos

    def site_values(self, name: str) -> torch.Tensor:
        """``(num_samples, *value_shape)`` values of one sample site."""
        site = self.trace.nodes[name]
        value = site["value"]
        pos = self.sample_dim(site, value)
        if pos is None:
            return value.unsqueeze(0).expand((self.num_samples,) + value.shape)
        value = value.movedim(pos, 0)
        return value.reshape((self.num_samples,) + self.natural_shape(site, value.shape[1:]))

    def natural_shape(self, site, shape: torch.Size) -> torch.Size:
        """A sample's value shape as an unvectorized run gives it (leading 1s trimmed)."""
        event_dim = len(getattr(site.get("fn"), "event_shape", ()))
        depth = plate_depth((site,), exclude=SAMPLES_PLATE)
        shape = tuple(shape)
        while len(shape) - event_dim > depth and shape[0] == 1:
            shape = shape[1:]
        return torch.Size(shape)

    def split(self) -> List[object]:
        """The per-sample traces (slow: one trace per sample; model replayed for returns)."""
        model, (args, kwargs) = self.model, self.args
        traces = []
        for i in range(self.num_samples):
            tr = Trace()
            for name, site in self.trace.nodes.items():
                if site["type"] == "return":
                    continue
                site = dict(site)
                for key in ("log_prob", "log_prob_sum", "unscaled_log_prob", "score_parts"):
                    site.pop(key, None)
                value = site.get("value")
                if site["type"] == "sample":
                    pos = self.sample_dim(site, value)
                    if pos is not None:
                        one = value.select(pos, i)
                        site["value"] = one.reshape(self.natural_shape(site, one.shape))
                    site["cond_indep_stack"] = tuple(
                        f for f in site.get("cond_indep_stack", ()) if f.name != SAMPLES_PLATE
                    )
                    site["fn"] = None
                tr.add_node(name, **site)
            with poutine.block():
                ret = poutine.trace(poutine.replay(model, trace=tr)).get_trace(*args, **kwargs)
            for name, site in ret.nodes.items():
                if site["type"] == "sample" and name in tr.nodes:
                    tr.nodes[name]["fn"] = site["fn"]
            if "_RETURN" in ret.nodes:
                tr.add_node("_RETURN", **dict(ret.nodes["_RETURN"]))
            traces.append(tr)
        return traces


class TracePosterior(metaclass=ABCMeta):
    """Base class of posteriors represented by weighted execution traces.

    Subclasses implement :meth:`_traces`, a generator of ``(trace, log_weight)``
    pairs; :meth:`run` collects them into :attr:`exec_traces`,
    :attr:`log_weights` and :attr:`chain_ids`.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import TracePosterior, EmpiricalMarginal
        >>> class Prior(TracePosterior):
        ...     def _traces(self):
        ...         for _ in range(4):
        ...             fn = lambda: ember.sample("z", dist.Normal(0.0, 1.0))
        ...             tr = ember.poutine.trace(fn).get_trace()
        ...             yield tr, torch.tensor(0.0)
        >>> posterior = Prior().run()
        >>> len(posterior.exec_traces), EmpiricalMarginal(posterior, "z").sample_size
        (4, 4)
    """

    def __init__(self, num_chains: int = 1):
        self.num_chains = num_chains
        self._reset()

    def _reset(self) -> None:
        self.log_weights: List[torch.Tensor] = []
        self._exec_traces: List[object] = []
        self.chain_ids: List[int] = []
        self._batches: List[VectorizedSamples] = []

    @abstractmethod
    def _traces(self, *args, **kwargs) -> Iterator[Tuple[object, torch.Tensor]]:
        """Yield ``(trace, log_weight)`` pairs."""
        raise NotImplementedError  # abstract

    @property
    def exec_traces(self) -> List[object]:
        """Every sampled trace (a vectorized batch is split into traces on first access)."""
        if self._batches:
            for batch in self._batches:
                self._exec_traces.extend(batch.split())
            self._batches = []
        return self._exec_traces

    @exec_traces.setter
    def exec_traces(self, traces: List[object]) -> None:
        self._exec_traces = list(traces)
        self._batches = []

    def run(self, *args, **kwargs) -> TracePosterior:
        """Draw the posterior's traces; arguments go to the model. Returns ``self``."""
        self._reset()
        with poutine.block():
            for tr, log_weight in self._traces(*args, **kwargs):
                self._exec_traces.append(tr)
                self.log_weights.append(log_weight)
                self.chain_ids.append(0)
        return self

    def add_vectorized_samples(self, batch: VectorizedSamples) -> None:
        """Add samples drawn in one vectorized pass (split into traces only when asked for)."""
        self._batches.append(batch)
        self.log_weights.extend(batch.log_weights.unbind(0))
        self.chain_ids.extend([0] * batch.num_samples)

    def stacked_log_weights(self) -> torch.Tensor:
        """All samples' log weights as one 1-d tensor (``ValueError`` before :meth:`run`)."""
        parts = []
        if self._exec_traces:
            parts.append(
                torch.stack(
                    [torch.as_tensor(w) for w in self.log_weights[: len(self._exec_traces)]]
                )
            )
        for batch in self._batches:
            parts.append(batch.log_weights)
        if not parts:
            raise ValueError(
                f"{type(self).__name__} has no samples; call .run(*args, **kwargs) first"
            )
        return torch.cat([p.reshape(-1) for p in parts])

    def _site_values(self, name: str) -> torch.Tensor:
        """All values of one site, stacked: ``(num_samples, *value_shape)``."""
        parts = []
        if self._exec_traces:
            values = []
            for tr in self._exec_traces:
                if name not in tr.nodes:
                    raise ValueError(
                        f"site {name!r} is not in every trace of {type(self).__name__}; sites "
                        f"of the first trace: {sorted(tr.nodes)}"
                    )
                values.append(torch.as_tensor(tr.nodes[name]["value"]))
            try:
                parts.append(torch.stack(values))
            except RuntimeError as e:
                raise ValueError(
                    f"site {name!r} takes values of different shapes across traces: {e}"
                ) from e
        for batch in self._batches:
            if name not in batch.trace.nodes or batch.trace.nodes[name]["type"] != "sample":
                batch_traces = batch.split()  # e.g. "_RETURN": needs the per-sample traces
                parts.append(
                    torch.stack([torch.as_tensor(t.nodes[name]["value"]) for t in batch_traces])
                )
            else:
                parts.append(batch.site_values(name))
        if not parts:
            raise ValueError(
                f"{type(self).__name__} has no samples; call .run(*args, **kwargs) first"
            )
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def marginal(self, sites: Union[str, Sequence[str], None] = None) -> EmpiricalMarginal:
        """The :class:`EmpiricalMarginal` of ``sites`` (default: the return value)."""
        return EmpiricalMarginal(self, sites)

    def _pointwise_log_likelihood(self) -> torch.Tensor:
        """``(num_samples, *data_shape)``: log-likelihood of each data point in each sample."""
        names = set()
        parts = []

        def observed(trace):
            found = [
                name
                for name, site in trace.nodes.items()
                if site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site)
            ]
            if len(found) != 1:
                raise ValueError(
                    "information_criterion needs a model with exactly one observed site, "
                    f"found {sorted(found)}"
                )
            names.add(found[0])
            if len(names) > 1:
                raise ValueError(
                    "information_criterion: the traces observe different sites "
                    f"{sorted(names)}; the model must observe the same site in every run"
                )
            return trace.nodes[found[0]]

        if self._exec_traces:
            lls = []
            for tr in self._exec_traces:
                site = observed(tr)
                lls.append(site["fn"].log_prob(site["value"]).detach())
            parts.append(torch.stack(lls))
        for batch in self._batches:
            site = observed(batch.trace)
            ll = site["fn"].log_prob(site["value"]).detach()
            pos = ll.dim() - batch.max_plate_nesting - 1
            if pos < 0 or ll.shape[pos] == 1:
                ll = ll.unsqueeze(0).expand((batch.num_samples,) + ll.shape)
                pos = 0
            ll = ll.movedim(pos, 0)
            depth = plate_depth((site,), exclude=SAMPLES_PLATE)
            shape = tuple(ll.shape[1:])
            while len(shape) > depth and shape[0] == 1:
                shape = shape[1:]
            parts.append(ll.reshape((batch.num_samples,) + shape))
        if not parts:
            raise ValueError(
                f"{type(self).__name__} has no samples; call .run(*args, **kwargs) first"
            )
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def information_criterion(self, pointwise: bool = False) -> Dict[str, torch.Tensor]:
        """The widely applicable information criterion (WAIC) of the posterior's samples.

        For the model's one observed site, with ``l[s, i]`` the log-likelihood
        of data point ``i`` under sample ``s`` and ``w[s]`` the normalized
        weights: ``lppd[i] = log sum_s w[s] exp(l[s, i])``, ``p_waic[i]`` is the
        weighted variance of ``l[:, i]`` (unbiased for reliability weights,
        i.e. divided by ``1 - sum_s w[s]**2``), and
        ``waic[i] = -2 * (lppd[i] - p_waic[i])`` (Watanabe 2010; Gelman, Hwang
        and Vehtari 2014). Returns ``{"waic": ..., "p_waic": ...}``, summed over
        data points unless ``pointwise=True``.

        Example::

            >>> import torch, ember, ember.distributions as dist
            >>> from ember.infer import Importance
            >>> ember.set_rng_seed(0)
            >>> def model(data):
            ...     mu = ember.sample("mu", dist.Normal(0.0, 1.0))
            ...     with ember.plate("data", len(data)):
            ...         ember.sample("x", dist.Normal(mu, 1.0), obs=data)
            >>> posterior = Importance(model, num_samples=500).run(torch.zeros(4))
            >>> ic = posterior.information_criterion(pointwise=True)
            >>> sorted(ic), ic["waic"].shape
            (['p_waic', 'waic'], torch.Size([4]))
        """
        ll = self._pointwise_log_likelihood()
        log_w = self.stacked_log_weights().to(dtype=ll.dtype, device=ll.device)
        log_w = log_w - torch.logsumexp(log_w, 0)
        log_w = log_w.reshape(log_w.shape + (1,) * (ll.dim() - 1))
        w = log_w.exp()
        lppd = torch.logsumexp(ll + log_w, 0)
        mean = (w * ll).sum(0)
        denom = 1.0 - (w**2).sum(0)
        if not bool((denom > 0).all()):
            raise ValueError(
                "information_criterion: the weights put all mass on one sample (effective "
                "sample size 1); draw more samples"
            )
        p_waic = (w * (ll - mean) ** 2).sum(0) / denom
        waic = -2.0 * (lppd - p_waic)
        if not pointwise:
            waic, p_waic = waic.sum(), p_waic.sum()
        return OrderedDict([("waic", waic), ("p_waic", p_waic)])


class EmpiricalMarginal(Empirical):
    """The weighted empirical distribution of site values in a :class:`TracePosterior`.

    :param trace_posterior: a posterior that has been ``run``.
    :param sites: a site name, a list of names (their values are stacked along
        a new leftmost event dim) or ``None`` for the model's return value.

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> from ember.infer import Importance, EmpiricalMarginal
        >>> ember.set_rng_seed(0)
        >>> def model():
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(2.0))
        >>> posterior = Importance(model, num_samples=2000).run()
        >>> marginal = EmpiricalMarginal(posterior, "z")
        >>> round(marginal.mean.item(), 1)  # exact posterior mean: 1.0
        1.0
    """

    def __init__(
        self,
        trace_posterior: TracePosterior,
        sites: Union[str, Sequence[str], None] = None,
        validate_args: bool | None = None,
    ):
        if not isinstance(trace_posterior, TracePosterior):
            raise TypeError(
                "EmpiricalMarginal expects a TracePosterior (e.g. Importance(...).run()), got "
                f"{type(trace_posterior).__name__}"
            )
        if sites is None:
            sites = "_RETURN"
        log_weights = trace_posterior.stacked_log_weights()
        if isinstance(sites, str):
            samples = trace_posterior._site_values(sites)
        else:
            sites = list(sites)
            if not sites:
                raise ValueError("EmpiricalMarginal: sites must not be empty")
            samples = torch.stack([trace_posterior._site_values(s) for s in sites], 1)
        samples = samples.detach()
        log_weights = log_weights.detach().to(
            dtype=samples.dtype if samples.is_floating_point() else log_weights.dtype,
            device=samples.device,
        )
        self.sites = sites
        super().__init__(samples, log_weights, validate_args=validate_args)


class TracePredictive(TracePosterior):
    """Posterior predictive traces drawn from the weighted traces of a posterior.

    .. warning:: Deprecated (as in Pyro): use :class:`~ember.infer.predictive.Predictive`.

    Each of the ``num_samples`` traces picks one trace of ``posterior`` with
    probability proportional to its weight, drops its observed sites (and,
    with ``keep_sites``, every site not listed), and replays ``model`` on the
    remaining values, so the observed sites and the return value are drawn
    anew. The model may be called with other data than the posterior saw:
    sites inside a plate take the plate's size in the new run by picking
    posterior values at random indices of that plate (with replacement), so no
    correspondence between old and new data points is assumed.

    :param model: the model.
    :param TracePosterior posterior: a posterior (run on first use if it has
        no samples yet, with the arguments given to :meth:`run`).
    :param int num_samples: how many predictive traces to draw.
    :param keep_sites: names of the sites whose posterior values are kept
        (default: all latent sites).

    Example::

        >>> import warnings, torch, ember, ember.distributions as dist
        >>> from ember.infer import Importance
        >>> ember.set_rng_seed(0)
        >>> def model(n):
        ...     z = ember.sample("z", dist.Normal(0.0, 1.0))
        ...     with ember.plate("data", n):
        ...         return ember.sample("x", dist.Normal(z, 0.1), obs=torch.ones(n))
        >>> posterior = Importance(model, num_samples=500).run(3)
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", FutureWarning)
        ...     predictive = TracePredictive(model, posterior, num_samples=5).run(3)
        >>> len(predictive.exec_traces), predictive.exec_traces[0].nodes["x"]["value"].shape
        (5, torch.Size([3]))
    """

    def __init__(self, model, posterior: TracePosterior, num_samples: int, keep_sites=None):
        if not callable(model):
            raise TypeError(f"TracePredictive: model must be callable, got {type(model).__name__}")
        if not isinstance(posterior, TracePosterior):
            raise TypeError(
                "TracePredictive: posterior must be a TracePosterior (e.g. Importance(...)), got "
                f"{type(posterior).__name__}"
            )
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
            raise ValueError(
                f"TracePredictive: num_samples must be an int >= 1, got {num_samples!r}"
            )
        self.model = model
        self.posterior = posterior
        self.num_samples = num_samples
        self.keep_sites = None if keep_sites is None else set(keep_sites)
        super().__init__()
        warnings.warn(
            "TracePredictive is deprecated and will be removed in a future release; use "
            "ember.infer.Predictive instead.",
            FutureWarning,
            stacklevel=2,
        )

    def _traces(self, *args, **kwargs):
        if not self.posterior.log_weights:
            self.posterior.run(*args, **kwargs)
        data_trace = poutine.trace(self.model).get_trace(*args, **kwargs)
        log_weights = self.posterior.stacked_log_weights().detach()
        traces = self.posterior.exec_traces
        picks = torch.distributions.Categorical(logits=log_weights).sample((self.num_samples,))
        for i in picks.tolist():
            trace = traces[i].copy()
            for name in list(trace.nodes):
                site = trace.nodes[name]
                drop = site["type"] == "sample" and site["is_observed"]
                if self.keep_sites is not None and name not in self.keep_sites:
                    drop = True
                if drop:
                    trace.remove_node(name)
            self._adjust_to_data(trace, data_trace)
            replayed = poutine.trace(poutine.replay(self.model, trace=trace))
            yield replayed.get_trace(*args, **kwargs), torch.tensor(0.0)

    @staticmethod
    def _adjust_to_data(trace, data_trace) -> None:
        """Fit the kept sites to the plates of a run on the new data (in place)."""
        indices = {}
        for name, site in list(trace.nodes.items()):
            if site["type"] != "sample" or site["is_observed"]:
                continue
            if name not in data_trace.nodes:
                trace.remove_node(name)  # not part of a run on the new data
                continue
            new_site = data_trace.nodes[name]
            if site_is_subsample(site):
                site["fn"] = new_site["fn"]
                site["value"] = new_site["value"]
                continue
            old_frames = {f.name: f for f in site.get("cond_indep_stack") or ()}
            site["cond_indep_stack"] = new_site["cond_indep_stack"]
            site["fn"] = new_site["fn"]
            event_dim = len(getattr(new_site["fn"], "event_shape", ()))
            value = site["value"]
            for frame in new_site["cond_indep_stack"]:
                old = old_frames.get(frame.name)
                if frame.dim is None or old is None:
                    continue
                dim = frame.dim - event_dim
                if value.dim() < -dim or value.size(dim) == 1:
                    continue  # the value does not vary along this plate
                if frame.name not in indices:
                    indices[frame.name] = torch.randint(
                        0, value.size(dim), (frame.size,), device=value.device
                    )
                value = value.index_select(dim, indices[frame.name])
            site["value"] = value
