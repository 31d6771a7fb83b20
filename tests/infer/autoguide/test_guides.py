"""Automatic guides: structure, exact densities, plates and subsampling, composition,
medians and quantiles, errors, serialization."""

import io
import math
import pickle
import warnings

import pytest
import scipy.stats
import torch
from torch import nn

import ember
import ember.distributions as dist
from ember import poutine
from ember.distributions import constraints
from ember.infer import (
    SVI,
    Predictive,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceMeanField_ELBO,
    config_enumerate,
)
from ember.infer.autoguide import (
    AutoCallable,
    AutoDelta,
    AutoDiagonalNormal,
    AutoDiscreteParallel,
    AutoGuideList,
    AutoIAFNormal,
    AutoLaplaceApproximation,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
    init_to_value,
)
from ember.nn import PyroModule, PyroSample
from ember.optim import Adam, ClippedAdam

CONTINUOUS = [
    AutoNormal,
    AutoDiagonalNormal,
    AutoMultivariateNormal,
    AutoLowRankMultivariateNormal,
    AutoIAFNormal,
]
ALL = [AutoDelta, AutoLaplaceApproximation] + CONTINUOUS


@pytest.fixture(autouse=True)
def fresh_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


def model_with_supports():
    ember.sample("x", dist.Normal(0.0, 1.0))
    ember.sample("s", dist.LogNormal(0.0, 1.0))
    ember.sample("p", dist.Beta(2.0, 3.0).expand([2]).to_event(1))
    ember.sample("w", dist.Dirichlet(torch.ones(3)))
    with ember.plate("data", 4):
        ember.sample("z", dist.Gamma(2.0, 1.0))


def latent_sites(trace):
    return {n: s for n, s in trace.iter_stochastic_nodes() if not s["infer"].get("is_auxiliary")}


# ----------------------------------------------------------------- structure
@pytest.mark.parametrize("guide_class", ALL)
def test_guide_samples_every_latent_with_the_model_shapes(guide_class):
    guide = guide_class(model_with_supports)
    guide_trace = poutine.trace(guide).get_trace()
    model_trace = poutine.trace(poutine.replay(model_with_supports, guide_trace)).get_trace()
    assert set(latent_sites(guide_trace)) == {"x", "s", "p", "w", "z"}
    values = guide()
    for name, site in latent_sites(model_trace).items():
        assert values[name].shape == site["fn"].shape()
        assert bool(site["fn"].support.check(guide_trace.nodes[name]["value"]).all()), name
    # scoring the model on the guide's values gives finite log-densities
    model_trace.compute_log_prob()
    assert torch.isfinite(model_trace.log_prob_sum())


def test_parameter_names():
    guide = AutoNormal(model_with_supports)
    guide()
    assert {n for n, _ in guide.named_pyro_params()} == {
        f"{kind}.{site}" for kind in ("locs", "scales") for site in "xspwz"
    }
    assert "AutoNormal.locs.z" in ember.get_param_store()
    guide = AutoDiagonalNormal(model_with_supports)
    guide()
    # unconstrained sizes: x 1, s 1, p 2, w 2 (a simplex of 3), z 4
    assert guide.latent_dim == 10
    assert {n for n, _ in guide.named_pyro_params()} == {"loc", "scale"}


def test_module_model_sites_are_dotted_names():
    class Regression(PyroModule):
        def __init__(self):
            super().__init__()
            self.linear = PyroModule[nn.Linear](3, 1)
            self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2))

        def forward(self, x):
            return self.linear(x)

    model = Regression()
    guide = AutoNormal(model)
    values = guide(torch.ones(3))
    assert set(values) == {"linear.weight"}
    assert guide.locs.linear.weight.shape == (1, 3)


# ----------------------------------------------------------------- densities
def _joint_log_q(guide, *args):
    trace = poutine.trace(guide).get_trace(*args)
    trace.compute_log_prob()
    return trace, trace.log_prob_sum()


def test_autonormal_density_is_the_change_of_variables():
    guide = AutoNormal(model_with_supports, init_scale=0.3)
    guide()
    with torch.no_grad():
        for name, p in guide.named_parameters():
            if name.startswith("locs"):
                p.normal_()
    trace, log_q = _joint_log_q(guide)
    expected = 0.0
    for name, support in [
        ("x", constraints.real),
        ("s", constraints.positive),
        ("p", constraints.unit_interval),
        ("w", constraints.simplex),
        ("z", constraints.positive),
    ]:
        loc, scale = guide._get_loc_and_scale(name)
        base = dist.Normal(loc, scale).to_event(loc.dim())
        q = dist.TransformedDistribution(base, [dist.biject_to(support)])
        expected = expected + q.log_prob(trace.nodes[name]["value"]).sum()
    assert torch.allclose(log_q, expected, atol=1e-4)


@pytest.mark.parametrize(
    "guide_class", [AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal]
)
def test_joint_guide_density_is_the_change_of_variables(guide_class):
    def model():
        ember.sample("s", dist.LogNormal(0.0, 1.0))
        ember.sample("p", dist.Beta(2.0, 3.0).expand([2]).to_event(1))

    ember.set_rng_seed(0)
    guide = guide_class(model)
    guide()
    trace, log_q = _joint_log_q(guide)
    s, p = trace.nodes["s"]["value"], trace.nodes["p"]["value"]
    u = torch.cat([s.log().reshape(1), torch.logit(p)])
    log_jac = -s.log() - (p * (1 - p)).log().sum()
    expected = guide.get_posterior().log_prob(u) + log_jac
    assert torch.allclose(log_q, expected, atol=1e-4)


# --------------------------------------------------------- plates, subsampling
def subsampled_model(data, subsample_size=None):
    mu = ember.sample("mu", dist.Normal(0.0, 10.0))
    with ember.plate("data", len(data), subsample_size=subsample_size) as idx:
        z = ember.sample("z", dist.LogNormal(mu, 1.0))
        ember.sample("obs", dist.Normal(z, 1.0), obs=data[idx])


def test_local_latents_get_full_size_parameters_subsampled_with_the_plate():
    data = torch.arange(10.0)
    guide = AutoNormal(subsampled_model)
    guide(data, 4)
    assert guide.locs.z.shape == (10,) and guide.locs.mu.shape == ()
    with torch.no_grad():
        guide.locs.z_unconstrained.copy_(torch.arange(10.0))
    trace = poutine.trace(guide).get_trace(data, 4)
    idx = trace.nodes["data"]["value"]
    assert idx.shape == (4,)
    aux = trace.nodes["z_unconstrained"]["fn"]
    assert torch.equal(aux.loc.detach(), idx.float())
    # the model replayed on the guide sees the same indices; the local terms are scaled
    model_trace = poutine.trace(poutine.replay(subsampled_model, trace)).get_trace(data, 4)
    assert torch.equal(model_trace.nodes["data"]["value"], idx)
    assert model_trace.nodes["obs"]["scale"] == 2.5


def test_autodelta_subsampled_values_are_the_indexed_parameters():
    data = torch.arange(10.0)
    guide = AutoDelta(subsampled_model)
    guide(data, 3)
    values = torch.arange(1.0, 11.0)
    guide.z = values  # set in place through the constraint
    trace = poutine.trace(guide).get_trace(data, 3)
    idx = trace.nodes["data"]["value"]
    assert torch.allclose(trace.nodes["z"]["value"], values[idx])


def test_create_plates_gives_the_model_indices():
    data = torch.arange(10.0)

    def model(data, idx):
        with ember.plate("data", len(data), subsample=idx):
            ember.sample("z", dist.Normal(0.0, 1.0))

    def create_plates(data, idx):
        return ember.plate("data", len(data), subsample=idx)

    guide = AutoDelta(model, create_plates=create_plates)
    guide(data, torch.tensor([0, 1]))
    guide.z = torch.arange(10.0)
    values = guide(data, torch.tensor([7, 2, 5]))
    assert torch.equal(values["z"].detach(), torch.tensor([7.0, 2.0, 5.0]))


def test_svi_on_subsampled_local_latents_recovers_the_posterior_means():
    # z_i ~ N(0, 1), x_i ~ N(z_i, 1): posterior N(x_i / 2, 1/2) for each i
    data = torch.linspace(-3.0, 3.0, 20)

    def model(data):
        with ember.plate("data", len(data), subsample_size=5) as idx:
            z = ember.sample("z", dist.Normal(0.0, 1.0))
            ember.sample("x", dist.Normal(z, 1.0), obs=data[idx])

    ember.set_rng_seed(0)
    guide = AutoNormal(model)
    steps = 3000
    optim = ClippedAdam({"lr": 0.05, "lrd": 0.1 ** (1 / steps)})
    svi = SVI(model, guide, optim, Trace_ELBO(num_particles=8, vectorize_particles=True))
    for _ in range(steps):
        svi.step(data)
    assert torch.allclose(guide.locs.z.detach(), data / 2, atol=0.1)
    assert torch.allclose(guide.scales.z.detach(), torch.full((20,), 0.5**0.5), atol=0.1)


def test_sequential_plates_are_refused():
    def model():
        for i in ember.plate("seq", 2):
            ember.sample(f"x_{i}", dist.Normal(0.0, 1.0))

    with pytest.raises(NotImplementedError, match="sequential.*'x_0'"):
        AutoNormal(model)()


# ------------------------------------------------------- medians, quantiles
def test_autonormal_median_and_quantiles_are_those_of_the_guide():
    def model():
        ember.sample("s", dist.LogNormal(0.0, 1.0))
        ember.sample("p", dist.Beta(2.0, 2.0))

    guide = AutoNormal(model, init_scale=0.4)
    guide()
    guide.locs.s = torch.tensor(0.3)
    guide.locs.p = torch.tensor(-0.5)
    q = guide.quantiles([0.1, 0.5, 0.9])
    levels = [0.1, 0.5, 0.9]
    expected_s = scipy.stats.lognorm(0.4, scale=math.exp(0.3)).ppf(levels)
    expected_p = scipy.special.expit(scipy.stats.norm(-0.5, 0.4).ppf(levels))
    assert torch.allclose(q["s"], torch.tensor(expected_s, dtype=torch.float32), rtol=1e-4)
    assert torch.allclose(q["p"], torch.tensor(expected_p, dtype=torch.float32), rtol=1e-4)
    median = guide.median()
    assert torch.allclose(median["s"], torch.tensor(math.exp(0.3)))
    assert torch.allclose(median["p"], torch.sigmoid(torch.tensor(-0.5)))
    # the guide's samples have these quantiles (2000 draws: the 0.1 quantile has sd ~0.017
    # in units of the normal's sd)
    ember.set_rng_seed(0)
    with ember.plate("particles", 2000, dim=-1):
        draws = guide()["s"].log()
    empirical = torch.quantile(draws, torch.tensor(levels))
    assert torch.allclose(empirical, q["s"].log(), atol=0.4 * 0.1)


@pytest.mark.parametrize(
    "guide_class", [AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal]
)
def test_joint_guide_quantiles_are_the_posterior_marginals(guide_class):
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        ember.sample("s", dist.LogNormal(0.0, 1.0))

    ember.set_rng_seed(1)
    guide = guide_class(model)
    guide()
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.3 * torch.randn_like(p))
    posterior = guide.get_posterior()
    sd = posterior.variance.sqrt()
    loc = posterior.mean
    levels = torch.tensor([0.2, 0.5, 0.7])
    z = torch.distributions.Normal(0.0, 1.0).icdf(levels)
    q = guide.quantiles(levels.tolist())
    assert torch.allclose(q["x"], loc[:2] + z[:, None] * sd[:2], atol=1e-5)
    assert torch.allclose(q["s"], (loc[2] + z * sd[2]).exp(), rtol=1e-5)
    median = guide.median()
    assert torch.allclose(median["x"], q["x"][1]) and torch.allclose(median["s"], q["s"][1])


def test_delta_median_is_the_point():
    guide = AutoDelta(
        model_with_supports, init_loc_fn=init_to_value(values={"s": torch.tensor(2.5)})
    )
    guide()
    assert torch.allclose(guide.median()["s"], torch.tensor(2.5))
    assert not guide.median()["s"].requires_grad


# --------------------------------------------------------------- Laplace
def test_laplace_approximation_is_exact_on_a_gaussian_model():
    # x ~ N(0, 1), y ~ N(x, 1), obs ~ N(x + y, 0.5): a Gaussian posterior
    obs = torch.tensor(1.3)

    def model():
        x = ember.sample("x", dist.Normal(0.0, 1.0))
        y = ember.sample("y", dist.Normal(x, 1.0))
        ember.sample("obs", dist.Normal(x + y, 0.5), obs=obs)

    # precision of (x, y): prior [[2, -1], [-1, 1]] plus the likelihood's 4 * [[1, 1], [1, 1]]
    precision = torch.tensor([[6.0, 3.0], [3.0, 5.0]])
    cov = torch.linalg.inv(precision)
    mean = cov @ (4.0 * obs * torch.ones(2))
    guide = AutoLaplaceApproximation(model)
    svi = SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(1500):
        svi.step()
    assert torch.allclose(guide.loc.detach(), mean, atol=1e-4)
    laplace = guide.laplace_approximation()
    posterior = laplace.get_posterior()
    assert torch.allclose(posterior.covariance_matrix, cov, atol=1e-5)
    assert torch.allclose(posterior.mean, guide.loc.detach())
    assert not any(True for _ in laplace.parameters())  # buffers only
    assert set(laplace()) == {"x", "y"}


def test_laplace_refuses_a_saddle_point():
    guide = AutoLaplaceApproximation(lambda: ember.sample("x", dist.Cauchy(0.0, 1.0)))
    guide()
    guide.loc.data.fill_(5.0)  # -log Cauchy is concave beyond |x| = 1
    with pytest.raises(ValueError, match="not positive definite"):
        guide.laplace_approximation()


def test_low_rank_covariance_and_scales():
    guide = AutoLowRankMultivariateNormal(
        lambda: ember.sample("x", dist.Normal(0.0, 1.0).expand([5]).to_event(1)), rank=2
    )
    guide()
    scale, factor = guide.scale.detach(), guide.cov_factor.detach()
    cov = torch.diag(scale) @ (factor @ factor.T + torch.eye(5)) @ torch.diag(scale)
    assert torch.allclose(guide.get_posterior().covariance_matrix, cov, atol=1e-6)
    assert torch.allclose(guide.loc_scale()[1].detach(), cov.diagonal().sqrt(), atol=1e-6)


# -------------------------------------------------------------- composition
def test_guide_list_of_delta_and_normal_parts():
    def model():
        ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.LogNormal(0.0, 1.0).expand([2]).to_event(1))

    guide = AutoGuideList(model)
    guide.append(AutoDelta(poutine.block(model, expose=["a"])))
    guide.append(AutoNormal(poutine.block(model, hide=["a"])))
    trace = poutine.trace(guide).get_trace()
    assert set(latent_sites(trace)) == {"a", "b"}
    assert type(trace.nodes["a"]["fn"]).__name__ == "Delta"
    assert "b_unconstrained" in trace.nodes
    params = {n for n, s in trace.nodes.items() if s["type"] == "param"}
    assert params == {"AutoGuideList.0.a", "AutoGuideList.1.locs.b", "AutoGuideList.1.scales.b"}
    assert set(guide.median()) == {"a", "b"}
    with pytest.raises(RuntimeError, match="already added"):
        guide.append(guide[0])


def test_guide_list_trains_to_the_separate_optima():
    # a and b independent a posteriori: a MAP point and a normal for b, fitted together or
    # apart, reach the same optimum
    obs_a, obs_b = torch.tensor(1.0), torch.tensor(-2.0)

    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        b = ember.sample("b", dist.Normal(0.0, 1.0))
        ember.sample("xa", dist.Normal(a, 0.5), obs=obs_a)
        ember.sample("xb", dist.Normal(b, 0.5), obs=obs_b)

    def fit(guide, steps=1500):
        svi = SVI(
            model, guide, Adam({"lr": 0.02}), Trace_ELBO(num_particles=16, vectorize_particles=True)
        )
        for _ in range(steps):
            svi.step()

    ember.set_rng_seed(0)
    both = AutoGuideList(model)
    both.append(AutoDelta(poutine.block(model, expose=["a"])))
    both.append(AutoNormal(poutine.block(model, expose=["b"])))
    fit(both)
    # exact: a's MAP = b's posterior mean = 4 x / 5, b's posterior sd = sqrt(1/5)
    assert abs(both[0].a.item() - 0.8) < 0.01
    assert abs(both[1].locs.b.item() - (-1.6)) < 0.05
    assert abs(both[1].scales.b.item() - 0.2**0.5) < 0.05
    ember.clear_param_store()
    ember.set_rng_seed(1)
    delta = AutoDelta(poutine.block(model, expose=["a"]))
    normal = AutoNormal(poutine.block(model, expose=["b"]))

    def guide():
        delta()
        normal()

    fit(guide)
    assert abs(delta.a.item() - both[0].a.item()) < 0.01
    assert abs(normal.locs.b.item() - both[1].locs.b.item()) < 0.07
    assert abs(normal.scales.b.item() - both[1].scales.b.item()) < 0.07


def test_auto_callable_and_plain_callables_in_a_list():
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0))
        ember.sample("y", dist.Normal(0.0, 1.0))

    def guide_x():
        loc = ember.param("x_loc", torch.tensor(0.25))
        return {"x": ember.sample("x", dist.Delta(loc))}

    guide = AutoGuideList(model)
    guide.append(AutoCallable(model, guide_x, median=lambda: {"x": torch.tensor(0.25)}))
    guide.append(AutoNormal(poutine.block(model, expose=["y"])))
    assert set(guide()) == {"x", "y"}
    assert guide.median()["x"] == 0.25
    plain = AutoGuideList(model)

    def guide_x_without_result():
        ember.sample("x", dist.Delta(torch.tensor(0.0)))

    plain.append(guide_x_without_result)
    plain.append(AutoDelta(poutine.block(model, expose=["y"])))
    assert set(plain()) == {"y"}  # the callable returned no dict


def test_parts_must_agree_with_the_list_model():
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0))

    def other():
        ember.sample("x", dist.Normal(0.0, 1.0).expand([3]).to_event(1))

    guide = AutoGuideList(model)
    guide.append(AutoNormal(other))
    with pytest.raises(ValueError, match="'x' has different shapes"):
        guide()


def test_enumerated_discrete_sites_hidden_from_the_guide():
    # a two-component mixture: the assignments are enumerated in the model, the locations
    # are point estimates; the loss is exactly -log p(data, locs) with assignments summed out
    data = torch.tensor([-1.0, 0.2, 2.5])
    weights = torch.tensor([0.3, 0.7])

    @config_enumerate
    def model():
        locs = ember.sample("locs", dist.Normal(0.0, 5.0).expand([2]).to_event(1))
        with ember.plate("data", 3):
            k = ember.sample("k", dist.Categorical(weights))
            ember.sample("obs", dist.Normal(locs[k], 1.0), obs=data)

    locs = torch.tensor([-0.5, 2.0])
    guide = AutoDelta(
        poutine.block(model, hide=["k"]), init_loc_fn=init_to_value(values={"locs": locs})
    )
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)
    prior = dist.Normal(0.0, 5.0).log_prob(locs).sum()
    lik = torch.logsumexp(weights.log() + dist.Normal(locs, 1.0).log_prob(data[:, None]), -1).sum()
    assert abs(loss - (-(prior + lik)).item()) < 1e-4


def test_discrete_parallel_guide_gives_the_exact_elbo():
    data = torch.tensor([0.1, 2.2])

    def model():
        with ember.plate("data", 2):
            k = ember.sample("k", dist.Bernoulli(0.4))
            ember.sample("obs", dist.Normal(2.0 * k, 1.0), obs=data)

    guide = AutoDiscreteParallel(model)
    guide()
    q = torch.tensor([0.25, 0.9])
    guide.k_probs = q
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)
    # sum over points of E_q[log p(k) + log p(x | k) - log q(k)]
    elbo = 0.0
    for i in range(2):
        for k, qk in ((0, 1 - q[i]), (1, q[i])):
            lp = math.log(0.4 if k else 0.6) + dist.Normal(2.0 * k, 1.0).log_prob(data[i])
            elbo += qk * (lp - math.log(qk))
    assert abs(loss + float(elbo)) < 1e-4


def test_discrete_parallel_refuses_continuous_sites():
    with pytest.raises(ValueError, match="'x' is a Normal"):
        AutoDiscreteParallel(lambda: ember.sample("x", dist.Normal(0.0, 1.0)))()


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("guide_class", [AutoDiagonalNormal, AutoMultivariateNormal])
def test_no_latent_sites(guide_class):
    def model():
        ember.sample("obs", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))

    with pytest.raises(RuntimeError, match="no latent variables"):
        guide_class(model)()


@pytest.mark.parametrize("guide_class", ALL)
def test_discrete_latent_is_named(guide_class):
    def model():
        ember.sample("p", dist.Beta(2.0, 2.0))
        ember.sample("coin", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match="discrete sample site 'coin'.*AutoDiscreteParallel"):
        guide_class(model)()


def test_model_structure_changed_after_the_guide_was_built():
    n_latents = [1]

    def model():
        for i in range(n_latents[0]):
            ember.sample(f"x{i}", dist.Normal(0.0, 1.0))

    guide = AutoNormal(model)
    Trace_ELBO().loss(model, guide)
    n_latents[0] = 2
    with pytest.raises(ValueError, match="'x1'"):
        Trace_ELBO().loss(model, guide)


def test_init_scale_must_be_positive():
    with pytest.raises(ValueError, match="init_scale"):
        AutoNormal(model_with_supports, init_scale=-1.0)
    with pytest.raises(ValueError, match="rank"):
        AutoLowRankMultivariateNormal(model_with_supports, rank=0)


# -------------------------------------------------------- serialization, predictive
@pytest.mark.parametrize("guide_class", [AutoDelta, AutoNormal, AutoMultivariateNormal])
def test_guides_pickle_and_torch_save(guide_class):
    guide = guide_class(model_with_supports)
    guide()
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.1)
    ember.set_rng_seed(0)
    expected = guide.call()
    buffer = io.BytesIO()
    torch.save(guide, buffer)
    buffer.seek(0)
    ember.clear_param_store()
    loaded = torch.load(buffer, weights_only=False)
    ember.set_rng_seed(0)
    actual = loaded.call()
    for a, e in zip(actual, expected):
        assert torch.allclose(a, e)
    copy = pickle.loads(pickle.dumps(guide))
    for name, value in guide.median().items():
        assert torch.allclose(copy.median()[name], value)


def test_nested_guides_pickle_with_their_master():
    def model():
        ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.Normal(0.0, 1.0))

    guide = AutoGuideList(model)
    guide.append(AutoDelta(poutine.block(model, expose=["a"])))
    guide.append(AutoNormal(poutine.block(model, expose=["b"])))
    guide()
    copy = pickle.loads(pickle.dumps(guide))
    assert copy[0].master() is copy and copy[1].master() is copy
    assert set(copy()) == {"a", "b"}


def test_predictive_with_an_autodelta_guide_uses_its_point():
    def model(y=None):
        mu = ember.sample("mu", dist.Normal(0.0, 1.0))
        with ember.plate("data", 3):
            return ember.sample("obs", dist.Normal(mu, 1e-3), obs=y)

    guide = AutoDelta(model, init_loc_fn=init_to_value(values={"mu": torch.tensor(2.0)}))
    guide(torch.zeros(3))  # built with obs observed
    samples = Predictive(model, guide=guide, num_samples=5)()
    assert set(samples) == {"mu", "obs"}
    assert torch.allclose(samples["mu"], torch.full((5, 1), 2.0))
    assert samples["obs"].shape == (5, 3)
    assert torch.allclose(samples["obs"], torch.full((5, 3), 2.0), atol=0.01)
    assert samples["obs"].std() > 0  # drawn anew for each sample


def test_trace_mean_field_elbo_agrees_with_trace_elbo_and_does_not_warn():
    def model():
        mu = ember.sample("mu", dist.Normal(0.0, 1.0))
        ember.sample("x", dist.Normal(mu, 1.0), obs=torch.tensor(0.5))

    guide = AutoNormal(model)
    guide()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ember.set_rng_seed(0)
        a = TraceMeanField_ELBO(num_particles=10).loss(model, guide)
    ember.set_rng_seed(0)
    b = Trace_ELBO(num_particles=10).loss(model, guide)
    assert a == pytest.approx(b, rel=1e-6)
