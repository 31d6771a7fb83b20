"""HMC / NUTS against exact posteriors; tolerances come from the reported ESS."""

import math
import pickle

import pytest
import torch

import ember
import ember.distributions as dist
from ember.demo.datasets import load_eight_schools
from ember.demo.eight_schools import exact_posterior
from ember.demo.eight_schools import model as eight_schools_model
from ember.infer.mcmc import HMC, MCMC, NUTS, RandomWalkKernel
from ember.infer.mcmc.adaptation import (
    ArrowheadMassMatrix,
    BlockMassMatrix,
    WarmupAdapter,
    adapt_window,
)
from ember.infer.mcmc.util import initialize_model
from ember.ops.stats import effective_sample_size, split_gelman_rubin


def _check_mean_var(draws, mean, var, name):
    """draws: (chains, samples, d); compares mean and variance within 4 MC standard errors."""
    ess = effective_sample_size(draws)
    flat = draws.reshape(-1, draws.shape[-1])
    sd = var.sqrt()
    mean_se = sd / ess.sqrt()
    assert ((flat.mean(0) - mean).abs() < 4 * mean_se).all(), (name, flat.mean(0), mean, ess)
    # for a Gaussian, the variance estimate's sd is about var * sqrt(2 / ess)
    var_se = var * (2.0 / ess).sqrt()
    assert ((flat.var(0) - var).abs() < 4 * var_se).all(), (name, flat.var(0), var, ess)


def _run(kernel, num_samples=600, warmup=400, *args):
    mcmc = MCMC(kernel, num_samples, warmup_steps=warmup, disable_progbar=True)
    mcmc.run(*args)
    return mcmc


@pytest.mark.parametrize("full_mass", [False, True])
def test_nuts_correlated_gaussian_moments(full_mass):
    ember.set_rng_seed(0)
    loc = torch.tensor([1.0, -2.0, 0.5])
    cov = torch.tensor([[4.0, 1.2, 0.0], [1.2, 1.0, 0.3], [0.0, 0.3, 0.25]])

    def model():
        ember.sample("x", dist.MultivariateNormal(loc, cov))

    mcmc = _run(NUTS(model, full_mass=full_mass))
    draws = mcmc.get_samples(group_by_chain=True)["x"]
    assert draws.shape == (1, 600, 3)
    _check_mean_var(draws, loc, cov.diag(), "x")
    diag = mcmc.diagnostics()
    assert diag["divergences"]["chain 0"] == []
    assert (diag["x"]["r_hat"] < 1.01 + 0.04).all()  # one short chain: split R-hat is noisy
    if full_mass:  # the adapted dense inverse mass matrix estimates the covariance
        # (the last slow window has 250 correlated draws; take 100 effective ones and the
        # standard error of a Gaussian sample covariance, sqrt((s_ii s_jj + s_ij^2) / n))
        inv = mcmc.kernel.inverse_mass_matrix[("x",)]
        se = ((cov.diag().outer(cov.diag()) + cov**2) / 100).sqrt()
        assert ((inv - cov).abs() < 4 * se).all()


def test_hmc_gaussian_with_constrained_site():
    ember.set_rng_seed(1)

    def model():
        ember.sample("s", dist.LogNormal(0.5, 0.8))

    # num_steps fixed (not trajectory 2 pi, which resonates with a unit-scaled Gaussian)
    mcmc = _run(HMC(model, num_steps=7), 800, 400)
    log_s = mcmc.get_samples(group_by_chain=True)["s"].log().unsqueeze(-1)
    _check_mean_var(log_s, torch.tensor([0.5]), torch.tensor([0.64]), "log s")


def test_beta_binomial_conjugate():
    ember.set_rng_seed(2)
    y = torch.tensor([7.0, 3.0, 9.0])  # successes out of 10 each

    def model(y):
        p = ember.sample("p", dist.Beta(2.0, 3.0))
        with ember.plate("trials", 3):
            ember.sample("y", dist.Binomial(10, p), obs=y)

    mcmc = _run(NUTS(model), 800, 300, y)
    a, b = 2.0 + 19.0, 3.0 + 11.0
    mean = a / (a + b)
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    draws = mcmc.get_samples(group_by_chain=True)["p"].unsqueeze(-1)
    ess = effective_sample_size(draws)
    assert abs(float(draws.mean()) - mean) < 4 * math.sqrt(var / float(ess))


def test_dirichlet_multinomial_conjugate():
    ember.set_rng_seed(3)
    counts = torch.tensor([12.0, 30.0, 8.0])

    def model():
        p = ember.sample("p", dist.Dirichlet(torch.ones(3)))
        ember.sample("c", dist.Multinomial(50, p), obs=counts)

    mcmc = _run(NUTS(model), 800, 300)
    alpha = 1.0 + counts
    mean = alpha / alpha.sum()
    var = mean * (1 - mean) / (alpha.sum() + 1)
    draws = mcmc.get_samples(group_by_chain=True)["p"]
    ess = effective_sample_size(draws)
    assert ((draws.reshape(-1, 3).mean(0) - mean).abs() < 4 * (var / ess).sqrt()).all()


@pytest.mark.parametrize("target", [0.6, 0.9])
def test_dual_averaging_reaches_target_accept_prob(target):
    ember.set_rng_seed(4)

    def model():
        ember.sample("x", dist.Normal(torch.zeros(5), torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0])))

    kernel = NUTS(model, target_accept_prob=target)
    seen = {}

    def hook(kernel, params, stage, i):
        if stage == "Warmup":
            seen[i] = float(kernel.logging()["acc. prob"])

    mcmc = MCMC(kernel, 10, warmup_steps=500, hook_fn=hook, disable_progbar=True)
    mcmc.run()
    # dual averaging drives the mean acceptance statistic over the warm-up to the target
    # (the final, averaged step size is a little smaller, so sampling accepts more)
    assert abs(seen[499] - target) < 0.05
    assert kernel.diagnostics()["acceptance rate"] > target - 0.05


def test_random_walk_beta_bernoulli():
    ember.set_rng_seed(5)
    data = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])

    def model(data):
        p = ember.sample("p", dist.Beta(1.0, 1.0))
        with ember.plate("data", 8):
            ember.sample("obs", dist.Bernoulli(p), obs=data)

    mcmc = _run(RandomWalkKernel(model, init_step_size=0.5), 3000, 500, data)
    draws = mcmc.get_samples(group_by_chain=True)["p"].unsqueeze(-1)
    a, b = 7.0, 3.0
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    ess = effective_sample_size(draws)
    assert abs(float(draws.mean()) - mean) < 4 * math.sqrt(var / float(ess))


@pytest.mark.slow
def test_eight_schools_noncentered_matches_quadrature():
    ember.set_rng_seed(6)
    d = load_eight_schools(torch.float64)
    exact = exact_posterior(d["stderr"], d["effect"])
    mcmc = _run(NUTS(eight_schools_model), 1000, 500, d["stderr"], d["effect"])
    s = mcmc.get_samples(group_by_chain=True)
    draws = {
        "mu": s["mu"].unsqueeze(-1),
        "tau": s["tau"].unsqueeze(-1),
        "theta": s["mu"].unsqueeze(-1) + s["tau"].unsqueeze(-1) * s["theta_tilde"],
    }
    for name, x in draws.items():
        ess = effective_sample_size(x)
        mean, sd = exact[name][0], exact[name][1]
        err = (x.reshape(-1, x.shape[-1]).mean(0) - mean).abs()
        assert (err < 4 * sd / ess.sqrt()).all(), (name, err, sd / ess.sqrt())
    # the funnel's neck can still give a rare divergence at the default target 0.8
    assert len(mcmc.diagnostics()["divergences"]["chain 0"]) <= 5


def test_potential_fn_matches_closed_form():
    def model(y):
        mu = ember.sample("mu", dist.Normal(0.0, 2.0))
        s = ember.sample("s", dist.HalfNormal(1.0))
        with ember.plate("n", 2):
            ember.sample("y", dist.Normal(mu, s), obs=y)

    y = torch.tensor([0.3, -1.1])
    params, potential_fn, transforms, _ = initialize_model(model, (y,))
    assert set(params) == {"mu", "s"}
    u = {"mu": torch.tensor(0.4), "s": torch.tensor(-0.2)}  # s = exp(-0.2)
    s = math.exp(-0.2)
    log_joint = (
        dist.Normal(0.0, 2.0).log_prob(torch.tensor(0.4))
        + dist.HalfNormal(1.0).log_prob(torch.tensor(s))
        + dist.Normal(0.4, s).log_prob(y).sum()
        + (-0.2)  # log |d s / d u|
    )
    assert torch.allclose(potential_fn(u), -log_joint)
    assert torch.allclose(transforms["s"].inv(torch.tensor(-0.2)), torch.tensor(s))


def test_adaptation_schedule_stan_windows():
    adapter = WarmupAdapter(0.1, adapt_step_size=True, adapt_mass_matrix=True)
    adapter.configure(1000, mass_matrix_shape={("z",): (3,)})
    # 75 fast, slow windows 25, 50, 100, 200 then the rest up to 950, 50 fast
    assert adapter.adaptation_schedule == [
        adapt_window(0, 74),
        adapt_window(75, 99),
        adapt_window(100, 149),
        adapt_window(150, 249),
        adapt_window(250, 449),
        adapt_window(450, 949),
        adapt_window(950, 999),
    ]


def test_group_by_chain_and_sequential_chains(monkeypatch):
    monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 1)
    ember.set_rng_seed(7)

    def model():
        ember.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1))

    with pytest.warns(UserWarning, match="sequentially"):
        mcmc = MCMC(NUTS(model), 20, warmup_steps=20, num_chains=2, disable_progbar=True)
    mcmc.run()
    assert mcmc.get_samples(group_by_chain=True)["x"].shape == (2, 20, 2)
    assert mcmc.get_samples()["x"].shape == (40, 2)
    assert mcmc.get_samples(10)["x"].shape == (10, 2)
    assert set(mcmc.diagnostics()["divergences"]) == {"chain 0", "chain 1"}


def test_errors_name_the_problem():
    def discrete_only():
        ember.sample("k", dist.Bernoulli(0.3))

    with pytest.raises(ValueError, match="continuous latent"):
        _run(NUTS(discrete_only), 2, 2)

    def poisson_latent():
        ember.sample("n", dist.Poisson(3.0))
        ember.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="'n'.*cannot be enumerated"):
        _run(NUTS(poisson_latent), 2, 2)

    def bad_model():
        x = ember.sample("x", dist.Normal(0.0, 1.0))
        ember.sample("y", dist.Normal(x, 1.0), obs=torch.tensor(float("nan")))

    with pytest.raises(ValueError, match="'?y'?.*nan|cannot find valid initial"):
        _run(NUTS(bad_model), 2, 2)


def test_r_hat_of_two_chains(monkeypatch):
    monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 1)
    ember.set_rng_seed(8)

    def model():
        ember.sample("x", dist.Normal(3.0, 1.0))

    with pytest.warns(UserWarning):
        mcmc = MCMC(NUTS(model), 1000, warmup_steps=300, num_chains=2, disable_progbar=True)
    mcmc.run()
    r_hat = split_gelman_rubin(mcmc.get_samples(group_by_chain=True)["x"])
    assert float(r_hat) < 1.02


def test_mixture_with_enumerated_assignments_matches_quadrature():
    ember.set_rng_seed(9)
    x = torch.tensor([-2.1, -1.7, -2.5, 1.9, 2.2, -1.8, 2.4, -2.0, -2.3, 1.5])
    locs = torch.tensor([-2.0, 2.0])

    def model(x):
        p = ember.sample("p", dist.Beta(2.0, 2.0))
        with ember.plate("data", x.shape[0]):
            z = ember.sample("z", dist.Bernoulli(p))  # summed out inside the potential
            ember.sample("x", dist.Normal(locs[z.long()], 1.0), obs=x)

    mcmc = _run(NUTS(model), 800, 300, x)
    draws = mcmc.get_samples(group_by_chain=True)
    assert set(draws) == {"p"}
    # exact posterior of p on a fine grid
    grid = torch.linspace(1e-4, 1 - 1e-4, 20001, dtype=torch.float64)
    lik1 = dist.Normal(2.0, 1.0).log_prob(x.double()).exp()
    lik0 = dist.Normal(-2.0, 1.0).log_prob(x.double()).exp()
    log_post = dist.Beta(2.0, 2.0).log_prob(grid) + (
        grid[:, None] * lik1 + (1 - grid[:, None]) * lik0
    ).log().sum(-1)
    w = torch.softmax(log_post, 0)
    mean = float((w * grid).sum())
    sd = float((w * (grid - mean) ** 2).sum().sqrt())
    p = draws["p"].unsqueeze(-1)
    ess = float(effective_sample_size(p))
    assert abs(float(p.mean()) - mean) < 4 * sd / math.sqrt(ess)
    assert mcmc.diagnostics()["divergences"]["chain 0"] == []


def test_potential_fn_pickles():
    def_model = eight_schools_model
    d = load_eight_schools()
    params, potential_fn, _, _ = initialize_model(def_model, (d["stderr"], d["effect"]))
    clone = pickle.loads(pickle.dumps(potential_fn))
    u = {k: v + 0.1 for k, v in params.items()}
    assert torch.allclose(clone(u), potential_fn(u))


def test_nuts_slice_sampling_gaussian_moments():
    ember.set_rng_seed(10)
    loc, scale = torch.tensor([1.0, -2.0]), torch.tensor([2.0, 0.5])

    def model():
        ember.sample("x", dist.Normal(loc, scale))

    mcmc = _run(NUTS(model, use_multinomial_sampling=False), 600, 300)
    _check_mean_var(mcmc.get_samples(group_by_chain=True)["x"], loc, scale**2, "x")


@pytest.mark.parametrize("dense", [False, True])
def test_mass_matrix_estimates_from_draws_and_gradients(dense):
    # For a Gaussian target N(0, C) draws have covariance C and potential gradients
    # C^-1 z have covariance C^-1: both adapters must recover C as the inverse mass.
    torch.manual_seed(11)
    cov = torch.tensor([[2.0, 0.6, 0.0], [0.6, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=torch.float64)
    if not dense:
        cov = torch.diag(cov.diag())
    z = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=torch.float64), cov).sample(
        (4000,)
    )
    g = z @ torch.linalg.inv(cov)
    shape = (3, 3) if dense else (3,)
    block, arrow = BlockMassMatrix(), ArrowheadMassMatrix()
    block.configure({("z",): shape}, options={"dtype": torch.float64})
    arrow.configure({("z",): shape}, options={"dtype": torch.float64})
    for zi, gi in zip(z, g):
        block.update({"z": zi}, {"z": gi})
        arrow.update({"z": zi}, {"z": gi})
    block.end_adaptation()
    arrow.end_adaptation()
    expected = cov if dense else cov.diag()
    # standard error of a sample covariance entry: sqrt((c_ii c_jj + c_ij^2) / n)
    se = ((cov.diag().outer(cov.diag()) + cov**2) / 4000).sqrt()
    se = se if dense else se.diag()
    assert ((block.inverse_mass_matrix[("z",)] - expected).abs() < 4 * se).all()
    # the arrowhead inverts a gradient covariance: allow twice the error
    assert ((arrow.inverse_mass_matrix[("z",)] - expected).abs() < 8 * se).all()


def _conjugate_models():
    def gaussian():
        loc = torch.tensor([1.0, -2.0, 0.5])
        cov = torch.tensor([[4.0, 1.2, 0.0], [1.2, 1.0, 0.3], [0.0, 0.3, 0.25]])
        ember.sample("x", dist.MultivariateNormal(loc, cov))

    def beta_binomial():
        p = ember.sample("p", dist.Beta(2.0, 3.0))
        with ember.plate("trials", 3):
            ember.sample("y", dist.Binomial(10, p), obs=torch.tensor([7.0, 3.0, 9.0]))

    def dirichlet_multinomial():
        p = ember.sample("p", dist.Dirichlet(torch.ones(3)))
        ember.sample("c", dist.Multinomial(50, p), obs=torch.tensor([12.0, 30.0, 8.0]))

    def mixture():
        x = torch.tensor([-2.1, -1.7, -2.5, 1.9, 2.2, -1.8, 2.4, -2.0, -2.3, 1.5])
        p = ember.sample("p", dist.Beta(2.0, 2.0))
        with ember.plate("data", x.shape[0]):
            z = ember.sample("z", dist.Bernoulli(p))
            ember.sample("x", dist.Normal(torch.tensor([-2.0, 2.0])[z.long()], 1.0), obs=x)

    def eight_schools():
        d = load_eight_schools()
        eight_schools_model(d["stderr"], d["effect"])

    return {
        "gaussian": gaussian,
        "beta-binomial": beta_binomial,
        "dirichlet-multinomial": dirichlet_multinomial,
        "mixture": mixture,
        "eight-schools": eight_schools,
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_conjugate_models()))
def test_default_settings_converge_without_divergences(name):
    # every exact-posterior model above, NUTS with its default settings, 4 chains of
    # 500 draws after 500 warm-up steps: split R-hat below 1.01 on every component and
    # not one divergent transition. Eight schools is the exception for divergences: at
    # the default target acceptance 0.8 the funnel's neck (tau near 0) gives a rare one
    # (about 1 in 5000 transitions, sequential or vectorized chains alike), so there at
    # most 2 of the 2000 may diverge.
    ember.set_rng_seed(12)
    model = _conjugate_models()[name]
    mcmc = MCMC(NUTS(model), 500, warmup_steps=500, num_chains=4, disable_progbar=True,
                chain_method="vectorized")  # fmt: skip
    mcmc.run()
    diag = mcmc.diagnostics()
    for site, values in mcmc.get_samples(group_by_chain=True).items():
        r_hat = split_gelman_rubin(values)
        assert (r_hat < 1.01).all(), (site, r_hat)
        assert torch.equal(diag[site]["r_hat"], r_hat)
    if name == "eight-schools":
        assert sum(len(v) for v in diag["divergences"].values()) <= 2
    else:
        assert diag["divergences"] == {f"chain {c}": [] for c in range(4)}
