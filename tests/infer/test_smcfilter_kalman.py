"""SMCFilter against the exact Kalman filter, systematic resampling, and state checks."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import SMCFilter
from ember.infer.smcfilter import SMCFailed, SMCState, systematic_sample

# Linear-Gaussian state space model:
#   z_0 ~ N(0, S0^2),  z_t = A z_{t-1} + N(0, Q^2),  y_t = z_t + N(0, R^2)
A, S0, Q, R = 0.9, 2.0, 0.7, 0.5


def kalman_filter(ys):
    """Exact filtered means and variances of z_t given y_1..t (t = 1..T)."""
    mean, var = 0.0, S0**2
    out = []
    for y in ys:
        mean, var = A * mean, A * A * var + Q * Q  # predict
        gain = var / (var + R * R)  # update
        mean, var = mean + gain * (y - mean), (1 - gain) * var
        out.append((mean, var))
    return out


class LGSSM:
    """The model; ``batch`` independent series run side by side in a plate."""

    def __init__(self, batch=None):
        self.batch = batch

    def _plate(self):
        if self.batch is None:
            return _null()
        return ember.plate("series", self.batch, dim=-1)

    def init(self, state):
        self.t = 0
        with self._plate():
            state["z"] = ember.sample("z_0", dist.Normal(0.0, S0))

    def step(self, state, y):
        self.t += 1
        with self._plate():
            state["z"] = ember.sample(f"z_{self.t}", dist.Normal(A * state["z"], Q))
            ember.sample(f"y_{self.t}", dist.Normal(state["z"], R), obs=y)


class Proposal:
    """A proposal wider than the transition (so the weights are not trivial)."""

    def __init__(self, batch=None):
        self.batch = batch

    def _plate(self):
        if self.batch is None:
            return _null()
        return ember.plate("series", self.batch, dim=-1)

    def init(self, state):
        self.t = 0
        with self._plate():
            ember.sample("z_0", dist.Normal(0.0, S0 * 1.5))

    def step(self, state, y):
        self.t += 1
        with self._plate():
            # centred between the prediction and the observation
            ember.sample(f"z_{self.t}", dist.Normal(0.5 * (A * state["z"] + y), 1.0))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


def simulate(num_steps, batch=None):
    shape = () if batch is None else (batch,)
    z = torch.randn(shape) * S0
    ys = []
    for _ in range(num_steps):
        z = A * z + Q * torch.randn(shape)
        ys.append(z + R * torch.randn(shape))
    return ys


def test_tracks_kalman_filter():
    ember.set_rng_seed(0)
    ys = simulate(15)
    exact = kalman_filter([float(y) for y in ys])
    n = 20000
    smc = SMCFilter(LGSSM(), Proposal(), num_particles=n, max_plate_nesting=0)
    smc.init()
    for y, (mean, var) in zip(ys, exact):
        smc.step(y)
        marginal = smc.get_empirical()["z"]
        w = smc.state.log_weights.softmax(-1)
        ess = float(1.0 / (w * w).sum())
        # after resampling the particles are correlated: be conservative (ESS / 4)
        ess_eff = ess / 4
        assert abs(marginal.mean.item() - mean) < 4 * math.sqrt(var / ess_eff)
        assert abs(marginal.variance.item() / var - 1) < 4 * math.sqrt(2 / ess_eff)


def test_tracks_kalman_filter_inside_plate():
    ember.set_rng_seed(1)
    batch = 2
    ys = simulate(8, batch)
    n = 20000
    smc = SMCFilter(LGSSM(batch), Proposal(batch), num_particles=n, max_plate_nesting=1)
    smc.init()
    assert smc.state["z"].shape == (n, batch)
    for t, y in enumerate(ys):
        smc.step(y)
        marginal = smc.get_empirical()["z"]
        w = smc.state.log_weights.softmax(-1)
        ess_eff = float(1.0 / (w * w).sum()) / 4
        for b in range(batch):
            mean, var = kalman_filter([float(y_[b]) for y_ in ys[: t + 1]])[-1]
            assert abs(marginal.mean[b].item() - mean) < 4 * math.sqrt(var / ess_eff)
            assert abs(marginal.variance[b].item() / var - 1) < 4 * math.sqrt(2 / ess_eff)


def test_weights_are_exact_importance_ratios():
    """Without resampling, one step's log weights equal log p - log q computed by hand."""
    ember.set_rng_seed(2)
    n = 50
    smc = SMCFilter(LGSSM(), Proposal(), num_particles=n, max_plate_nesting=0, ess_threshold=1e-6)
    smc.init()
    z0 = smc.state["z"].clone()
    w0 = (dist.Normal(0.0, S0).log_prob(z0) - dist.Normal(0.0, 1.5 * S0).log_prob(z0)).double()
    expected0 = w0 - w0.logsumexp(0)
    assert torch.allclose(smc.state.log_weights.double(), expected0, atol=1e-4)
    y = torch.tensor(0.3)
    smc.step(y)
    z1 = smc.state["z"]
    w1 = (
        w0
        + dist.Normal(A * z0, Q).log_prob(z1)
        + dist.Normal(z1, R).log_prob(y)
        - dist.Normal(0.5 * (A * z0 + y), 1.0).log_prob(z1)
    ).double()
    expected1 = w1 - w1.logsumexp(0)
    assert torch.allclose(smc.state.log_weights.double(), expected1, atol=1e-4)


def test_resamples_below_threshold():
    ember.set_rng_seed(3)
    smc = SMCFilter(LGSSM(), Proposal(), num_particles=100, max_plate_nesting=0, ess_threshold=1.0)
    smc.init()
    smc.step(torch.tensor(1.0))
    # ess < 1.0 * num_particles always holds for unequal weights: weights reset to equal
    assert torch.equal(smc.state.log_weights, torch.zeros(100))


@pytest.mark.parametrize("size", [1, 2, 5, 17])
def test_systematic_sample_counts(size):
    """Each index is drawn floor(n p) or ceil(n p) times, and size * p on average."""
    ember.set_rng_seed(size)
    probs = torch.randn(size).exp()
    probs /= probs.sum()
    rows = 20000
    index = systematic_sample(probs.expand(rows, size))
    assert index.shape == (rows, size)
    assert bool((index[:, 1:] >= index[:, :-1]).all())  # sorted
    counts = torch.zeros(rows, size).scatter_add_(-1, index, torch.ones(rows, size))
    expected = probs * size
    assert bool((counts >= expected.floor() - 1e-6).all())
    assert bool((counts <= expected.ceil() + 1e-6).all())
    # the count is Bernoulli(frac) above floor: standard error sqrt(frac (1 - frac) / rows)
    se = (expected.frac() * (1 - expected.frac()) / rows).sqrt()
    assert bool(((counts.mean(0) - expected).abs() <= 5 * se + 1e-6).all())


def test_state_checks():
    state = SMCState(3)
    with pytest.raises(ValueError, match="leading dim of size 3"):
        state["x"] = torch.zeros(4)
    with pytest.raises(TypeError, match="only tensors"):
        state["x"] = 1.0
    with state.read_only():
        with pytest.raises(RuntimeError, match="guide cannot write"):
            state["x"] = torch.zeros(3)
    state["x"] = torch.arange(3.0)
    state.resample(torch.tensor([2, 2, 0]))
    assert torch.equal(state["x"], torch.tensor([2.0, 2.0, 0.0]))


class WritingGuide(Proposal):
    def init(self, state):
        state["z"] = ember.sample("z_0", dist.Normal(0.0, 1.0))


class Impossible:
    def init(self, state):
        state["z"] = ember.sample("z_0", dist.Normal(0.0, 1.0))
        ember.factor("nowhere", torch.full((10,), -math.inf))

    def step(self, state):
        pass


class NormalProposal:
    def init(self, state):
        ember.sample("z_0", dist.Normal(0.0, 1.0))

    def step(self, state):
        pass


def test_errors():
    with pytest.raises(TypeError, match="init"):
        SMCFilter(object(), Proposal(), 10, 0)
    with pytest.raises(ValueError, match="ess_threshold"):
        SMCFilter(LGSSM(), Proposal(), 10, 0, ess_threshold=0.0)
    with pytest.raises(ValueError, match="max_plate_nesting"):
        SMCFilter(LGSSM(), Proposal(), 10, -1)
    smc = SMCFilter(LGSSM(), Proposal(), 10, 0)
    with pytest.raises(RuntimeError, match="init"):
        smc.step(torch.tensor(0.0))
    with pytest.raises(RuntimeError, match="guide cannot write"):
        SMCFilter(LGSSM(), WritingGuide(), 10, 0).init()
    with pytest.raises(SMCFailed, match="nowhere"):
        SMCFilter(Impossible(), NormalProposal(), 10, 0).init()
