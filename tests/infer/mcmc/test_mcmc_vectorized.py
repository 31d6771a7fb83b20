"""Vectorized chains (``MCMC(..., chain_method="vectorized")``): exact moments per chain
and pooled, R-hat on eight schools, the one-chain run equal to the sequential one, the
output format, the potential's batching and its fallbacks, and errors."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember.demo.datasets import load_eight_schools
from ember.demo.eight_schools import exact_posterior
from ember.demo.eight_schools import model as eight_schools_model
from ember.infer.mcmc import HMC, MCMC, NUTS, RandomWalkKernel
from ember.infer.mcmc.util import ChainBatchedPotential, initialize_model
from ember.infer.mcmc.vectorized import VectorizedChains
from ember.ops.stats import effective_sample_size, split_gelman_rubin

LOC = torch.tensor([1.0, -2.0, 0.5])
COV = torch.tensor([[4.0, 1.2, 0.0], [1.2, 1.0, 0.3], [0.0, 0.3, 0.25]])


def gaussian_model():
    ember.sample("x", dist.MultivariateNormal(LOC, COV))


def _check_moments(draws, mean, var, what):
    """``draws`` (chains, samples, d): mean and variance within 4 Monte Carlo standard
    errors, the standard errors from the ESS of these draws."""
    ess = effective_sample_size(draws)
    flat = draws.reshape(-1, draws.shape[-1])
    mean_se = var.sqrt() / ess.sqrt()
    assert ((flat.mean(0) - mean).abs() < 4 * mean_se).all(), (what, flat.mean(0), ess)
    var_se = var * (2.0 / ess).sqrt()  # a Gaussian sample variance's sd
    assert ((flat.var(0) - var).abs() < 4 * var_se).all(), (what, flat.var(0), ess)


def _vectorized(kernel, num_chains, num_samples, warmup, *args, **options):
    mcmc = MCMC(kernel, num_samples, warmup_steps=warmup, num_chains=num_chains,
                disable_progbar=True, chain_method="vectorized", **options)  # fmt: skip
    mcmc.run(*args)
    return mcmc


@pytest.mark.parametrize("kernel", ["nuts", "nuts-dense", "hmc"])
def test_gaussian_moments_per_chain_and_pooled(kernel):
    ember.set_rng_seed(0)
    if kernel == "nuts":
        k = NUTS(gaussian_model)
    elif kernel == "nuts-dense":
        k = NUTS(gaussian_model, full_mass=True)
    else:
        # a fixed number of steps: a trajectory near half a period of the (mass-scaled)
        # Gaussian makes the draws nearly antithetic, which the ESS estimate misjudges;
        # 5 steps of the adapted size (0.3 - 0.4) keep it near a quarter period
        k = HMC(gaussian_model, num_steps=5)
    mcmc = _vectorized(k, 4, 500, 300)
    draws = mcmc.get_samples(group_by_chain=True)["x"]
    assert draws.shape == (4, 500, 3)
    assert mcmc.sampler.chains.potential_mode == "recorded"
    for c in range(4):
        _check_moments(draws[c : c + 1], LOC, COV.diag(), f"chain {c}")
    _check_moments(draws, LOC, COV.diag(), "pooled")
    diag = mcmc.diagnostics()
    assert set(diag["divergences"]) == {f"chain {c}" for c in range(4)}
    assert all(v == [] for v in diag["divergences"].values())
    assert (diag["x"]["r_hat"] < 1.01).all()


def test_per_chain_adaptation():
    # every chain adapts its own step size (by dual averaging, to the target acceptance
    # rate) and its own mass matrix (an estimate of the posterior variances)
    ember.set_rng_seed(1)
    mcmc = _vectorized(NUTS(gaussian_model, target_accept_prob=0.8), 3, 400, 500)
    chains = mcmc.sampler.chains.chains
    steps = [ch.step_size for ch in chains]
    assert len(set(steps)) == 3  # adapted separately
    for c, ch in enumerate(chains):
        acc = mcmc.diagnostics()["acceptance rate"][f"chain {c}"]
        assert abs(acc - 0.8) < 0.05 + 0.1  # the sampling phase's mean; warm-up reached 0.8
        inv_mass = ch.inverse_mass_matrix[("x",)]
        # the last slow window's variance estimate, from about 100 effective draws
        se = COV.diag() * (2.0 / 100) ** 0.5
        assert ((inv_mass - COV.diag()).abs() < 4 * se + 0.05).all(), (c, inv_mass)
    assert mcmc.kernel is chains[0]


def test_dual_averaging_reaches_target_per_chain():
    ember.set_rng_seed(2)
    seen = []

    def hook(kernel, params, stage, i):
        if stage == "Warmup" and i == 499:
            seen.extend(ch._mean_accept_prob for ch in mcmc.sampler.chains.chains)

    mcmc = MCMC(NUTS(gaussian_model), 10, warmup_steps=500, num_chains=3, hook_fn=hook,
                disable_progbar=True, chain_method="vectorized")  # fmt: skip
    mcmc.run()
    assert len(seen) == 3
    for acc in seen:
        assert abs(acc - 0.8) < 0.05


@pytest.mark.slow
def test_eight_schools_four_vectorized_chains():
    ember.set_rng_seed(3)
    d = load_eight_schools(torch.float64)
    mcmc = _vectorized(NUTS(eight_schools_model), 4, 1000, 500, d["stderr"], d["effect"])
    samples = mcmc.get_samples(group_by_chain=True)
    assert samples["mu"].shape == (4, 1000)
    assert samples["theta_tilde"].shape == (4, 1000, 8)
    assert mcmc.sampler.chains.potential_mode == "recorded"
    for name in ("mu", "tau", "theta_tilde"):
        r_hat = split_gelman_rubin(samples[name])
        assert (r_hat < 1.01).all(), (name, r_hat)
    assert sum(len(v) for v in mcmc.diagnostics()["divergences"].values()) <= 4
    exact = exact_posterior(d["stderr"], d["effect"])
    for name in ("mu", "tau"):
        draws = samples[name]
        ess = effective_sample_size(draws)
        mean, sd = exact[name]
        assert abs(float(draws.mean()) - float(mean)) < 4 * float(sd / ess.sqrt()), name


@pytest.mark.parametrize("kernel", ["nuts", "hmc", "nuts-slice"])
def test_one_vectorized_chain_equals_the_sequential_chain(kernel):
    d = load_eight_schools()

    def make():
        if kernel == "nuts":
            return NUTS(eight_schools_model)
        if kernel == "nuts-slice":
            return NUTS(eight_schools_model, use_multinomial_sampling=False)
        return HMC(eight_schools_model, num_steps=5)

    runs = []
    for method in ("sequential", "vectorized"):
        ember.set_rng_seed(4)
        mcmc = MCMC(make(), 150, warmup_steps=150, disable_progbar=True, chain_method=method)
        mcmc.run(d["stderr"], d["effect"])
        runs.append(mcmc)
    seq, vec = (m.get_samples(group_by_chain=True) for m in runs)
    assert seq.keys() == vec.keys()
    for name in seq:
        assert torch.equal(seq[name], vec[name]), name
    assert runs[0].kernel.step_size == runs[1].kernel.step_size
    assert runs[0].diagnostics()["divergences"] == runs[1].diagnostics()["divergences"]


def test_output_format_and_save_params():
    ember.set_rng_seed(5)

    def model():
        ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("s", dist.LogNormal(0.0, 0.5).expand([2]).to_event(1))

    mcmc = _vectorized(NUTS(model), 3, 20, 20, save_params=["s"])
    grouped = mcmc.get_samples(group_by_chain=True)
    assert list(grouped) == ["s"]
    assert grouped["s"].shape == (3, 20, 2)
    assert (grouped["s"] > 0).all()  # constrained
    assert mcmc.get_samples()["s"].shape == (60, 2)
    diag = mcmc.diagnostics()
    assert set(diag["acceptance rate"]) == {"chain 0", "chain 1", "chain 2"}
    assert diag["s"]["r_hat"].shape == (2,)


def test_initial_params_per_chain():
    ember.set_rng_seed(6)
    init = {"x": torch.tensor([[10.0, 0.0, 0.0], [-10.0, 0.0, 0.0]])}
    seen = []

    def hook(kernel, params, stage, i):
        if not seen:
            seen.append(params["x"].clone())

    kernel = HMC(gaussian_model, num_steps=1, adapt_step_size=False, step_size=1e-3)
    mcmc = MCMC(kernel, 1,
                warmup_steps=0, num_chains=2, initial_params=init, hook_fn=hook,
                disable_progbar=True, chain_method="vectorized")  # fmt: skip
    mcmc.run()
    # one tiny step from each chain's own start
    assert torch.allclose(seen[0], init["x"], atol=0.1)
    bad = {"x": torch.zeros(3, 3)}
    with pytest.raises(ValueError, match="leading dim of size 2"):
        MCMC(NUTS(gaussian_model), 5, num_chains=2, initial_params=bad, chain_method="vectorized")


def test_batched_potential_matches_each_chain():
    d = load_eight_schools()
    args = (d["stderr"], d["effect"])
    _, potential_fn, _, trace = initialize_model(eight_schools_model, args)
    batched = ChainBatchedPotential(potential_fn, trace, 3)
    ember.set_rng_seed(7)
    params = {"mu": torch.randn(3), "tau": torch.randn(3), "theta_tilde": torch.randn(3, 8)}
    got = batched(params)
    want = torch.stack([potential_fn({k: v[c] for k, v in params.items()}) for c in range(3)])
    assert torch.allclose(got, want, rtol=1e-5)


def test_non_broadcasting_model_falls_back_to_the_chain_loop():
    # ``x @ w`` does not broadcast over a chain dim left of the plates: the batched run
    # fails its check, the chains are evaluated one by one, the draws are still right
    x = torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.0]])
    prior_var = torch.tensor(1.0)
    y = torch.tensor([0.5, -1.0, 2.0])

    def model():
        w = ember.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        with ember.plate("data", 3):
            ember.sample("y", dist.Normal(x @ w, 1.0), obs=y)

    # the exact posterior: Gaussian with precision I + X^T X
    precision = torch.eye(2) / prior_var + x.T @ x
    cov = torch.linalg.inv(precision)
    mean = cov @ (x.T @ y)
    ember.set_rng_seed(8)
    mcmc = _vectorized(NUTS(model), 2, 400, 300)
    assert mcmc.sampler.chains.potential_mode == "loop"
    draws = mcmc.get_samples(group_by_chain=True)["w"]
    _check_moments(draws, mean, cov.diag(), "w")


def test_enumerated_model_runs_chain_by_chain():
    # a two-component mixture with enumerated assignments; the location's posterior on
    # a grid (exact up to the grid) gives the mean
    data = torch.tensor([-1.0, 0.2, 1.5, 2.2])

    def model():
        loc = ember.sample("loc", dist.Normal(0.0, 2.0))
        with ember.plate("data", 4):
            z = ember.sample("z", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
            ember.sample("x", dist.Normal(loc * z, 1.0), obs=data)

    grid = torch.linspace(-8, 8, 8001, dtype=torch.float64)
    d64 = data.double()
    log_post = dist.Normal(0.0, 2.0).log_prob(grid) + torch.logaddexp(
        torch.log(torch.tensor(0.3, dtype=torch.float64))
        + dist.Normal(grid.unsqueeze(-1), 1.0).log_prob(d64),
        torch.log(torch.tensor(0.7, dtype=torch.float64))
        + dist.Normal(0.0, 1.0).log_prob(d64).expand(grid.shape + d64.shape),
    ).sum(-1)
    w = (log_post - log_post.max()).exp()
    w = w / w.sum()
    mean = float((w * grid).sum())
    var = float((w * (grid - mean) ** 2).sum())
    ember.set_rng_seed(9)
    mcmc = _vectorized(NUTS(model), 2, 400, 300)
    assert mcmc.sampler.chains.potential_mode == "loop"
    draws = mcmc.get_samples(group_by_chain=True)["loc"].double()
    ess = effective_sample_size(draws)
    assert abs(float(draws.mean()) - mean) < 4 * (var / float(ess)) ** 0.5


def test_vectorized_chains_engine_directly():
    ember.set_rng_seed(10)
    chains = VectorizedChains(HMC(gaussian_model, num_steps=3), 2)
    chains.setup(5)
    z = chains.sample()
    assert z.shape == (2, 3)
    assert len(chains.diagnostics()) == 2
    assert set(chains.logging()) == {"step size", "acc. prob", "div."}


def test_potential_fn_kernel_runs_chain_by_chain():
    # a kernel given a potential function (no model): the chains' potentials are
    # evaluated one by one; the target is N(1, 2^2) per coordinate
    def potential(params):
        return (((params["x"] - 1.0) / 2.0) ** 2).sum() / 2

    ember.set_rng_seed(11)
    init = {"x": torch.zeros(3, 2)}
    mcmc = _vectorized(NUTS(potential_fn=potential), 3, 400, 300, initial_params=init)
    assert mcmc.sampler.chains.potential_mode == "loop"
    draws = mcmc.get_samples(group_by_chain=True)["x"]
    assert draws.shape == (3, 400, 2)
    _check_moments(draws, torch.ones(2), torch.full((2,), 4.0), "x")


def test_errors():
    with pytest.raises(TypeError, match="HMC or NUTS"):
        MCMC(RandomWalkKernel(gaussian_model), 5, num_chains=2, chain_method="vectorized")
    with pytest.raises(ValueError, match="chain_method"):
        MCMC(NUTS(gaussian_model), 5, chain_method="threads")
    with pytest.raises(ValueError, match="num_chains"):
        VectorizedChains(NUTS(gaussian_model), 0)
