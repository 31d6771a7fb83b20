"""Hidden Markov model distributions against brute-force summation and the Kalman filter."""

import itertools
import math

import pytest
import torch

import ember.distributions as dist


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def brute_force_discrete(init_logits, trans_logits, obs_dist, x):
    """log p(x) summing over every hidden path z_0..z_{T-1} (the initial state z_-1
    moves by the first transition before the first observation)."""
    S, T = init_logits.size(-1), x.size(0)
    init = init_logits.log_softmax(-1)
    trans = trans_logits.log_softmax(-1).expand(T, S, S)
    obs = obs_dist.expand((T, S)).log_prob(x.unsqueeze(-1))  # (T, S)
    terms = []
    for z_init in range(S):
        for path in itertools.product(range(S), repeat=T):
            lp = init[z_init]
            prev = z_init
            for t, z in enumerate(path):
                lp = lp + trans[t, prev, z] + obs[t, z]
                prev = z
            terms.append(lp)
    return torch.stack(terms).logsumexp(0)


@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("homogeneous", [True, False])
def test_discrete_hmm_log_prob_is_the_sum_over_paths(T, homogeneous):
    torch.manual_seed(T)
    S = 3
    init_logits = torch.randn(S)
    trans_logits = torch.randn(S, S) if homogeneous else torch.randn(T, S, S)
    obs_dist = dist.Normal(torch.randn(S), torch.rand(S) + 0.5)
    hmm = dist.DiscreteHMM(init_logits, trans_logits, obs_dist, duration=T)
    x = torch.randn(T)
    expected = brute_force_discrete(init_logits, trans_logits, obs_dist, x)
    assert torch.allclose(hmm.log_prob(x), expected)


def test_discrete_hmm_filter_and_samples():
    torch.manual_seed(0)
    S, T = 2, 4
    init_logits, trans_logits = torch.randn(S), torch.randn(S, S)
    obs_dist = dist.Normal(torch.tensor([-1.0, 1.0]), 0.7)
    hmm = dist.DiscreteHMM(init_logits, trans_logits, obs_dist, duration=T)
    x = torch.randn(T)
    # filter: p(z_{T-1} = s | x) by brute force: fix the last state
    trans = trans_logits.log_softmax(-1)
    joint = []
    for s in range(S):
        terms = []
        for z_init in range(S):
            for path in itertools.product(range(S), repeat=T - 1):
                full = path + (s,)
                lp = init_logits.log_softmax(-1)[z_init]
                prev = z_init
                for t, z in enumerate(full):
                    lp = lp + trans[prev, z] + obs_dist.log_prob(x[t])[z]
                    prev = z
                terms.append(lp)
        joint.append(torch.stack(terms).logsumexp(0))
    expected = torch.stack(joint).softmax(0)
    assert torch.allclose(hmm.filter(x).probs, expected)
    # sampled sequences have the marginal density: the mean of the first observation
    samples = hmm.sample((40_000,))
    p0 = (init_logits.log_softmax(-1).unsqueeze(-1) + trans).logsumexp(0).exp()
    mean0 = (p0 * obs_dist.loc).sum()
    var0 = (p0 * (obs_dist.scale**2 + obs_dist.loc**2)).sum() - mean0**2
    assert abs(samples[:, 0].mean() - mean0) < 5 * math.sqrt(var0 / 40_000)


def kalman_log_likelihood(init_loc, init_cov, A, Q, H, R, xs):
    """The classic Kalman filter: log p(x_1..x_T) with z_0 ~ N(init), z_t = z_{t-1} A +
    N(0, Q), x_t = z_t H + N(0, R) (row vectors)."""
    m, P = init_loc, init_cov
    total = 0.0
    for x in xs:
        m, P = m @ A, A.T @ P @ A + Q  # predict
        S = H.T @ P @ H + R
        total = total + torch.distributions.MultivariateNormal(m @ H, S).log_prob(x)
        K = P @ H @ torch.linalg.inv(S)  # update
        m = m + (x - m @ H) @ K.T
        P = P - K @ S @ K.T
    return total, m, P


@pytest.mark.parametrize("T", [1, 3, 8])
@pytest.mark.parametrize("diag_obs", [True, False])
def test_gaussian_hmm_is_the_kalman_filter(T, diag_obs):
    torch.manual_seed(T)
    h, o = 2, 3
    init_loc, a = torch.randn(h), torch.randn(h, h)
    init_cov = a @ a.T + 0.5 * torch.eye(h)
    A = 0.5 * torch.randn(h, h)
    b = torch.randn(h, h)
    Q = b @ b.T + 0.2 * torch.eye(h)
    H = torch.randn(h, o)
    r = torch.rand(o) + 0.3
    R = r.pow(2).diag()
    obs_dist = (
        dist.Normal(torch.zeros(o), r).to_event(1)
        if diag_obs
        else dist.MultivariateNormal(torch.zeros(o), R)
    )
    hmm = dist.GaussianHMM(
        dist.MultivariateNormal(init_loc, init_cov),
        A,
        dist.MultivariateNormal(torch.zeros(h), Q),
        H,
        obs_dist,
        duration=T,
    )
    x = torch.randn(T, o)
    expected, m, P = kalman_log_likelihood(init_loc, init_cov, A, Q, H, R, x)
    assert torch.allclose(hmm.log_prob(x), expected)
    post = hmm.filter(x)
    assert torch.allclose(post.loc, m) and torch.allclose(post.covariance_matrix, P)
    # a homogeneous model scores sequences of any length
    free = dist.GaussianHMM(
        dist.MultivariateNormal(init_loc, init_cov),
        A,
        dist.MultivariateNormal(torch.zeros(h), Q),
        H,
        obs_dist,
    )
    assert free.event_shape == (1, o)
    assert torch.allclose(free.log_prob(x), expected)


def test_gaussian_hmm_samples_and_posterior_samples():
    torch.manual_seed(0)
    h = o = 1
    hmm = dist.GaussianHMM(
        dist.Normal(torch.zeros(h), 1.0).to_event(1),
        torch.full((h, h), 0.8),
        dist.Normal(torch.zeros(h), 0.5).to_event(1),
        torch.ones(h, o),
        dist.Normal(torch.zeros(o), 0.3).to_event(1),
        duration=3,
    )
    x = hmm.rsample((100_000,))
    assert x.shape == (100_000, 3, 1)
    # variance of x_1: Var(z_1) + 0.3^2 with Var(z_1) = 0.8^2 * 1 + 0.5^2
    var = 0.8**2 + 0.5**2 + 0.3**2
    assert abs(x[:, 0, 0].var() - var) < 5 * var * math.sqrt(2 / 100_000)
    z = hmm.rsample_posterior(torch.zeros(3, 1), (7,))
    assert z.shape == (7, 3, 1)


def test_prefix_condition_forecasts_the_rest():
    torch.manual_seed(1)
    h, o, T = 2, 1, 5
    A, H = 0.7 * torch.randn(h, h), torch.randn(h, o)
    args = (
        dist.MultivariateNormal(torch.zeros(h), torch.eye(h)),
        A,
        dist.Normal(torch.zeros(h), 0.4).to_event(1),
        H,
        dist.Normal(torch.zeros(o), 0.3).to_event(1),
    )
    full = dist.GaussianHMM(*args, duration=T)
    x = torch.randn(T, o)
    rest = full.prefix_condition(x[:2])
    assert rest.event_shape == (3, o)
    # p(x_1..x_5) = p(x_1, x_2) p(x_3..x_5 | x_1, x_2)
    head = dist.GaussianHMM(*args, duration=2)
    assert torch.allclose(full.log_prob(x), head.log_prob(x[:2]) + rest.log_prob(x[2:]))


def test_gaussian_mrf_against_the_dense_joint():
    torch.manual_seed(2)
    h, o, T = 1, 1, 3

    def mvn(n):
        a = torch.randn(n, n)
        return dist.MultivariateNormal(torch.randn(n), a @ a.T + torch.eye(n))

    init, trans, obs = mvn(h), mvn(2 * h), mvn(h + o)
    mrf = dist.GaussianMRF(init, trans, obs)
    x = torch.randn(1, o)
    # one step: log p(x) = log int p(z0) p(z0, z1) p(z1, x) dz
    #                     - log int p(z0) p(z0, z1) p(z1, x') dz dx'
    grid = torch.linspace(-9, 9, 181)
    z0, z1 = torch.meshgrid(grid, grid, indexing="ij")
    base = init.log_prob(z0.unsqueeze(-1)) + trans.log_prob(torch.stack([z0, z1], -1))
    num = (base + obs.log_prob(torch.stack([z1, x.expand_as(z1)], -1))).logsumexp((0, 1))
    marginal = dist.Normal(obs.loc[0], obs.covariance_matrix[0, 0].sqrt())
    den = (base + marginal.log_prob(z1)).logsumexp((0, 1))
    assert torch.allclose(mrf.log_prob(x), num - den, atol=1e-6)
    assert mrf.event_shape == (1, o) and T == 3


def test_independent_hmm_sums_its_columns():
    torch.manual_seed(3)
    base = dist.GaussianHMM(
        dist.Normal(torch.zeros(3, 1), 1.0).to_event(1),
        torch.full((3, 1, 1, 1), 0.5),  # batch 3, one (repeated) step
        dist.Normal(torch.zeros(3, 1, 1), 1.0).to_event(1),
        torch.ones(3, 1, 1, 1),
        dist.Normal(torch.zeros(3, 1, 1), 1.0).to_event(1),
        duration=4,
    )
    d = dist.IndependentHMM(base)
    assert d.event_shape == (4, 3) and d.batch_shape == ()
    x = d.rsample()
    assert torch.allclose(d.log_prob(x), base.log_prob(x.T.unsqueeze(-1)).sum())


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="transition_logits must end in"):
        dist.DiscreteHMM(torch.zeros(2), torch.zeros(2, 3), dist.Normal(torch.zeros(2), 1.0))
    with pytest.raises(ValueError, match="batch_shape must end in the state dim"):
        dist.DiscreteHMM(torch.zeros(2), torch.zeros(2, 2), dist.Normal(torch.zeros(3), 1.0))
    hmm = dist.DiscreteHMM(torch.zeros(2), torch.zeros(2, 2), dist.Normal(torch.zeros(2), 1.0))
    with pytest.raises(ValueError, match="give duration="):
        hmm.sample()


def test_gamma_gaussian_hmm_integrates_the_scale():
    """log p(x) = log int Gamma(s) GaussianHMM(x; every noise precision times s) ds, the
    integral over s by quadrature on a log grid."""
    torch.manual_seed(4)
    h, o, T = 2, 1, 3
    a = torch.randn(h, h)
    init_cov = a @ a.T + torch.eye(h)
    A, H = 0.6 * torch.randn(h, h), torch.randn(h, o)
    Q, R = 0.5 * torch.eye(h), torch.tensor([[0.4]])
    scale = dist.Gamma(torch.tensor(3.0), torch.tensor(2.0))
    mvn = dist.MultivariateNormal
    hmm = dist.GammaGaussianHMM(
        scale,
        mvn(torch.zeros(h), init_cov),
        A,
        mvn(torch.zeros(h), Q),
        H,
        mvn(torch.zeros(o), R),
        duration=T,
    )
    x = torch.randn(T, o)
    log_s = torch.linspace(-8, 5, 801)
    s = log_s.exp()
    terms = []
    for si in s:
        gh = dist.GaussianHMM(
            mvn(torch.zeros(h), init_cov / si),
            A,
            mvn(torch.zeros(h), Q / si),
            H,
            mvn(torch.zeros(o), R / si),
            duration=T,
        )
        terms.append(gh.log_prob(x))
    integrand = torch.stack(terms) + scale.log_prob(s) + log_s  # ds = s dlog s
    expected = integrand.logsumexp(0) + (log_s[1] - log_s[0]).log()
    assert torch.allclose(hmm.log_prob(x), expected, atol=1e-5)
    scale_post, final = hmm.filter(x)
    assert scale_post.batch_shape == () and final.event_shape == (h,)
