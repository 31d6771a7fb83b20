"""Hidden Markov models as distributions over whole sequences.

Each distribution's event is a sequence: ``event_shape = (num_steps,) +
observation event shape``, so ``log_prob`` sums out the hidden chain exactly.
The time dimension is eliminated by pairwise contractions in ``log2(T)``
rounds (a parallel scan: the depth of the computation grows as ``log T``, the
work as ``T``), on log-space matrices for discrete states and on Gaussians in
information form (:mod:`ember.ops.gaussian`) for linear-Gaussian states.

The generative story shared by the models: a hidden state ``z`` is drawn from
the initial distribution, then for each step ``t`` it moves by the transition
at ``t`` and emits the observation ``x_t``; the initial state itself emits
nothing.

Parameters may vary with time (a time dim of size ``num_steps``) or not (size
1: a homogeneous model whose ``event_shape[0]`` is 1 and which scores
sequences of any length; give ``duration`` to sample from it).
"""

from __future__ import annotations

import torch
from torch.distributions import constraints

from ember.distributions.multivariate_studentt import MultivariateStudentT
from ember.distributions.torch import Categorical, Gamma, MultivariateNormal
from ember.distributions.torch_distribution import TorchDistribution
from ember.distributions.util import broadcast_shape
from ember.distributions.validation import fresh_instance
from ember.ops.gamma_gaussian import (
    gamma_and_mvn_to_gamma_gaussian,
    gamma_gaussian_tensordot,
    matrix_and_mvn_to_gamma_gaussian,
    register_compound_distribution,
    sequential_gamma_gaussian_tensordot,
)
from ember.ops.gaussian import (
    Gaussian,
    gaussian_tensordot,
    matrix_and_mvn_to_gaussian,
    mvn_to_gaussian,
    safe_cholesky,
    sequential_gaussian_filter_sample,
    sequential_gaussian_tensordot,
)

__all__ = [
    "DiscreteHMM",
    "GammaGaussianHMM",
    "GaussianHMM",
    "GaussianMRF",
    "HiddenMarkovModel",
    "IndependentHMM",
    "LinearHMM",
    "sequential_logmatmulexp",
]

_EMPTY = torch.Size()

register_compound_distribution(MultivariateStudentT)

# The names Pyro gives these helpers in its own module (code written against Pyro's
# internals, e.g. its test-suite, imports them from here).
_sequential_gamma_gaussian_tensordot = sequential_gamma_gaussian_tensordot


def _logmatmulexp(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(exp(a) @ exp(b))`` for batches of square matrices, stably."""
    a_max = a.amax(-1, keepdim=True).clamp(min=torch.finfo(a.dtype).min)
    b_max = b.amax(-2, keepdim=True).clamp(min=torch.finfo(b.dtype).min)
    product = (a - a_max).exp() @ (b - b_max).exp()
    return product.log() + a_max + b_max


def sequential_logmatmulexp(logits: torch.Tensor) -> torch.Tensor:
    """The log-space product ``logits[..., 0, :, :] @ ... @ logits[..., T-1, :, :]`` of a
    sequence of matrices along dim ``-3``, in ``log2(T)`` rounds of pairwise
    products.

    Example::

        >>> import torch
        >>> m = torch.randn(5, 3, 3)
        >>> expected = m[0].exp() @ m[1].exp() @ m[2].exp() @ m[3].exp() @ m[4].exp()
        >>> bool(torch.allclose(sequential_logmatmulexp(m).exp(), expected, rtol=1e-4))
        True
    """
    while logits.size(-3) > 1:
        T = logits.size(-3)
        even = T - T % 2
        paired = _logmatmulexp(logits[..., 0:even:2, :, :], logits[..., 1:even:2, :, :])
        if T % 2:
            paired = torch.cat([paired, logits[..., T - 1 :, :, :]], -3)
        logits = paired
    return logits.squeeze(-3)


_sequential_logmatmulexp = sequential_logmatmulexp


class HiddenMarkovModel(TorchDistribution):
    """Base class of the hidden Markov models: the time axis and its length.

    :param duration: the number of steps (``event_shape[0]``), needed to sample
        from a model whose parameters have no time dim; ``None`` to take it from
        the parameters.
    """

    def __init__(self, duration, batch_shape, event_shape, validate_args=None):
        event_shape = torch.Size(event_shape)
        if duration is None:
            if event_shape[0] != 1:
                duration = event_shape[0]
        elif duration != event_shape[0]:
            if event_shape[0] != 1:
                raise ValueError(
                    f"{type(self).__name__}: duration={duration} but the parameters have "
                    f"{event_shape[0]} time steps (event_shape {tuple(event_shape)})"
                )
            event_shape = torch.Size((duration,)) + event_shape[1:]
        self._duration = duration
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def duration(self):
        """The number of time steps, or ``None`` for a homogeneous model of any length."""
        return self._duration

    def _validate_sample(self, value):
        if value.dim() < self.event_dim:
            raise ValueError(
                f"{type(self).__name__}: a value of shape {tuple(value.shape)} has fewer dims "
                f"than the event (event_shape {tuple(self.event_shape)})"
            )
        if self.duration is not None:
            return super()._validate_sample(value)
        # any length: check the value against the event shape with its own length
        old = self._event_shape
        self._event_shape = torch.Size((value.size(-self.event_dim),)) + old[1:]
        try:
            return super()._validate_sample(value)
        finally:
            self._event_shape = old

    def _require_duration(self, what: str) -> int:
        if self.duration is None:
            raise ValueError(
                f"{type(self).__name__}.{what} needs the number of steps: the parameters have "
                "no time dim, so give duration=... when constructing the distribution"
            )
        return self.duration


class DiscreteHMM(HiddenMarkovModel):
    """A hidden Markov model with discrete states and any observation distribution.

    :param initial_logits: logits of the initial state, shape ``batch_shape +
        (state_dim,)`` (broadcastable).
    :param transition_logits: logits of the next state given the previous one,
        shape ``batch_shape + (num_steps, state_dim, state_dim)`` (previous, next;
        broadcastable).
    :param observation_dist: the distribution of an observation given the state:
        its batch shape ends in ``state_dim`` and broadcasts to ``batch_shape +
        (num_steps, state_dim)``.
    :param duration: see :class:`HiddenMarkovModel`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> hmm = dist.DiscreteHMM(torch.zeros(2), torch.tensor([[0.0, -2.0], [-2.0, 0.0]]),
        ...                        dist.Normal(torch.tensor([-1.0, 1.0]), 1.0), duration=4)
        >>> hmm.event_shape, hmm.sample().shape
        (torch.Size([4]), torch.Size([4]))
        >>> hmm.log_prob(torch.tensor([-1.0, -0.8, 1.2, 0.9])).shape
        torch.Size([])
    """

    arg_constraints = {
        "initial_logits": constraints.real,
        "transition_logits": constraints.real,
    }

    def __init__(
        self,
        initial_logits: torch.Tensor,
        transition_logits: torch.Tensor,
        observation_dist,
        validate_args=None,
        duration=None,
    ):
        if initial_logits.dim() < 1:
            raise ValueError(
                "DiscreteHMM: initial_logits needs a state dim, got shape "
                f"{tuple(initial_logits.shape)}"
            )
        if transition_logits.dim() < 2 or transition_logits.size(-1) != transition_logits.size(-2):
            raise ValueError(
                "DiscreteHMM: transition_logits must end in (state_dim, state_dim), got shape "
                f"{tuple(transition_logits.shape)}"
            )
        S = initial_logits.size(-1)
        if transition_logits.size(-1) != S:
            raise ValueError(
                f"DiscreteHMM: initial_logits has {S} states but transition_logits has "
                f"{transition_logits.size(-1)}"
            )
        obs_batch = observation_dist.batch_shape
        if len(obs_batch) < 1 or obs_batch[-1] not in (1, S):
            raise ValueError(
                "DiscreteHMM: observation_dist's batch_shape must end in the state dim "
                f"({S}), got {tuple(obs_batch)}"
            )
        shape = broadcast_shape(
            initial_logits.shape[:-1] + (1,), transition_logits.shape[:-2], obs_batch[:-1]
        )
        batch_shape, time_shape = shape[:-1], shape[-1:]
        self.initial_logits = initial_logits - initial_logits.logsumexp(-1, True)
        self.transition_logits = transition_logits - transition_logits.logsumexp(-1, True)
        self.observation_dist = observation_dist
        super().__init__(
            duration, batch_shape, time_shape + observation_dist.event_shape, validate_args
        )

    @constraints.dependent_property(event_dim=2)
    def support(self):
        return constraints.independent(self.observation_dist.support, 1)

    def expand(self, batch_shape, _instance=None):
        new = fresh_instance(self, DiscreteHMM, _instance)
        batch_shape = torch.Size(broadcast_shape(self.batch_shape, batch_shape))
        # the batch shape is the broadcast of the three: expanding the initial logits
        # (used after the time contraction) is enough
        new.initial_logits = self.initial_logits.expand(batch_shape + (-1,))
        new.transition_logits = self.transition_logits
        new.observation_dist = self.observation_dist
        HiddenMarkovModel.__init__(
            new, self.duration, batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self.__dict__.get("_validate_args")
        return new

    def _step_logits(self, value: torch.Tensor) -> torch.Tensor:
        """``transition + observation`` log-factors per step: ``(..., T, prev, next)``."""
        value = value.unsqueeze(-1 - self.observation_dist.event_dim)
        obs_logits = self.observation_dist.log_prob(value)
        return self.transition_logits + obs_logits.unsqueeze(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        chain = sequential_logmatmulexp(self._step_logits(value))
        return (self.initial_logits + chain.logsumexp(-1)).logsumexp(-1)

    def filter(self, value: torch.Tensor) -> Categorical:
        """The posterior of the final hidden state given the observations ``value``, a
        ``Categorical`` (its logits can start a model that continues the sequence)."""
        if self._validate_args:
            self._validate_sample(value)
        chain = sequential_logmatmulexp(self._step_logits(value))
        logits = (self.initial_logits.unsqueeze(-1) + chain).logsumexp(-2)
        return Categorical(logits=logits, validate_args=self._validate_args)

    @torch.no_grad()
    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        T = self._require_duration("sample")
        sample_shape = torch.Size(sample_shape)
        S = self.initial_logits.size(-1)
        init = self.initial_logits.expand(sample_shape + self.batch_shape + (S,))
        z = Categorical(logits=init).sample()
        trans = self.transition_logits.expand(self.batch_shape + (T, S, S))
        states = []
        for t in range(T):
            rows = trans[..., t, :, :].expand(sample_shape + self.batch_shape + (S, S))
            rows = rows.gather(-2, z[..., None, None].expand(z.shape + (1, S))).squeeze(-2)
            z = Categorical(logits=rows).sample()
            states.append(z)
        z = torch.stack(states, -1)  # sample_shape + batch_shape + (T,)
        obs_dist = self.observation_dist.expand(self.batch_shape + (T, S))
        y = obs_dist.sample(sample_shape)  # ... + (T, S) + event_shape
        event_dim = obs_dist.event_dim
        index = z.reshape(z.shape + (1,) + (1,) * event_dim)
        index = index.expand(z.shape + (1,) + y.shape[y.dim() - event_dim :])
        return y.gather(-1 - event_dim, index).squeeze(-1 - event_dim)


def _is_gaussian_noise(d) -> bool:
    if isinstance(d, torch.distributions.MultivariateNormal):
        return True
    return isinstance(d, torch.distributions.Independent) and isinstance(
        d.base_dist, torch.distributions.Normal
    )


def linear_model_shapes(
    owner: str,
    noise_check,
    initial_dist,
    transition_matrix,
    transition_dist,
    observation_matrix,
    observation_dist,
    *batch_shapes,
):
    """Check the parts of a linear hidden Markov model and return ``(hidden_dim, obs_dim,
    batch_shape, time_shape)``. ``noise_check(name, dist)`` may refuse a noise
    distribution's type (raising ``TypeError``); ``batch_shapes`` are further batch
    shapes that broadcast with the model's (with their time dim)."""
    if observation_matrix.dim() < 2:
        raise ValueError(
            f"{owner}: observation_matrix must end in (hidden_dim, obs_dim), got shape "
            f"{tuple(observation_matrix.shape)}"
        )
    hidden_dim, obs_dim = observation_matrix.shape[-2:]
    for name, d, dim in (
        ("initial_dist", initial_dist, hidden_dim),
        ("transition_dist", transition_dist, hidden_dim),
        ("observation_dist", observation_dist, obs_dim),
    ):
        noise_check(name, d)
        if d.event_shape != (dim,):
            raise ValueError(
                f"{owner}: {name} must have event_shape ({dim},), got {tuple(d.event_shape)}"
            )
    if transition_matrix.shape[-2:] != (hidden_dim, hidden_dim):
        raise ValueError(
            f"{owner}: transition_matrix must end in ({hidden_dim}, {hidden_dim}), got "
            f"shape {tuple(transition_matrix.shape)}"
        )
    shape = broadcast_shape(
        initial_dist.batch_shape + (1,),
        transition_matrix.shape[:-2],
        transition_dist.batch_shape,
        observation_matrix.shape[:-2],
        observation_dist.batch_shape,
        *batch_shapes,
    )
    return hidden_dim, obs_dim, shape[:-1], shape[-1:]


def _any_noise(name, d) -> None:
    pass


def _requires_type(owner: str, check, what: str):
    def noise_check(name, d):
        if not check(d):
            raise TypeError(f"{owner}: {name} must be {what}, got {type(d).__name__}")

    return noise_check


def _expand_factor_model(model, cls, batch_shape, instance):
    """``expand`` of a model held as initial, transition and observation factors:
    the batch shape is the factors' broadcast, so expanding the initial factor (used
    after the time contraction) is enough."""
    new = fresh_instance(model, cls, instance)
    batch_shape = torch.Size(broadcast_shape(model.batch_shape, batch_shape))
    new.hidden_dim, new.obs_dim = model.hidden_dim, model.obs_dim
    new._init = model._init.expand(batch_shape)
    new._trans, new._obs = model._trans, model._obs
    HiddenMarkovModel.__init__(
        new, model.duration, batch_shape, model.event_shape, validate_args=False
    )
    new._validate_args = model.__dict__.get("_validate_args")
    return new


def _gaussian_to_mvn(g: Gaussian, validate_args=None) -> MultivariateNormal:
    chol = safe_cholesky(g.precision)
    loc = torch.cholesky_solve(g.info_vec.unsqueeze(-1), chol).squeeze(-1)
    return MultivariateNormal(loc, precision_matrix=g.precision, validate_args=validate_args)


class GaussianHMM(HiddenMarkovModel):
    """A hidden Markov model with linear-Gaussian dynamics and observations (a Kalman
    filter's model): ``z_t = z_{t-1} @ transition_matrix + noise``, ``x_t = z_t @
    observation_matrix + noise``. ``log_prob`` is exact and differentiable.

    :param initial_dist: ``MultivariateNormal`` (or ``Normal(...).to_event(1)``) of the
        initial hidden state, event shape ``(hidden_dim,)``.
    :param transition_matrix: shape ``batch_shape + (num_steps, hidden_dim,
        hidden_dim)`` (broadcastable; previous, next).
    :param transition_dist: the process noise, event shape ``(hidden_dim,)``, batch
        shape broadcastable to ``batch_shape + (num_steps,)``.
    :param observation_matrix: shape ``batch_shape + (num_steps, hidden_dim,
        obs_dim)`` (broadcastable).
    :param observation_dist: the observation noise, event shape ``(obs_dim,)``.
    :param duration: see :class:`HiddenMarkovModel`.

    Example::

        >>> import torch, ember.distributions as dist
        >>> hmm = dist.GaussianHMM(
        ...     dist.MultivariateNormal(torch.zeros(2), torch.eye(2)), 0.9 * torch.eye(2),
        ...     dist.Normal(torch.zeros(2), 0.3).to_event(1), torch.ones(2, 1),
        ...     dist.Normal(torch.zeros(1), 0.5).to_event(1), duration=6)
        >>> x = hmm.rsample()
        >>> x.shape, hmm.log_prob(x).shape, hmm.filter(x).event_shape
        (torch.Size([6, 1]), torch.Size([]), torch.Size([2]))
    """

    has_rsample = True
    arg_constraints = {}
    support = constraints.independent(constraints.real, 2)

    def __init__(
        self,
        initial_dist,
        transition_matrix: torch.Tensor,
        transition_dist,
        observation_matrix: torch.Tensor,
        observation_dist,
        validate_args=None,
        duration=None,
    ):
        noise_check = _requires_type(
            "GaussianHMM", _is_gaussian_noise, "a MultivariateNormal or a Normal(...).to_event(1)"
        )
        hidden_dim, obs_dim, batch_shape, time_shape = linear_model_shapes(
            "GaussianHMM",
            noise_check,
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            observation_dist,
        )
        super().__init__(duration, batch_shape, time_shape + (obs_dim,), validate_args)
        self.hidden_dim = hidden_dim
        self.obs_dim = obs_dim
        self._init = mvn_to_gaussian(initial_dist).expand(self.batch_shape)
        self._trans = matrix_and_mvn_to_gaussian(transition_matrix, transition_dist)
        self._obs = matrix_and_mvn_to_gaussian(observation_matrix, observation_dist)

    def expand(self, batch_shape, _instance=None):
        return _expand_factor_model(self, GaussianHMM, batch_shape, _instance)

    def _conditioned_chain(self, value: torch.Tensor) -> Gaussian:
        """Per-step Gaussians over ``(z_{t-1}, z_t)``: transition and observation of
        ``value``."""
        logp = self._trans + self._obs.condition(value).event_pad(left=self.hidden_dim)
        return logp.expand(logp.batch_shape)

    def _contract(self, value: torch.Tensor) -> Gaussian:
        chain = sequential_gaussian_tensordot(self._conditioned_chain(value))
        return gaussian_tensordot(self._init, chain, dims=self.hidden_dim)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self._contract(value).event_logsumexp()

    def filter(self, value: torch.Tensor) -> MultivariateNormal:
        """The posterior of the final hidden state given the observations ``value``, a
        ``MultivariateNormal`` (it can be the ``initial_dist`` of a continuation)."""
        if self._validate_args:
            self._validate_sample(value)
        return _gaussian_to_mvn(self._contract(value), self._validate_args)

    def _prior_chain(self, duration: int) -> Gaussian:
        # the observation factor integrated over x (its normalizer as a function of z)
        obs = self._obs.marginalize(right=self.obs_dim).event_pad(left=self.hidden_dim)
        trans = self._trans + obs
        return trans.expand(trans.batch_shape[:-1] + (duration,))

    def rsample(self, sample_shape=_EMPTY) -> torch.Tensor:
        T = self._require_duration("rsample")
        z = sequential_gaussian_filter_sample(self._init, self._prior_chain(T), sample_shape)
        z = z[..., 1:, :]  # the initial state emits nothing
        return self._obs.left_condition(z).rsample()

    def rsample_posterior(self, value: torch.Tensor, sample_shape=_EMPTY) -> torch.Tensor:
        """Draws of the hidden states ``z_1..z_T`` given the observations ``value``
        (reparameterized), shape ``sample_shape + batch_shape + (T, hidden_dim)``."""
        z = sequential_gaussian_filter_sample(
            self._init, self._conditioned_chain(value), sample_shape
        )
        return z[..., 1:, :]

    def prefix_condition(self, data: torch.Tensor) -> GaussianHMM:
        """The model of the steps after ``data``: given the first ``t`` observations
        (shape ``batch_shape + (t, obs_dim)``), a :class:`GaussianHMM` of the remaining
        ``duration - t`` steps, whose initial distribution is the filtered posterior of
        the hidden state after step ``t`` (e.g. to forecast)."""
        T = self._require_duration("prefix_condition")
        if data.dim() < 2 or data.size(-1) != self.obs_dim or not 0 < data.size(-2) < T:
            raise ValueError(
                f"GaussianHMM.prefix_condition: data must have shape (..., t, {self.obs_dim}) "
                f"with 0 < t < {T}, got {tuple(data.shape)}"
            )
        t = data.size(-2)

        def split(g):
            if g.batch_shape == () or g.batch_shape[-1] == 1:  # the same at every step
                return g, g
            return g[..., :t], g[..., t:]

        trans_before, trans_after = split(self._trans)
        obs_before, obs_after = split(self._obs)
        chain = trans_before + obs_before.condition(data).event_pad(left=self.hidden_dim)
        chain = sequential_gaussian_tensordot(chain.expand(chain.batch_shape))
        init = gaussian_tensordot(self._init, chain, dims=self.hidden_dim)
        init = init + (-init.event_logsumexp())
        new = fresh_instance(self, GaussianHMM)
        new.hidden_dim, new.obs_dim = self.hidden_dim, self.obs_dim
        new._init, new._trans, new._obs = init, trans_after, obs_after
        batch_shape = broadcast_shape(self.batch_shape, init.batch_shape)
        new._init = init.expand(batch_shape)
        HiddenMarkovModel.__init__(
            new, T - t, batch_shape, (T - t, self.obs_dim), validate_args=False
        )
        new._validate_args = self.__dict__.get("_validate_args")
        return new

    def conjugate_update(self, other):
        """Fuse a Gaussian likelihood of the observations into the model.

        :param other: ``MultivariateNormal(...).to_event(1)`` or
            ``Normal(...).to_event(2)`` over the whole sequence (event shape
            ``(num_steps, obs_dim)``), read as a likelihood of the observations.
        :return: ``(updated, log_normalizer)`` with ``self.log_prob(x) +
            other.log_prob(x) == updated.log_prob(x) + log_normalizer``.
        """
        duration = other.event_shape[0] if self.duration is None else self.duration
        if tuple(other.event_shape) != (duration, self.obs_dim):
            raise ValueError(
                f"GaussianHMM.conjugate_update: other must have event_shape "
                f"({duration}, {self.obs_dim}), got {tuple(other.event_shape)}"
            )
        per_step = other.to_event(-1)
        if isinstance(per_step, torch.distributions.Independent) and isinstance(
            per_step.base_dist, torch.distributions.Independent
        ):
            per_step = per_step.base_dist
        new = fresh_instance(self, GaussianHMM)
        new.hidden_dim, new.obs_dim = self.hidden_dim, self.obs_dim
        new._trans = self._trans
        new._obs = self._obs + mvn_to_gaussian(per_step).event_pad(left=self.hidden_dim)
        chain = new._trans + new._obs.marginalize(right=self.obs_dim).event_pad(
            left=self.hidden_dim
        )
        chain = sequential_gaussian_tensordot(chain.expand(chain.batch_shape))
        log_normalizer = gaussian_tensordot(
            self._init, chain, dims=self.hidden_dim
        ).event_logsumexp()
        new._init = self._init + (-log_normalizer)
        HiddenMarkovModel.__init__(
            new, duration, log_normalizer.shape, (duration, self.obs_dim), validate_args=False
        )
        new._validate_args = self.__dict__.get("_validate_args")
        return new, log_normalizer


class GammaGaussianHMM(HiddenMarkovModel):
    """A linear-Gaussian hidden Markov model whose noise precisions share one random
    scale ``s ~ scale_dist`` (a Gamma): given ``s`` every noise precision is
    multiplied by ``s``, so that with ``s`` integrated out the initial state, the
    hidden states and the observations are jointly multivariate Student t.
    ``log_prob`` integrates out the hidden states and ``s`` exactly.

    :param scale_dist: a ``Gamma`` (e.g. ``Gamma(df / 2, df / 2)``).
    :param initial_dist: ``MultivariateNormal`` of the initial state at unit scale.
    :param transition_matrix: shape ``... + (hidden_dim, hidden_dim)``.
    :param transition_dist: ``MultivariateNormal`` process noise at unit scale.
    :param observation_matrix: shape ``... + (hidden_dim, obs_dim)``.
    :param observation_dist: ``MultivariateNormal`` observation noise at unit scale.
    :param duration: see :class:`HiddenMarkovModel`.
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real, 2)

    def __init__(
        self,
        scale_dist,
        initial_dist,
        transition_matrix,
        transition_dist,
        observation_matrix,
        observation_dist,
        validate_args=None,
        duration=None,
    ):
        if not isinstance(scale_dist, torch.distributions.Gamma):
            raise TypeError(
                f"GammaGaussianHMM: scale_dist must be a Gamma, got {type(scale_dist).__name__}"
            )
        noise_check = _requires_type(
            "GammaGaussianHMM",
            lambda d: isinstance(d, torch.distributions.MultivariateNormal),
            "a MultivariateNormal",
        )
        hidden_dim, obs_dim, batch_shape, time_shape = linear_model_shapes(
            "GammaGaussianHMM",
            noise_check,
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            observation_dist,
            scale_dist.batch_shape + (1,),
        )
        super().__init__(duration, batch_shape, time_shape + (obs_dim,), validate_args)
        self.hidden_dim = hidden_dim
        self.obs_dim = obs_dim
        self._init = gamma_and_mvn_to_gamma_gaussian(scale_dist, initial_dist)
        self._trans = matrix_and_mvn_to_gamma_gaussian(transition_matrix, transition_dist)
        self._obs = matrix_and_mvn_to_gamma_gaussian(observation_matrix, observation_dist)

    def expand(self, batch_shape, _instance=None):
        return _expand_factor_model(self, GammaGaussianHMM, batch_shape, _instance)

    def _contract(self, value):
        chain = self._trans + self._obs.condition(value).event_pad(left=self.hidden_dim)
        chain = sequential_gamma_gaussian_tensordot(chain.expand(chain.batch_shape))
        return gamma_gaussian_tensordot(self._init, chain, dims=self.hidden_dim)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self._contract(value).event_logsumexp().logsumexp()

    def filter(self, value: torch.Tensor):
        """The posterior given the observations ``value``: ``(scale posterior, final
        state)``, a ``Gamma`` over ``s`` and the ``MultivariateNormal`` of the final
        hidden state at unit scale (its precision is multiplied by ``s``)."""
        if self._validate_args:
            self._validate_sample(value)
        g = self._contract(value)
        gamma = g.event_logsumexp()
        scale_post = Gamma(gamma.concentration, gamma.rate, validate_args=self._validate_args)
        return scale_post, _gaussian_to_mvn(g, self._validate_args)


class LinearHMM(HiddenMarkovModel):
    """A hidden Markov model with linear dynamics and observations and any noise
    distributions (e.g. ``StudentT`` or ``Stable`` coordinates), and observations
    possibly pushed through a transform (e.g. a ``LogNormal`` observation noise):

        ``z_t = z_{t-1} @ transition_matrix + transition noise``,
        ``x_t = transform(z_t @ observation_matrix + observation noise)``.

    It draws reparameterized samples; its density has no closed form in general,
    so ``log_prob`` is not implemented (fit it by reparameterization, e.g.
    ``LinearHMMReparam``, or with a likelihood-free loss such as ``EnergyDistance``).

    :param initial_dist: distribution of the initial state, event shape ``(hidden_dim,)``.
    :param transition_matrix: shape ``... + (hidden_dim, hidden_dim)``.
    :param transition_dist: the process noise, event shape ``(hidden_dim,)``.
    :param observation_matrix: shape ``... + (hidden_dim, obs_dim)``.
    :param observation_dist: the observation noise, event shape ``(obs_dim,)``; a
        ``TransformedDistribution`` contributes its base as the noise and its
        transforms as the observation transform.
    """

    arg_constraints = {}
    has_rsample = True

    def __init__(
        self,
        initial_dist,
        transition_matrix,
        transition_dist,
        observation_matrix,
        observation_dist,
        validate_args=None,
        duration=None,
    ):
        transforms = []
        base = observation_dist
        reinterpreted = 0
        if isinstance(base, torch.distributions.Independent) and isinstance(
            base.base_dist, torch.distributions.TransformedDistribution
        ):
            # e.g. LogNormal(...).to_event(1): noise Normal(...).to_event(1), then exp
            reinterpreted = base.reinterpreted_batch_ndims
            base = base.base_dist
        while isinstance(base, torch.distributions.TransformedDistribution):
            transforms = list(base.transforms) + transforms
            base = base.base_dist
        if reinterpreted:
            base = base.to_event(reinterpreted)
        hidden_dim, obs_dim, batch_shape, time_shape = linear_model_shapes(
            "LinearHMM",
            _any_noise,
            initial_dist,
            transition_matrix,
            transition_dist,
            observation_matrix,
            base,
        )
        super().__init__(duration, batch_shape, time_shape + (obs_dim,), validate_args)
        self.hidden_dim = hidden_dim
        self.obs_dim = obs_dim
        self.initial_dist = initial_dist
        self.transition_matrix = transition_matrix
        self.transition_dist = transition_dist
        self.observation_matrix = observation_matrix
        self.observation_dist = observation_dist
        self.obs_base_dist = base
        self.transforms = transforms

    @constraints.dependent_property(event_dim=2)
    def support(self):
        support = self.transforms[-1].codomain if self.transforms else constraints.real
        return constraints.independent(support, 2 - support.event_dim)

    def expand(self, batch_shape, _instance=None):
        new = fresh_instance(self, LinearHMM, _instance)
        batch_shape = torch.Size(broadcast_shape(self.batch_shape, batch_shape))
        for name in (
            "hidden_dim",
            "obs_dim",
            "transition_matrix",
            "transition_dist",
            "observation_matrix",
            "observation_dist",
            "obs_base_dist",
            "transforms",
        ):
            setattr(new, name, getattr(self, name))
        new.initial_dist = self.initial_dist.expand(batch_shape)
        HiddenMarkovModel.__init__(
            new, self.duration, batch_shape, self.event_shape, validate_args=False
        )
        new._validate_args = self.__dict__.get("_validate_args")
        return new

    def log_prob(self, value):
        raise NotImplementedError(
            "LinearHMM has no closed-form density; reparameterize it (LinearHMMReparam), "
            "use GaussianHMM for Gaussian noise, or fit with a likelihood-free loss"
        )

    def rsample(self, sample_shape=_EMPTY) -> torch.Tensor:
        T = self._require_duration("rsample")
        sample_shape = torch.Size(sample_shape)
        shape = sample_shape + self.batch_shape
        z = self.initial_dist.expand(self.batch_shape).rsample(sample_shape)
        trans_m = self.transition_matrix.expand(
            self.batch_shape + (T, self.hidden_dim, self.hidden_dim)
        )
        obs_m = self.observation_matrix.expand(
            self.batch_shape + (T, self.hidden_dim, self.obs_dim)
        )
        trans_noise = self.transition_dist.expand(self.batch_shape + (T,)).rsample(sample_shape)
        obs_noise = self.obs_base_dist.expand(self.batch_shape + (T,)).rsample(sample_shape)
        ys = []
        for t in range(T):
            z = (z.unsqueeze(-2) @ trans_m[..., t, :, :]).squeeze(-2) + trans_noise[..., t, :]
            ys.append((z.unsqueeze(-2) @ obs_m[..., t, :, :]).squeeze(-2) + obs_noise[..., t, :])
        y = torch.stack(ys, -2).expand(shape + (T, self.obs_dim))
        for transform in self.transforms:
            y = transform(y)
        return y


class IndependentHMM(TorchDistribution):
    """Independent copies of a hidden Markov model along its observation dim: a base
    HMM with ``event_shape (T, 1)`` and batch shape ``batch_shape + (obs_dim,)``
    becomes one with event shape ``(T, obs_dim)``.

    :param base_dist: the HMM whose rightmost batch dim becomes the observation dim.
    """

    arg_constraints = {}

    def __init__(self, base_dist):
        if not isinstance(base_dist, HiddenMarkovModel):
            raise TypeError(
                f"IndependentHMM: base_dist must be a hidden Markov model, got "
                f"{type(base_dist).__name__}"
            )
        if base_dist.event_shape[1:] != (1,) or len(base_dist.batch_shape) < 1:
            raise ValueError(
                "IndependentHMM: base_dist must have event_shape (T, 1) and a batch dim for "
                f"the observations, got event_shape {tuple(base_dist.event_shape)} and "
                f"batch_shape {tuple(base_dist.batch_shape)}"
            )
        self.base_dist = base_dist
        batch_shape = base_dist.batch_shape[:-1]
        event_shape = base_dist.event_shape[:1] + base_dist.batch_shape[-1:]
        super().__init__(batch_shape, event_shape, validate_args=False)

    @constraints.dependent_property(event_dim=2)
    def support(self):
        return self.base_dist.support

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    @property
    def duration(self):
        return self.base_dist.duration

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        base = self.base_dist.expand(batch_shape + self.base_dist.batch_shape[-1:])
        return IndependentHMM(base)

    def rsample(self, sample_shape=_EMPTY) -> torch.Tensor:
        return self.base_dist.rsample(sample_shape).squeeze(-1).transpose(-1, -2)

    def sample(self, sample_shape=_EMPTY) -> torch.Tensor:
        return self.base_dist.sample(sample_shape).squeeze(-1).transpose(-1, -2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        base_value = value.transpose(-1, -2).unsqueeze(-1)
        return self.base_dist.log_prob(base_value).sum(-1)


class GaussianMRF(TorchDistribution):
    """A Markov random field over a hidden and an observed sequence with Gaussian
    factors: ``initial_dist(z_0)``, ``transition_dist(z_{t-1}, z_t)`` and
    ``observation_dist(z_t, x_t)`` (joint densities over the pairs, multiplied).
    ``log_prob(x)`` is the log-density of the observations in the normalized field:
    ``log p(x, z) - log p(z)`` with ``z`` integrated out of each.

    :param initial_dist: ``MultivariateNormal`` over ``hidden_dim`` variables.
    :param transition_dist: ``MultivariateNormal`` over ``2 * hidden_dim`` (previous,
        next), batch shape broadcastable to ``batch_shape + (num_steps,)``.
    :param observation_dist: ``MultivariateNormal`` over ``hidden_dim + obs_dim``
        (hidden, observed).
    """

    arg_constraints = {}

    def __init__(self, initial_dist, transition_dist, observation_dist, validate_args=None):
        for name, d in (
            ("initial_dist", initial_dist),
            ("transition_dist", transition_dist),
            ("observation_dist", observation_dist),
        ):
            if not isinstance(d, torch.distributions.MultivariateNormal):
                raise TypeError(
                    f"GaussianMRF: {name} must be a MultivariateNormal, got {type(d).__name__}"
                )
        hidden_dim = initial_dist.event_shape[0]
        if transition_dist.event_shape[0] != 2 * hidden_dim:
            raise ValueError(
                f"GaussianMRF: transition_dist must be over {2 * hidden_dim} variables (previous "
                f"and next state), got event_shape {tuple(transition_dist.event_shape)}"
            )
        obs_dim = observation_dist.event_shape[0] - hidden_dim
        if obs_dim < 1:
            raise ValueError(
                f"GaussianMRF: observation_dist must be over the {hidden_dim} hidden and at "
                f"least one observed variable, got event_shape "
                f"{tuple(observation_dist.event_shape)}"
            )
        shape = broadcast_shape(
            initial_dist.batch_shape + (1,),
            transition_dist.batch_shape,
            observation_dist.batch_shape,
        )
        batch_shape, time_shape = shape[:-1], shape[-1:]
        super().__init__(batch_shape, time_shape + (obs_dim,), validate_args=validate_args)
        self.hidden_dim = hidden_dim
        self.obs_dim = obs_dim
        self._init = mvn_to_gaussian(initial_dist)
        self._trans = mvn_to_gaussian(transition_dist)
        self._obs = mvn_to_gaussian(observation_dist)

    support = constraints.independent(constraints.real, 2)

    def expand(self, batch_shape, _instance=None):
        new = fresh_instance(self, GaussianMRF, _instance)
        batch_shape = torch.Size(broadcast_shape(self.batch_shape, batch_shape))
        new.hidden_dim, new.obs_dim = self.hidden_dim, self.obs_dim
        new._init = self._init.expand(batch_shape)
        new._trans, new._obs = self._trans, self._obs
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self.__dict__.get("_validate_args")
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        h = self.hidden_dim
        joint = self._trans + self._obs.condition(value).event_pad(left=h)
        hidden = self._trans + self._obs.marginalize(right=self.obs_dim).event_pad(left=h)
        steps = (value.size(-2),)
        totals = []
        for chain in (joint, hidden):
            chain = chain.expand(torch.broadcast_shapes(chain.batch_shape, steps))
            chain = sequential_gaussian_tensordot(chain)
            totals.append(gaussian_tensordot(self._init, chain, dims=h).event_logsumexp())
        return totals[0] - totals[1]
