"""TraceEnum_ELBO against exact values: masks and scales on enumerated sites, score
functions inside plates, Monte Carlo enumeration (``num_samples``) and sequential
enumeration of batched sites.

Exact values come from brute-force sums written with Python floats; stochastic
estimates are compared with tolerances derived from their exact standard errors.
"""

import math

import pytest
import scipy.special
import scipy.stats
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import TraceEnum_ELBO, config_enumerate
from ember.ops import IntractableError

F64 = torch.float64


def normal_logpdf(x, loc, scale=1.0):
    return float(scipy.stats.norm.logpdf(x, loc, scale))


def logsumexp(values):
    return float(scipy.special.logsumexp(values))


@pytest.fixture(autouse=True)
def clean_param_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


def empty_guide(*args, **kwargs):
    pass


# ----------------------------------------------------------------------------- masks
DATA = [0.1, 2.0, -1.0, 1.5, 3.0, -0.3]
LOCS = [-1.0, 2.0]
PRIOR = [0.3, 0.7]
MASK = [True, True, False, True, False, True]


def marginal_loglik(x):
    return logsumexp([math.log(p) + normal_logpdf(x, m) for p, m in zip(PRIOR, LOCS)])


def masked_mixture(mask_z, mask_x, scale=1.0):
    data = torch.tensor(DATA, dtype=F64)
    locs = torch.tensor(LOCS, dtype=F64)
    mask = torch.tensor(MASK)

    def model():
        with poutine.scale(scale=scale), ember.plate("d", 6):
            with poutine.mask(mask=mask if mask_z else True):
                z = ember.sample(
                    "z",
                    dist.Categorical(torch.tensor(PRIOR, dtype=F64)),
                    infer={"enumerate": "parallel"},
                )
            with poutine.mask(mask=mask if mask_x else True):
                ember.sample("x", dist.Normal(locs[z], 1.0), obs=data)

    return model


def test_masked_enumerated_site_and_its_observation_contribute_nothing():
    # every masked point used to add log K: 6.909 instead of 8.296 for these data
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(masked_mixture(True, True), empty_guide)
    exact = -sum(marginal_loglik(x) for x, m in zip(DATA, MASK) if m)
    assert loss == pytest.approx(exact, rel=1e-12)


def test_mask_on_the_observation_alone_gives_the_same_loss():
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(masked_mixture(False, True), empty_guide)
    assert loss == pytest.approx(
        -sum(marginal_loglik(x) for x, m in zip(DATA, MASK) if m), rel=1e-12
    )


def test_mask_on_the_enumerated_site_alone_leaves_its_prior_normalized():
    # summed over its values, an enumerated site's own factor is one per element: its
    # mask changes nothing while the observation it explains is counted
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(masked_mixture(True, False), empty_guide)
    assert loss == pytest.approx(-sum(marginal_loglik(x) for x in DATA), rel=1e-12)


def test_everything_masked_gives_zero_loss():
    data = torch.tensor(DATA, dtype=F64)

    def model():
        with ember.plate("d", 6), poutine.mask(mask=torch.zeros(6, dtype=torch.bool)):
            z = ember.sample("z", dist.Categorical(torch.tensor(PRIOR, dtype=F64)))
            ember.sample("x", dist.Normal(torch.tensor(LOCS, dtype=F64)[z], 1.0), obs=data)

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(config_enumerate(model), empty_guide)
    assert loss == pytest.approx(0.0, abs=1e-12)


def test_scale_multiplies_the_masked_marginal():
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(masked_mixture(True, True, 2.5), empty_guide)
    exact = -sum(marginal_loglik(x) for x, m in zip(DATA, MASK) if m)
    assert loss == pytest.approx(2.5 * exact, rel=1e-12)


def test_masks_in_nested_plates_with_enumeration_in_the_outer_plate():
    # z per group (outer plate), x per group and item (inner plate); some items masked,
    # and a whole group masked: that group contributes nothing
    xs = [[0.3, 1.9, -0.7], [2.4, 2.2, 1.1], [-1.2, 0.0, 0.5]]
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, False]])

    @config_enumerate
    def model():
        locs = torch.tensor(LOCS, dtype=F64)
        with ember.plate("groups", 3, dim=-2):
            z = ember.sample("z", dist.Categorical(torch.tensor(PRIOR, dtype=F64)))
            with ember.plate("items", 3, dim=-1), poutine.mask(mask=mask):
                ember.sample("x", dist.Normal(locs[z], 1.0), obs=torch.tensor(xs, dtype=F64))

    loss = TraceEnum_ELBO(max_plate_nesting=2).loss(model, empty_guide)
    exact = 0.0
    for g in range(3):
        kept = [x for x, m in zip(xs[g], mask[g].tolist()) if m]
        exact += logsumexp(
            [math.log(p) + sum(normal_logpdf(x, m) for x in kept) for p, m in zip(PRIOR, LOCS)]
        )
    assert loss == pytest.approx(-exact, rel=1e-12)


def test_masked_guide_enumerated_site_is_averaged_exactly():
    data = torch.tensor(DATA, dtype=F64)
    locs = torch.tensor(LOCS, dtype=F64)
    mask = torch.tensor(MASK)
    q = [0.6, 0.4]

    def model():
        with ember.plate("d", 6), poutine.mask(mask=mask):
            z = ember.sample("z", dist.Categorical(torch.tensor(PRIOR, dtype=F64)))
            ember.sample("x", dist.Normal(locs[z], 1.0), obs=data)

    def guide():
        with ember.plate("d", 6), poutine.mask(mask=mask):
            ember.sample(
                "z", dist.Categorical(torch.tensor(q, dtype=F64)), infer={"enumerate": "parallel"}
            )

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)
    exact = sum(
        qz * (math.log(PRIOR[z]) + normal_logpdf(x, LOCS[z]) - math.log(qz))
        for x, m in zip(DATA, MASK)
        if m
        for z, qz in enumerate(q)
    )
    assert loss == pytest.approx(-exact, rel=1e-12)


def test_per_element_scale_on_an_enumerated_site_is_refused():
    def model():
        with ember.plate("d", 3), poutine.scale(scale=torch.tensor([1.0, 2.0, 3.0])):
            ember.sample("z", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match="site 'z' is enumerated and has a scale with 3 elements"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide)


# ----------------------------------------------------------------------------- scores
P0 = 0.25


def score_moments(q, p0=P0):
    """Exact mean and sd of one element's single-draw estimate of d loss / d q.

    The surrogate's gradient there is ``d log q(z) * (log q(z) - log p(z))`` (score
    function) plus ``d log q(z)`` (the cost's own dependence on q), as in Pyro.
    """
    values, probs = [], []
    for z, prob in ((1.0, q), (0.0, 1 - q)):
        dlogq = z / q - (1 - z) / (1 - q)
        log_ratio = math.log(q if z else 1 - q) - math.log(p0 if z else 1 - p0)
        values.append(dlogq * log_ratio + dlogq)
        probs.append(prob)
    mean = sum(p * v for p, v in zip(probs, values))
    sd = math.sqrt(sum(p * (v - mean) ** 2 for p, v in zip(probs, values)))
    return mean, sd


@pytest.mark.parametrize("vectorize", [False, True])
def test_score_function_gradient_in_a_plate_is_the_kl_gradient(vectorize):
    n, particles = 10000, 4 if vectorize else 1

    @config_enumerate
    def model():
        # an enumerated site next to the sampled one: TraceEnum's machinery is in play
        w = ember.sample("w", dist.Bernoulli(torch.tensor(0.4, dtype=F64)))
        ember.sample("y", dist.Normal(w.to(F64), 1.0), obs=torch.tensor(0.3, dtype=F64))
        with ember.plate("particles", n):
            ember.sample("z", dist.Bernoulli(torch.tensor(P0, dtype=F64)))

    def guide():
        q = ember.param("q", torch.tensor(0.5, dtype=F64))
        with ember.plate("particles", n):
            ember.sample("z", dist.Bernoulli(q))

    ember.set_rng_seed(0)
    elbo = TraceEnum_ELBO(
        max_plate_nesting=1, num_particles=particles, vectorize_particles=vectorize
    )
    elbo.loss_and_grads(model, guide)
    grad = ember.param("q").grad.item() / n
    mean, sd = score_moments(0.5)
    assert mean == pytest.approx(math.log(3.0), abs=1e-12)
    assert abs(grad - mean) < 4 * sd / math.sqrt(n * particles)


def test_score_function_gradient_with_a_mask_and_subsampling():
    size, sub = 20000, 5000
    mask = torch.arange(size) % 4 != 0  # a quarter of the elements masked

    def model():
        with ember.plate("particles", size, subsample_size=sub) as idx:
            with poutine.mask(mask=mask[idx]):
                ember.sample("z", dist.Bernoulli(torch.tensor(P0, dtype=F64)))

    def guide():
        q = ember.param("q", torch.tensor(0.5, dtype=F64))
        with ember.plate("particles", size, subsample_size=sub) as idx:
            with poutine.mask(mask=mask[idx]):
                ember.sample("z", dist.Bernoulli(q))

    ember.set_rng_seed(1)
    elbo = TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)
    elbo.loss_and_grads(model, guide)
    grad = ember.param("q").grad.item()
    mean, sd = score_moments(0.5)
    # unmasked elements of the subsample, each scaled by size / sub; their number is
    # hypergeometric (a quarter of the population is masked)
    kept = 0.75 * sub
    var_kept = sub * 0.75 * 0.25 * (size - sub) / (size - 1)
    expected = 0.75 * size * mean
    se = (size / sub) * math.sqrt(kept * sd**2 + mean**2 * var_kept)
    assert abs(grad - expected) < 4 * se


# ----------------------------------------------------------------------------- Monte Carlo
def test_monte_carlo_guide_scale_gradient_with_vectorized_particles_and_subsampling():
    size, sub, draws, particles, s0 = 100, 10, 50, 100, 2.0

    def model():
        with ember.plate("data", size, subsample_size=sub):
            ember.sample("z", dist.Normal(torch.tensor(0.0, dtype=F64), 1.0))

    def guide():
        s = ember.param("s", torch.tensor(s0, dtype=F64))
        with ember.plate("data", size, subsample_size=sub):
            ember.sample("z", dist.Normal(torch.tensor(0.0, dtype=F64), s))

    ember.set_rng_seed(0)
    elbo = TraceEnum_ELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
    loss = elbo.loss_and_grads(model, config_enumerate(guide, num_samples=draws))
    grad = ember.param("s").grad.item()
    # KL(N(0, s) || N(0, 1)) per element = s^2 / 2 - log s - 1/2, derivative s - 1/s
    kl = size * (s0**2 / 2 - math.log(s0) - 0.5)
    exact_grad = size * (s0 - 1 / s0)
    # per draw: d/ds (log q - log p)(s eps) = s eps^2 - 1/s, variance 2 s^2
    grad_se = (size / sub) * math.sqrt(sub) * s0 * math.sqrt(2.0) / math.sqrt(draws * particles)
    # per draw: (log q - log p)(s eps) = (s^2 - 1) eps^2 / 2 - log s, variance (s^2 - 1)^2 / 2
    loss_se = (size / sub) * math.sqrt(sub) * abs(s0**2 - 1) / math.sqrt(2 * draws * particles)
    assert abs(grad - exact_grad) < 4 * grad_se
    assert abs(loss - kl) < 4 * loss_se


def score_estimate_moments(make, theta, p_dist, support):
    """Exact mean and sd, per coordinate of ``theta``, of the single-draw estimate of
    d KL(q || p) / d theta that a surrogate gives: ``d log q(z) * cost(z) + d log q(z)``
    with ``cost = log q(z) - log p(z)``, z ~ q = make(theta)."""
    grads, probs = [], []
    for z in support:
        t = theta.detach().clone().requires_grad_()
        log_q = make(t).log_prob(z)
        cost = (log_q - p_dist.log_prob(z)).detach()
        (g,) = torch.autograd.grad(log_q * cost + log_q, [t])
        grads.append(g)
        probs.append(log_q.exp().item())
    mean = sum(p * g for p, g in zip(probs, grads))
    sd = sum(p * (g - mean) ** 2 for p, g in zip(probs, grads)).sqrt()
    kl = sum(
        p * (make(theta).log_prob(z) - p_dist.log_prob(z)).item() for p, z in zip(probs, support)
    )
    kl_sd = math.sqrt(
        sum(
            p * ((make(theta).log_prob(z) - p_dist.log_prob(z)).item() - kl) ** 2
            for p, z in zip(probs, support)
        )
    )
    return mean, sd, kl, kl_sd


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_monte_carlo_enumeration_of_discrete_guide_sites(family):
    draws = 20000
    if family == "bernoulli":
        theta0 = torch.tensor(0.75, dtype=F64)
        make = dist.Bernoulli
        p_dist = dist.Bernoulli(torch.tensor(0.2, dtype=F64))
        support = [torch.tensor(v, dtype=F64) for v in (0.0, 1.0)]
    else:
        theta0 = torch.tensor([0.4, 0.3, 0.3], dtype=F64)
        make = dist.Categorical
        p_dist = dist.Categorical(torch.tensor([0.1, 0.2, 0.7], dtype=F64))
        support = [torch.tensor(v) for v in range(3)]

    def model():
        ember.sample("x", p_dist)

    def guide():
        theta = ember.param("theta", theta0.clone())
        ember.sample("x", make(theta), infer={"enumerate": "parallel", "num_samples": draws})

    ember.set_rng_seed(3)
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss_and_grads(model, guide)
    mean, sd, kl, kl_sd = score_estimate_moments(make, theta0, p_dist, support)
    assert abs(loss - kl) < 4 * kl_sd / math.sqrt(draws)
    grad = ember.param("theta").grad
    assert torch.all((grad - mean).abs() <= 4 * sd / math.sqrt(draws) + 1e-9)


def test_monte_carlo_enumeration_of_several_normals_matches_the_kl():
    draws = 2000
    locs = [0.25, 0.5, 1.0]

    def model():
        for i, m in enumerate(locs):
            ember.sample(f"x{i}", dist.Normal(torch.tensor(m, dtype=F64), 1.0))

    @config_enumerate(num_samples=draws)
    def guide():
        q = ember.param("q", torch.tensor(0.0, dtype=F64))
        for i in range(len(locs)):
            ember.sample(f"x{i}", dist.Normal(q, 1.0))

    ember.set_rng_seed(2)
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss_and_grads(model, guide)
    kl = sum(0.5 * m**2 for m in locs)
    # per draw: (log q - log p)(eps) = (m^2 - 2 m eps) / 2 ... its sd is |m|
    se = math.sqrt(sum(m**2 for m in locs) / draws)
    assert abs(loss - kl) < 4 * se
    # d/dq at q = 0 is -sum(m); pathwise, per draw z = eps: eps - m, sd 1 per site
    assert abs(ember.param("q").grad.item() + sum(locs)) < 4 * math.sqrt(len(locs) / draws)


# ----------------------------------------------------------------------------- sequential
SEQ_X = [0.7, -0.2, 1.5, 0.4, 2.1]


def brute_seq_elbo(q):
    """ELBO of guide z_i ~ Bernoulli(q) against model z_i ~ Bernoulli(0.3), x_i ~ N(2 z_i, 1)."""
    total = 0.0
    for x in SEQ_X:
        for z in (0, 1):
            qz = q if z else 1 - q
            total += qz * (math.log(0.3 if z else 0.7) + normal_logpdf(x, 2.0 * z) - math.log(qz))
    return total


def seq_model():
    with ember.plate("data", len(SEQ_X)):
        z = ember.sample("z", dist.Bernoulli(torch.tensor(0.3, dtype=F64)))
        ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(SEQ_X, dtype=F64))


@pytest.mark.parametrize("expand", [False, True])
def test_sequential_enumeration_of_a_batched_guide_site_is_exact(expand):
    runs = []

    def guide():
        q = ember.param("q", torch.tensor(0.35, dtype=F64))
        with ember.plate("data", len(SEQ_X)):
            z = ember.sample(
                "z", dist.Bernoulli(q), infer={"enumerate": "sequential", "expand": expand}
            )
        runs.append(z.clone())

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.loss_and_grads(seq_model, guide)
    assert loss == pytest.approx(-brute_seq_elbo(0.35), rel=1e-12)
    # one run per value, each value shared by every element
    assert len(runs) == 2
    assert sorted(float(r.flatten()[0]) for r in runs) == [0.0, 1.0]
    assert all(torch.all(r == r.flatten()[0]) for r in runs)
    eps = 1e-6
    fd = -(brute_seq_elbo(0.35 + eps) - brute_seq_elbo(0.35 - eps)) / (2 * eps)
    assert ember.param("q").grad.item() == pytest.approx(fd, rel=1e-6)


def test_sequential_enumeration_with_vectorized_particles():
    def guide():
        q = ember.param("q", torch.tensor(0.35, dtype=F64))
        with ember.plate("data", len(SEQ_X)):
            ember.sample("z", dist.Bernoulli(q), infer={"enumerate": "sequential"})

    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=7, vectorize_particles=True)
    assert elbo.loss(seq_model, guide) == pytest.approx(-brute_seq_elbo(0.35), rel=1e-12)


def test_sequential_guide_site_in_a_plate_with_a_global_site():
    # a global sampled-free site g enumerated sequentially too: 2 x 2 runs
    def model():
        g = ember.sample("g", dist.Bernoulli(torch.tensor(0.5, dtype=F64)))
        with ember.plate("data", len(SEQ_X)):
            z = ember.sample("z", dist.Bernoulli(torch.tensor(0.3, dtype=F64)))
            ember.sample("x", dist.Normal(2.0 * z + g, 1.0), obs=torch.tensor(SEQ_X, dtype=F64))

    def guide():
        g = ember.sample("g", dist.Bernoulli(torch.tensor(0.6, dtype=F64)))
        with ember.plate("data", len(SEQ_X)):
            ember.sample("z", dist.Bernoulli(0.2 + 0.5 * g))

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, config_enumerate(guide, "sequential"))
    exact = 0.0
    for g in (0, 1):
        qg = 0.6 if g else 0.4
        inner = math.log(0.5) - math.log(qg)
        q = 0.2 + 0.5 * g
        for x in SEQ_X:
            for z in (0, 1):
                qz = q if z else 1 - q
                inner += qz * (
                    math.log(0.3 if z else 0.7) + normal_logpdf(x, 2.0 * z + g) - math.log(qz)
                )
        exact += qg * inner
    assert loss == pytest.approx(-exact, rel=1e-12)


def test_sequential_enumeration_of_a_batched_model_site_is_exact():
    runs = []

    def model():
        with ember.plate("data", len(SEQ_X)):
            z = ember.sample(
                "z", dist.Bernoulli(torch.tensor(0.3, dtype=F64)), infer={"enumerate": "sequential"}
            )
            runs.append(z)
            ember.sample("x", dist.Normal(2.0 * z, 1.0), obs=torch.tensor(SEQ_X, dtype=F64))

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide)
    exact = sum(
        logsumexp([math.log(0.7) + normal_logpdf(x, 0.0), math.log(0.3) + normal_logpdf(x, 2.0)])
        for x in SEQ_X
    )
    assert loss == pytest.approx(-exact, rel=1e-12)
    assert len(runs) == 2


def test_model_enumeration_more_global_than_guide_enumeration_is_explained():
    def model():
        a = ember.sample("a", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        with ember.plate("p", 2):
            b = ember.sample("b", dist.Bernoulli(0.5))
            ember.sample("c", dist.Normal(a + b, 1.0), obs=torch.zeros(2))

    def guide():
        with ember.plate("p", 2):
            ember.sample("b", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})

    with pytest.raises(IntractableError, match="no more global than guide enumeration.*'a'.*'b'"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)
    with pytest.raises(NotImplementedError):  # as Pyro raises it
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)
