"""TraceGraph_ELBO: unbiased, Rao-Blackwellized score-function gradients, baselines."""

import itertools
import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import Trace_ELBO, TraceGraph_ELBO

DATA = torch.tensor([1.5, -0.3, 0.8, 2.1, 0.0, 1.1])
PRIOR = 0.3


def plate_model():
    with ember.plate("data", len(DATA)):
        z = ember.sample("z", dist.Bernoulli(PRIOR))
        ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=DATA)


def make_plate_guide(p, baseline=None):
    def guide():
        with ember.plate("data", len(DATA)):
            infer = {} if baseline is None else {"baseline": baseline}
            ember.sample("z", dist.Bernoulli(p), infer=infer)

    return guide


def exact_plate_elbo(p):
    total = 0.0
    for z in (0.0, 1.0):
        zt = torch.full_like(DATA, z)
        q = dist.Bernoulli(p).log_prob(zt)
        joint = dist.Bernoulli(PRIOR).log_prob(zt) + dist.Normal(2.0 * zt, 1.0).log_prob(DATA)
        total = total + (q.exp() * (joint - q)).sum()
    return total


def _grad_samples(elbo, guide_fn, p, runs, model=plate_model):
    grads = []
    for _ in range(runs):
        p.grad = None
        elbo.loss_and_grads(model, guide_fn(p))
        grads.append(p.grad.clone())
    return torch.stack(grads)


def _exact_grad(exact_fn, p):
    p.grad = None
    (-exact_fn(p)).backward()
    g = p.grad.clone()
    p.grad = None
    return g


def test_plate_gradient_unbiased():
    ember.set_rng_seed(0)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    expected = _exact_grad(exact_plate_elbo, p)
    elbo = TraceGraph_ELBO(num_particles=200, vectorize_particles=True, max_plate_nesting=1)
    grads = _grad_samples(elbo, make_plate_guide, p, 30)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)


def sequential_plate_model():
    for i in ember.plate("data", len(DATA)):
        z = ember.sample(f"z_{i}", dist.Bernoulli(PRIOR))
        ember.sample(f"x_{i}", dist.Normal(2.0 * z, 1.0), obs=DATA[i])


def make_sequential_plate_guide(p):
    def guide():
        for i in ember.plate("data", len(DATA)):
            ember.sample(f"z_{i}", dist.Bernoulli(p[i]))

    return guide


def test_lower_variance_than_trace_elbo():
    # A sequential plate: Trace_ELBO weights each score term by the costs of every
    # iteration (its plate-aware weighting covers vectorized plates only), while
    # TraceGraph_ELBO keeps only the iteration's own costs (the others are independent).
    ember.set_rng_seed(1)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    kw = dict(num_particles=1, max_plate_nesting=1)
    runs = (make_sequential_plate_guide, p, 150)
    var_graph = _grad_samples(TraceGraph_ELBO(**kw), *runs, sequential_plate_model).var(0).sum()
    var_trace = _grad_samples(Trace_ELBO(**kw), *runs, sequential_plate_model).var(0).sum()
    # Rao-Blackwellization drops the other 5 data points' costs from each site's term
    print(f"gradient variance ratio TraceGraph_ELBO / Trace_ELBO: {var_graph / var_trace:.3f}")
    assert var_graph < 0.5 * var_trace, (var_graph, var_trace)


class _PerSiteBaseline(torch.nn.Module):
    """A learnable baseline per data point: weight * input."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((6,), -2.0))

    def forward(self, x):
        return self.weight * x


@pytest.mark.parametrize(
    "baseline",
    [
        {"use_decaying_avg_baseline": True, "baseline_beta": 0.9},
        {"baseline_value": torch.full((6,), -2.0)},
        {"nn_baseline": _PerSiteBaseline(), "nn_baseline_input": torch.ones(6)},
    ],
    ids=["decaying_avg", "value", "nn"],
)
def test_baselines_keep_gradient_unbiased(baseline):
    ember.set_rng_seed(2)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    expected = _exact_grad(exact_plate_elbo, p)
    elbo = TraceGraph_ELBO(num_particles=50, vectorize_particles=True, max_plate_nesting=1)
    grads = _grad_samples(elbo, lambda q: make_plate_guide(q, baseline), p, 40)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)


def test_decaying_average_baseline_reduces_variance():
    ember.set_rng_seed(3)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    elbo = TraceGraph_ELBO(max_plate_nesting=1)
    plain = _grad_samples(elbo, make_plate_guide, p, 200).var(0).sum()
    avg = {"use_decaying_avg_baseline": True, "baseline_beta": 0.95}
    elbo = TraceGraph_ELBO(max_plate_nesting=1)
    with_baseline = _grad_samples(elbo, lambda q: make_plate_guide(q, avg), p, 200)
    # measured: about 0.1 of the variance without a baseline
    assert with_baseline[50:].var(0).sum() < 0.5 * plain


def test_nn_baseline_is_trained():
    ember.clear_param_store()
    ember.set_rng_seed(4)
    net = torch.nn.Linear(1, 1)
    before = net.bias.detach().clone()
    p = torch.tensor(0.5, requires_grad=True)

    def model():
        z = ember.sample("z", dist.Bernoulli(0.3))
        ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))

    def guide():
        ember.module("baseline_net", net)
        baseline = {"nn_baseline": net, "nn_baseline_input": torch.ones(1)}
        ember.sample("z", dist.Bernoulli(p), infer={"baseline": baseline})

    TraceGraph_ELBO().loss_and_grads(model, guide)
    assert net.bias.grad is not None and net.bias.grad.abs().item() > 0
    assert torch.equal(net.bias.detach(), before)
    assert p.grad is not None


def test_decaying_average_and_network_baselines_combine_without_bias():
    # the baselines add up; the network's input depends on p but the baseline's
    # least-squares loss must not reach p (the input is detached): unbiased for p
    ember.set_rng_seed(3)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    expected = _exact_grad(exact_plate_elbo, p)
    net = _PerSiteBaseline()

    def make_guide(q):
        baseline = {"use_decaying_avg_baseline": True, "nn_baseline": net}
        return make_plate_guide(q, dict(baseline, nn_baseline_input=q * 1.0))

    elbo = TraceGraph_ELBO(num_particles=50, vectorize_particles=True, max_plate_nesting=1)
    grads = _grad_samples(elbo, make_guide, p, 40)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)
    assert net.weight.grad is not None  # the network is fitted


def test_bad_baseline_options():
    p = torch.tensor(0.5)

    def model():
        ember.sample("z", dist.Bernoulli(0.3))

    def guide(opts):
        return lambda: ember.sample("z", dist.Bernoulli(p), infer={"baseline": opts})

    with pytest.raises(ValueError, match="unknown baseline options"):
        TraceGraph_ELBO().loss_and_grads(model, guide({"use_avg": True}))
    with pytest.raises(ValueError, match="nn_baseline_input"):
        TraceGraph_ELBO().loss_and_grads(model, guide({"nn_baseline": torch.nn.Linear(1, 1)}))
    both = {"nn_baseline": torch.nn.Linear(1, 1), "baseline_value": torch.zeros(())}
    with pytest.raises(ValueError, match="not both"):
        TraceGraph_ELBO().loss_and_grads(model, guide(dict(both, nn_baseline_input=torch.ones(1))))


# A chain of dependent discrete sites, with a sequential plate: the downstream
# structure matters, and the exact ELBO is a sum over all 2^4 assignments.
def chain_model():
    a = ember.sample("a", dist.Bernoulli(0.4))
    for i in ember.plate("seq", 2):
        b = ember.sample(f"b_{i}", dist.Bernoulli(0.2 + 0.6 * a))
        ember.sample(f"x_{i}", dist.Normal(b + a, 1.0), obs=torch.tensor(0.7 * (i + 1)))
    c = ember.sample("c", dist.Bernoulli(0.5))
    ember.sample("y", dist.Normal(c - a, 1.0), obs=torch.tensor(0.2))


def make_chain_guide(p):
    def guide():
        a = ember.sample("a", dist.Bernoulli(p[0]))
        for i in ember.plate("seq", 2):
            ember.sample(f"b_{i}", dist.Bernoulli(p[1 + i] * (0.5 + 0.5 * a)))
        ember.sample("c", dist.Bernoulli(p[3]))

    return guide


def exact_chain_elbo(p):
    total = 0.0
    for a, b0, b1, c in itertools.product((0.0, 1.0), repeat=4):
        a_, b0_, b1_, c_ = (torch.tensor(v) for v in (a, b0, b1, c))
        log_q = (
            dist.Bernoulli(p[0]).log_prob(a_)
            + dist.Bernoulli(p[1] * (0.5 + 0.5 * a_)).log_prob(b0_)
            + dist.Bernoulli(p[2] * (0.5 + 0.5 * a_)).log_prob(b1_)
            + dist.Bernoulli(p[3]).log_prob(c_)
        )
        log_p = (
            dist.Bernoulli(torch.tensor(0.4)).log_prob(a_)
            + dist.Bernoulli(0.2 + 0.6 * a_).log_prob(b0_)
            + dist.Normal(b0_ + a_, 1.0).log_prob(torch.tensor(0.7))
            + dist.Bernoulli(0.2 + 0.6 * a_).log_prob(b1_)
            + dist.Normal(b1_ + a_, 1.0).log_prob(torch.tensor(1.4))
            + dist.Bernoulli(torch.tensor(0.5)).log_prob(c_)
            + dist.Normal(c_ - a_, 1.0).log_prob(torch.tensor(0.2))
        )
        total = total + log_q.exp() * (log_p - log_q)
    return total


def test_dependent_sites_and_sequential_plate_gradient_unbiased():
    ember.set_rng_seed(5)
    p = torch.tensor([0.6, 0.7, 0.5, 0.3], requires_grad=True)
    expected = _exact_grad(exact_chain_elbo, p)
    elbo = TraceGraph_ELBO(num_particles=100, vectorize_particles=True, max_plate_nesting=0)
    grads = _grad_samples(elbo, make_chain_guide, p, 40, model=chain_model)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)


def test_loss_value_matches_trace_elbo_in_expectation():
    ember.set_rng_seed(6)
    p = torch.tensor([0.6, 0.7, 0.5, 0.3])
    elbo = TraceGraph_ELBO(num_particles=400, vectorize_particles=True, max_plate_nesting=0)
    est = torch.tensor([elbo.loss(chain_model, make_chain_guide(p)) for _ in range(10)])
    mean, se = est.mean(), est.std() / math.sqrt(len(est))
    assert abs(mean + exact_chain_elbo(p)) < 4 * se + 1e-6


# ------------------------------------------------ one sample, checked exactly
@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO])
def test_single_sample_score_terms_are_exact(elbo_cls):
    # One particle: the gradient for p_i is -d log q(z_i)/d p_i times the cost
    # the estimator assigns to z_i: only data point i's terms, for both (inside a
    # vectorized plate the other elements' costs are independent of z_i).
    ember.set_rng_seed(7)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5], requires_grad=True)
    drawn = {}

    def guide():
        with ember.plate("data", len(DATA)):
            drawn["z"] = ember.sample("z", dist.Bernoulli(p))

    for _ in range(3):
        p.grad = None
        elbo_cls(max_plate_nesting=1).loss_and_grads(plate_model, guide)
        z = drawn["z"].detach()
        pd = p.detach()
        log_q = dist.Bernoulli(pd).log_prob(z)
        local = dist.Bernoulli(PRIOR).log_prob(z) + dist.Normal(2.0 * z, 1.0).log_prob(DATA) - log_q
        cost = local
        dlogq = z / pd - (1.0 - z) / (1.0 - pd)
        torch.testing.assert_close(p.grad, -dlogq * cost, rtol=1e-5, atol=1e-5)


# -------------------------------- discrete site upstream of a reparameterized one
X_MIX = 0.8


def mixed_model():
    a = ember.sample("a", dist.Bernoulli(0.4))
    z = ember.sample("z", dist.Normal(a, 1.0))
    ember.sample("x", dist.Normal(z, 1.0), obs=torch.tensor(X_MIX))


def make_mixed_guide(theta):
    p, m, k, s = theta

    def guide():
        a = ember.sample("a", dist.Bernoulli(p))
        ember.sample("z", dist.Normal(m + k * a, s))

    return guide


def exact_mixed_elbo(theta):
    p, m, k, s = theta
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    total = 0.0
    for a in (0.0, 1.0):
        at = torch.tensor(a)
        log_qa = dist.Bernoulli(p).log_prob(at)
        mu = m + k * a
        # E over z ~ N(mu, s) of log N(z; a, 1) + log N(x; z, 1), plus the entropy of q(z | a)
        inner = (
            -2 * half_log_2pi
            - 0.5 * ((mu - a) ** 2 + s**2)
            - 0.5 * ((X_MIX - mu) ** 2 + s**2)
            + 0.5 * torch.log(2 * math.pi * math.e * s**2)
        )
        total = total + log_qa.exp() * (dist.Bernoulli(0.4).log_prob(at) - log_qa + inner)
    return total


@pytest.mark.parametrize("elbo_cls", [Trace_ELBO, TraceGraph_ELBO])
def test_mixed_discrete_and_reparameterized_gradient_unbiased(elbo_cls):
    ember.set_rng_seed(8)
    theta = torch.tensor([0.6, 0.1, 0.5, 0.8], requires_grad=True)
    expected = _exact_grad(exact_mixed_elbo, theta)
    elbo = elbo_cls(num_particles=200, vectorize_particles=True, max_plate_nesting=0)
    grads = _grad_samples(elbo, make_mixed_guide, theta, 30, model=mixed_model)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)


def test_nn_baseline_learns_the_mean_downstream_cost():
    # With SGD at rate 1/(2t) on the squared error the baseline after T steps
    # is exactly the mean of the T sampled costs, so it must lie within a few
    # standard errors of E_q[cost] (here the ELBO, as z is the only latent).
    from ember.infer import SVI
    from ember.optim import LambdaLR

    ember.clear_param_store()
    ember.set_rng_seed(9)
    p = torch.tensor(0.35)
    net = torch.nn.Linear(1, 1)

    def model():
        z = ember.sample("z", dist.Bernoulli(0.3))
        ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(1.5))

    def guide():
        ember.module("baseline_net", net)
        baseline = {"nn_baseline": net, "nn_baseline_input": torch.zeros(1)}
        ember.sample("z", dist.Bernoulli(p), infer={"baseline": baseline})

    optim = LambdaLR(
        {
            "optimizer": torch.optim.SGD,
            "optim_args": {"lr": 0.5},
            "lr_lambda": lambda t: 1 / (t + 1),
        }
    )
    svi = SVI(model, guide, optim, TraceGraph_ELBO())
    steps = 200
    for _ in range(steps):
        svi.step()
        optim.step()
    costs = []
    for z in (0.0, 1.0):
        zt = torch.tensor(z)
        log_q = dist.Bernoulli(p).log_prob(zt)
        joint = dist.Bernoulli(0.3).log_prob(zt) + dist.Normal(2.0 * zt, 1.0).log_prob(
            torch.tensor(1.5)
        )
        costs.append((log_q.exp(), joint - log_q))
    mean = sum(w * c for w, c in costs)
    sd = math.sqrt(sum(w * (c - mean) ** 2 for w, c in costs))
    assert net.bias.item() == pytest.approx(mean.item(), abs=4 * sd / math.sqrt(steps))
    ember.clear_param_store()


def test_loss_alone_leaves_decaying_average_untouched():
    ember.set_rng_seed(10)
    p = torch.tensor([0.2, 0.5, 0.6, 0.8, 0.4, 0.5])
    avg = {"use_decaying_avg_baseline": True}
    elbo = TraceGraph_ELBO(max_plate_nesting=1)
    assert isinstance(elbo.loss(plate_model, make_plate_guide(p, avg)), float)
    assert elbo._avg_baselines == {}
    p.requires_grad_()
    elbo.loss_and_grads(plate_model, make_plate_guide(p, avg))
    assert set(elbo._avg_baselines) == {"z"}


# Local discrete sites feeding a global observation: each local site's cost
# must keep the whole global term (it depends on every element of the plate).
Y_SUM = torch.tensor(1.3)


def local_to_global_model():
    with ember.plate("items", 3):
        z = ember.sample("z", dist.Bernoulli(0.4))
        ember.sample("w", dist.Normal(z, 1.0), obs=torch.tensor([0.2, 1.1, 0.7]))
    ember.sample("y", dist.Normal(z.sum(-1, keepdim=True), 0.7), obs=Y_SUM)


def make_local_guide(p):
    def guide():
        with ember.plate("items", 3):
            ember.sample("z", dist.Bernoulli(p))

    return guide


def exact_local_to_global_elbo(p):
    w_obs = torch.tensor([0.2, 1.1, 0.7])
    total = 0.0
    for zs in itertools.product((0.0, 1.0), repeat=3):
        z = torch.tensor(zs)
        log_q = dist.Bernoulli(p).log_prob(z).sum()
        log_p = (
            dist.Bernoulli(0.4).log_prob(z).sum()
            + dist.Normal(z, 1.0).log_prob(w_obs).sum()
            + dist.Normal(z.sum(), 0.7).log_prob(Y_SUM)
        )
        total = total + log_q.exp() * (log_p - log_q)
    return total


def test_local_sites_keep_downstream_global_cost():
    ember.set_rng_seed(11)
    p = torch.tensor([0.3, 0.6, 0.5], requires_grad=True)
    expected = _exact_grad(exact_local_to_global_elbo, p)
    elbo = TraceGraph_ELBO(num_particles=200, vectorize_particles=True, max_plate_nesting=1)
    grads = _grad_samples(elbo, make_local_guide, p, 30, model=local_to_global_model)
    mean, se = grads.mean(0), grads.std(0) / math.sqrt(grads.shape[0])
    assert ((mean - expected).abs() < 4 * se + 1e-6).all(), (mean, expected, se)
