"""Sequential Monte Carlo filtering (sequential importance resampling).

:class:`SMCFilter` keeps ``num_particles`` weighted hypotheses of a model's
state. Model and guide are objects with two methods, ``init(state, ...)`` and
``step(state, ...)``; every call runs the guide (the proposal) inside a plate
of particles, replays the model against it, multiplies each particle's weight
by ``p(model sites) / q(guide sites)`` and resamples (systematically) when the
effective sample size drops below ``ess_threshold * num_particles``.

The state is an :class:`SMCState`: a dict of tensors whose leading dim indexes
the particles. The model reads and writes it; the guide may only read it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Dict, Iterator

import torch

from ember import poutine
from ember.distributions.empirical import Empirical
from ember.infer.util import is_validation_enabled, particle_sum
from ember.poutine.util import prune_subsample_sites
from ember.primitives import plate

__all__ = ["SMCFailed", "SMCFilter", "SMCState", "systematic_sample"]

#: The name of the plate that holds the particles.
PARTICLES_PLATE = "particles"


class SMCFailed(ValueError):
    """Raised by :class:`SMCFilter` when every particle has zero probability."""


def systematic_sample(probs: torch.Tensor) -> torch.Tensor:
    """Systematic resampling: ``size`` ancestor indices per row of ``probs``.

    ``probs`` has shape ``batch + (size,)`` and sums to one over its last dim.
    One uniform offset ``u`` per row places ``size`` evenly spaced points
    ``(u + k) / size``; index ``i`` is chosen once for every point that falls
    in its slice of the cumulative distribution. Each index is therefore drawn
    ``floor(size * p_i)`` or ``ceil(size * p_i)`` times (expected count
    ``size * p_i``), which keeps more distinct particles than multinomial
    resampling. The returned indices are sorted within each row.

    Example::

        >>> import torch
        >>> systematic_sample(torch.tensor([0.0, 1.0, 0.0]))
        tensor([1, 1, 1])
    """
    if not isinstance(probs, torch.Tensor) or probs.dim() < 1:
        raise ValueError(
            "systematic_sample: probs must be a tensor with at least one dim (the particles)"
        )
    size = probs.size(-1)
    batch_shape = probs.shape[:-1]
    offset = torch.rand(batch_shape + (1,), dtype=probs.dtype, device=probs.device)
    # Number of points (u + k) / size lying below each cumulative probability.
    below = (probs.cumsum(-1) * size + offset).floor().clamp(0, size).long()
    below[..., -1] = size  # the last cumulative probability is 1 up to rounding
    counts = torch.zeros(batch_shape + (size + 1,), dtype=torch.long, device=probs.device)
    counts.scatter_add_(-1, below, torch.ones_like(below))
    # The k-th point belongs to the first index whose cumulative count exceeds k.
    return counts[..., :-1].cumsum(-1)


# Pyro's module exposes this helper under an underscore name; Pyro programs and
# tests import it from here.
_systematic_sample = systematic_sample


class SMCState(dict):
    """The particles' state: a dict of tensors whose leading dim has ``num_particles``.

    :class:`SMCFilter` resamples every value along that dim. Keys may be any
    hashable; values must be tensors (checked while validation is enabled).
    Writing is refused while the guide runs.

    :param int num_particles: the number of particles.
    """

    def __init__(self, num_particles: int):
        if not isinstance(num_particles, int) or isinstance(num_particles, bool):
            raise TypeError(f"SMCState: num_particles must be an int, got {num_particles!r}")
        if num_particles < 1:
            raise ValueError(f"SMCState: num_particles must be >= 1, got {num_particles}")
        super().__init__()
        self._num_particles = num_particles
        self._log_weights = torch.zeros(num_particles)
        self._locked = False

    @property
    def num_particles(self) -> int:
        """The number of particles."""
        return self._num_particles

    @property
    def log_weights(self) -> torch.Tensor:
        """The particles' unnormalized log weights, shape ``(num_particles,)``."""
        return self._log_weights

    @contextlib.contextmanager
    def read_only(self) -> Iterator[None]:
        """Refuse writes inside this context (the guide runs inside it)."""
        self._locked = True
        try:
            yield
        finally:
            self._locked = False

    def __setitem__(self, key, value) -> None:
        if self._locked:
            raise RuntimeError(
                f"SMCState: the guide cannot write to the state (key {key!r}); only the "
                "model's init/step may store tensors in it"
            )
        if is_validation_enabled():
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"SMCState: only tensors can be stored, got {type(value).__name__} at key "
                    f"{key!r}"
                )
            if value.dim() == 0 or value.size(0) != self._num_particles:
                raise ValueError(
                    f"SMCState: the value at key {key!r} must have a leading dim of size "
                    f"{self._num_particles} (one row per particle), got shape "
                    f"{tuple(value.shape)}; sample it inside the filter's particle plate"
                )
        super().__setitem__(key, value)

    def resample(self, index: torch.Tensor) -> None:
        """Replace every particle by particle ``index[i]`` and reset the weights to equal."""
        for key, value in list(self.items()):
            dict.__setitem__(self, key, value[index].contiguous())
        self._log_weights.fill_(0.0)


def _per_particle(log_prob, num_particles: int, particle_dim: int, name: str) -> torch.Tensor:
    """A site's log-probability summed to one entry per particle."""
    total = particle_sum(log_prob, particle_dim)
    if not isinstance(total, torch.Tensor):
        total = torch.tensor(float(total))
    if total.dim() == 0:  # the same for every particle
        return total.expand(num_particles)
    if total.shape != (num_particles,):
        raise ValueError(
            f"SMCFilter: site {name!r} has log_prob of shape {tuple(log_prob.shape)}, whose dim "
            f"{particle_dim} should be the {num_particles} particles; is max_plate_nesting "
            "large enough for the model's plates?"
        )
    return total


class SMCFilter:
    """Filtering by sequential Monte Carlo (sequential importance resampling).

    ``model`` and ``guide`` are objects with methods ``init(state, *args,
    **kwargs)`` and ``step(state, *args, **kwargs)``, called as
    :meth:`init` once and then :meth:`step` once per time step (with the same
    extra arguments). ``state`` is an :class:`SMCState` holding every tensor
    that depends on sampled values (e.g. the current latent state); the model
    reads and writes it, the guide only reads it. Keep it of fixed size: each
    step costs ``O(len(state))``.

    Each call samples the guide's sites inside a plate of ``num_particles`` at
    ``dim=-1 - max_plate_nesting``, replays the model on those values, and
    updates each particle's log weight by ``log p - log q`` at the guide's
    sites plus ``log p`` at the model's observed sites (model sites the guide
    does not sample are drawn from the model, so their terms cancel).

    :param model: the model (``init`` and ``step`` methods).
    :param guide: the proposal (``init`` and ``step`` methods, same sites).
    :param int num_particles: the number of particles.
    :param int max_plate_nesting: how many plate dims the model and guide use.
    :param float ess_threshold: resample when the effective sample size is
        below ``ess_threshold * num_particles`` (``0 < ess_threshold <= 1``).

    Example::

        >>> import torch, ember, ember.distributions as dist
        >>> ember.set_rng_seed(0)
        >>> class RandomWalk:
        ...     def init(self, state):
        ...         state["z"] = ember.sample("z_0", dist.Normal(0.0, 1.0))
        ...         self.t = 0
        ...     def step(self, state, y):
        ...         self.t += 1
        ...         state["z"] = ember.sample(f"z_{self.t}", dist.Normal(state["z"], 1.0))
        ...         ember.sample(f"y_{self.t}", dist.Normal(state["z"], 1.0), obs=y)
        >>> class Proposal:
        ...     def init(self, state):
        ...         ember.sample("z_0", dist.Normal(0.0, 1.0))
        ...         self.t = 0
        ...     def step(self, state, y):
        ...         self.t += 1
        ...         ember.sample(f"z_{self.t}", dist.Normal(state["z"], 1.0))
        >>> smc = SMCFilter(RandomWalk(), Proposal(), num_particles=1000, max_plate_nesting=0)
        >>> smc.init()
        >>> for y in [1.0, 2.0, 3.0]:
        ...     smc.step(torch.tensor(y))
        >>> z = smc.get_empirical()["z"]
        >>> z.mean.item() > 1.5  # the Kalman filter's mean is 2.6
        True
    """

    def __init__(
        self,
        model,
        guide,
        num_particles: int,
        max_plate_nesting: int,
        *,
        ess_threshold: float = 0.5,
    ):
        for role, obj in (("model", model), ("guide", guide)):
            for method in ("init", "step"):
                if not callable(getattr(obj, method, None)):
                    raise TypeError(
                        f"SMCFilter: the {role} must be an object with init(state, ...) and "
                        f"step(state, ...) methods; {type(obj).__name__} has no {method}()"
                    )
        if not isinstance(num_particles, int) or isinstance(num_particles, bool):
            raise TypeError(f"SMCFilter: num_particles must be an int, got {num_particles!r}")
        if num_particles < 1:
            raise ValueError(f"SMCFilter: num_particles must be >= 1, got {num_particles}")
        if (
            not isinstance(max_plate_nesting, int)
            or isinstance(max_plate_nesting, bool)
            or max_plate_nesting < 0
        ):
            raise ValueError(
                f"SMCFilter: max_plate_nesting must be an int >= 0, got {max_plate_nesting!r}"
            )
        if not (0 < ess_threshold <= 1):
            raise ValueError(
                f"SMCFilter: ess_threshold must satisfy 0 < ess_threshold <= 1, got "
                f"{ess_threshold!r}"
            )
        self.model = model
        self.guide = guide
        self.num_particles = num_particles
        self.max_plate_nesting = max_plate_nesting
        self.ess_threshold = ess_threshold
        self.particle_dim = -1 - max_plate_nesting
        self.state = SMCState(num_particles)
        self.particle_plate = None

    def init(self, *args, **kwargs) -> None:
        """Start filtering: run the guide's and model's ``init`` (arguments go to both)."""
        self.state.clear()
        self.state._log_weights = torch.zeros(self.num_particles)
        self.particle_plate = plate(PARTICLES_PLATE, self.num_particles, dim=self.particle_dim)
        self._advance(self.model.init, self.guide.init, args, kwargs)

    def step(self, *args, **kwargs) -> None:
        """One filtering step: run the guide's and model's ``step`` (arguments go to both),
        reweight the particles and resample if their effective sample size is too low."""
        if self.particle_plate is None:
            raise RuntimeError("SMCFilter: call .init(...) before .step(...)")
        self._advance(self.model.step, self.guide.step, args, kwargs)

    def get_empirical(self) -> Dict[object, Empirical]:
        """The weighted particle distribution of every state entry, as
        :class:`~ember.distributions.Empirical` distributions keyed like the state."""
        return {key: Empirical(value, self.state._log_weights) for key, value in self.state.items()}

    def _advance(self, model_fn, guide_fn, args, kwargs) -> None:
        with poutine.block(), self.particle_plate:
            with self.state.read_only():
                guide_trace = poutine.trace(guide_fn).get_trace(self.state, *args, **kwargs)
            replayed = poutine.replay(model_fn, trace=guide_trace)
            model_trace = poutine.trace(replayed).get_trace(self.state, *args, **kwargs)
        self._update_weights(model_trace, guide_trace)
        self._maybe_resample()

    @torch.no_grad()
    def _update_weights(self, model_trace, guide_trace) -> None:
        model_trace = prune_subsample_sites(model_trace)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
        n, dim = self.num_particles, self.particle_dim
        log_w = self.state._log_weights
        # Running totals after each site, to name the first site that leaves no
        # feasible particle without a host sync per site.
        names, maxima = [], []
        for name, site in guide_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if name not in model_trace.nodes:
                raise ValueError(
                    f"SMCFilter: the guide samples site {name!r}, which the model does not "
                    f"have; model sites: {sorted(model_trace.stochastic_nodes)}"
                )
            log_p = _per_particle(model_trace.nodes[name]["log_prob"], n, dim, name)
            log_q = _per_particle(site["log_prob"], n, dim, name)
            log_w = log_w + (log_p - log_q).to(log_w.dtype)
            names.append(name)
            maxima.append(log_w.max())
        for name, site in model_trace.nodes.items():
            if site["type"] == "sample" and site["is_observed"] and name not in guide_trace.nodes:
                log_w = log_w + _per_particle(site["log_prob"], n, dim, name).to(log_w.dtype)
                names.append(name)
                maxima.append(log_w.max())
        if maxima:
            maxima = torch.stack(maxima)
            feasible = maxima > -math.inf  # False for -inf and NaN
            if not bool(feasible.all()):
                first = int((~feasible).nonzero()[0])
                if bool(torch.isnan(maxima[first])):
                    raise SMCFailed(
                        f"SMCFilter: the particles' log weights became NaN at site {names[first]!r}"
                    )
                raise SMCFailed(
                    f"SMCFilter: no particle has nonzero probability after site "
                    f"{names[first]!r}; the guide proposes values the model rules out, or "
                    "more particles are needed"
                )
            log_w = log_w - maxima[-1]
        self.state._log_weights = log_w

    def _maybe_resample(self) -> None:
        if not self.state:
            return
        log_w = self.state._log_weights
        log_w = log_w - log_w.logsumexp(-1)
        self.state._log_weights = log_w
        probs = log_w.exp()
        ess = probs.dot(probs).reciprocal()
        if ess < self.ess_threshold * self.num_particles:
            self.state.resample(systematic_sample(probs))
