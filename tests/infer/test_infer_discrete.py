"""infer_discrete, TraceEnumSample_ELBO and TraceEnum_ELBO.compute_marginals against
brute force: every joint value of the discrete sites is enumerated with Python
loops, its exact log-joint summed with float64 arithmetic, and the exact MAP and
posterior marginals read off that table. Draws are compared with the exact
marginals by a chi-square test (fixed seed, small significance level).
"""

import itertools
import math
import warnings

import pytest
import scipy.stats
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import TraceEnum_ELBO, config_enumerate, infer_discrete
from ember.infer.discrete import TraceEnumSample_ELBO
from ember.infer.enum_choice import choose_enumerated
from ember.ops import LogFactor

F64 = torch.float64

# ---------------------------------------------------------------- an HMM with 10 steps

T = 10
INIT = torch.tensor([0.6, 0.3, 0.1], dtype=F64)
TRANS = torch.tensor([[0.8, 0.15, 0.05], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6]], dtype=F64)
LOCS = torch.tensor([-1.0, 0.5, 2.0], dtype=F64)
DATA = torch.tensor([-0.8, -1.5, 0.3, 0.9, 2.5, 1.7, 0.2, -0.4, 2.2, 0.6], dtype=F64)


def hmm(data, num_chains=None, num_states=3):
    """A Markov chain of ``len(data)`` hidden states; with ``num_chains``, that many
    independent copies in a plate (one posterior draw each)."""
    init, trans, locs = INIT[:num_states], TRANS[:num_states, :num_states], LOCS[:num_states]
    init = init / init.sum()
    trans = trans / trans.sum(-1, keepdim=True)
    states = []
    with ember.plate("chains", num_chains or 1, dim=-1):
        x = None
        for t in ember.markov(range(len(data))):
            probs = init if x is None else trans[x]
            x = ember.sample(f"x_{t}", dist.Categorical(probs))
            ember.sample(f"y_{t}", dist.Normal(locs[x], 1.0), obs=data[t])
            states.append(x)
    return states


def hmm_tables(num_states):
    init, trans, locs = INIT[:num_states], TRANS[:num_states, :num_states], LOCS[:num_states]
    init = init / init.sum()
    trans = trans / trans.sum(-1, keepdim=True)
    emission = torch.tensor(
        [[float(dist.Normal(locs[s], 1.0).log_prob(y)) for s in range(num_states)] for y in DATA],
        dtype=F64,
    )
    return init.log(), trans.log(), emission


def hmm_log_joint(path, num_states=3):
    """The exact log-joint of one path, with Python floats."""
    log_init, log_trans, emission = hmm_tables(num_states)
    total = float(log_init[path[0]])
    for t, s in enumerate(path):
        if t:
            total += float(log_trans[path[t - 1], s])
        total += float(emission[t, s])
    return total


def all_paths_log_joint(num_states):
    """Every path of the chain (one row each) and its exact log-joint."""
    log_init, log_trans, emission = hmm_tables(num_states)
    paths = torch.tensor(list(itertools.product(range(num_states), repeat=T)))
    logp = log_init[paths[:, 0]] + emission[0, paths[:, 0]]
    for t in range(1, T):
        logp = logp + log_trans[paths[:, t - 1], paths[:, t]] + emission[t, paths[:, t]]
    return paths, logp


def brute_force_hmm(num_states):
    paths, logp = all_paths_log_joint(num_states)
    probs = (logp - logp.logsumexp(0)).exp()
    marginals = torch.stack(
        [torch.zeros(num_states, dtype=F64).index_add_(0, paths[:, t], probs) for t in range(T)]
    )
    best = tuple(int(s) for s in paths[int(logp.argmax())])
    # a spot check of the vectorized table against the scalar formula
    assert float(logp[17]) == pytest.approx(hmm_log_joint(paths[17].tolist(), num_states))
    return best, marginals, logp.logsumexp(0)


def chi_square_pvalue(counts, expected_probs):
    """p-value of observed ``counts`` (one row per test) against ``expected_probs``,
    merging cells with expected counts below 5 into one."""
    n = counts.sum()
    expected = expected_probs * n
    big = expected >= 5
    obs = list(counts[big].tolist()) + ([float(counts[~big].sum())] if (~big).any() else [])
    exp = list(expected[big].tolist()) + ([float(expected[~big].sum())] if (~big).any() else [])
    stat = sum((o - e) ** 2 / e for o, e in zip(obs, exp) if e > 0)
    return scipy.stats.chi2.sf(stat, len(obs) - 1)


@pytest.fixture(autouse=True)
def seeded():
    ember.clear_param_store()
    ember.set_rng_seed(0)
    yield
    ember.clear_param_store()


@pytest.mark.parametrize("num_states", [2, 3])
def test_hmm_map_is_brute_force_argmax(num_states):
    best, _, _ = brute_force_hmm(num_states)
    decoder = infer_discrete(config_enumerate(hmm), first_available_dim=-2, temperature=0)
    states = decoder(DATA, num_states=num_states)
    assert tuple(int(s) for s in states) == best


@pytest.mark.parametrize("num_states", [2, 3])
def test_hmm_samples_match_brute_force_marginals(num_states):
    _, marginals, _ = brute_force_hmm(num_states)
    n = 4000
    sampler = infer_discrete(config_enumerate(hmm), first_available_dim=-2, temperature=1)
    states = sampler(DATA, num_chains=n, num_states=num_states)
    for t in range(T):
        assert states[t].shape == (n,)
        counts = torch.bincount(states[t], minlength=num_states).to(F64)
        assert chi_square_pvalue(counts, marginals[t]) > 1e-3, (t, counts / n, marginals[t])
    # the draws are joint: pairs of neighbours follow the exact pairwise posterior
    paths, logp = all_paths_log_joint(num_states)
    probs = (logp - logp.logsumexp(0)).exp()
    pair = torch.zeros(num_states**2, dtype=F64).index_add_(
        0, paths[:, 4] * num_states + paths[:, 5], probs
    )
    counts = torch.bincount(states[4] * num_states + states[5], minlength=num_states**2)
    assert chi_square_pvalue(counts.to(F64), pair) > 1e-3


def test_hmm_sampled_trace_scores_the_chosen_values():
    sampler = infer_discrete(config_enumerate(hmm), first_available_dim=-2)
    tr = poutine.trace(sampler).get_trace(DATA, num_chains=5)
    assert tr.nodes["x_3"]["value"].shape == (5,)
    path = [int(tr.nodes[f"x_{t}"]["value"][0]) for t in range(T)]
    expected = hmm_log_joint(path)
    actual = sum(
        float(site["fn"].log_prob(site["value"])[0])
        for name, site in tr.nodes.items()
        if site["type"] == "sample" and name != "chains"
    )
    assert actual == pytest.approx(expected, abs=1e-9)


def test_hmm_100_steps_is_linear():
    """A long chain runs (variable elimination along the chain, no exponential table)."""
    data = torch.randn(100, dtype=F64)
    decoder = infer_discrete(config_enumerate(hmm), first_available_dim=-2, temperature=0)
    states = decoder(data)
    assert len(states) == 100 and all(0 <= int(s) < 3 for s in states)


# ---------------------------------------------------------------- a mixture in a plate

WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
SCALES = torch.tensor([0.7, 2.0], dtype=F64)  # a global discrete choice of scale
POINTS = torch.tensor([-1.2, 0.4, 2.9], dtype=F64)
CENTERS = torch.tensor([-1.0, 1.0, 3.0], dtype=F64)


def mixture(data, num_draws=1):
    with ember.plate("draws", num_draws, dim=-2):
        g = ember.sample("g", dist.Bernoulli(torch.tensor(0.4, dtype=F64)))
        scale = SCALES[g.long()]
        with ember.plate("data", len(data), dim=-1):
            z = ember.sample("z", dist.Categorical(WEIGHTS))
            ember.sample("x", dist.Normal(CENTERS[z], scale), obs=data)
    return g, z


def brute_force_mixture():
    table = {}
    for g in (0, 1):
        for zs in itertools.product(range(3), repeat=len(POINTS)):
            lp = math.log(0.4 if g else 0.6)
            for z, x in zip(zs, POINTS):
                lp += math.log(WEIGHTS[z]) + float(dist.Normal(CENTERS[z], SCALES[g]).log_prob(x))
            table[(g,) + zs] = lp
    keys = list(table)
    logp = torch.tensor([table[k] for k in keys], dtype=F64)
    return keys, (logp - logp.logsumexp(0)).exp(), keys[int(logp.argmax())]


def test_mixture_map_is_brute_force_argmax():
    _, _, best = brute_force_mixture()
    g, z = infer_discrete(config_enumerate(mixture), first_available_dim=-3, temperature=0)(POINTS)
    assert (int(g.reshape(-1)[0]),) + tuple(int(v) for v in z.reshape(-1)) == best


def test_mixture_samples_match_brute_force_joint():
    keys, probs, _ = brute_force_mixture()
    n = 6000
    g, z = infer_discrete(config_enumerate(mixture), first_available_dim=-3)(POINTS, n)
    assert g.shape == (n, 1) and z.shape == (n, 3)
    index = {k: i for i, k in enumerate(keys)}
    codes = [index[(int(a),) + tuple(int(v) for v in b)] for a, b in zip(g[:, 0], z)]
    counts = torch.bincount(torch.tensor(codes), minlength=len(keys)).to(F64)
    assert chi_square_pvalue(counts, probs) > 1e-3


def test_enumeration_warning_and_bad_arguments():
    def model():
        ember.sample("x", dist.Categorical(torch.ones(3)))

    with pytest.warns(UserWarning, match="found no sample sites configured"):
        infer_discrete(model, first_available_dim=-1)()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        infer_discrete(model, first_available_dim=-1, strict_enumeration_warning=False)()
    with pytest.raises(ValueError, match="temperature"):
        infer_discrete(model, first_available_dim=-1, temperature=0.5)
    with pytest.raises(ValueError, match="first_available_dim"):
        infer_discrete(model, first_available_dim=0)


def test_choose_enumerated_rejects_plate_coupling():
    a = LogFactor(torch.zeros(3, 2), ("p", "a"), frozenset({"p"}), "a")
    b = LogFactor(torch.zeros(2), ("b",), frozenset(), "b")
    ab = LogFactor(torch.zeros(3, 2, 2), ("p", "a", "b"), frozenset({"p"}), "ab")
    var_ordinals = {"a": frozenset({"p"}), "b": frozenset()}
    out = choose_enumerated([a, b, ab], var_ordinals)  # b global, a local: fine
    assert out["a"][0].shape == (3,) and out["b"][0].shape == ()
    q = LogFactor(torch.zeros(4, 2), ("q", "c"), frozenset({"q"}), "c")
    ac = LogFactor(torch.zeros(3, 4, 2, 2), ("p", "q", "a", "c"), frozenset({"p", "q"}), "ac")
    with pytest.raises(ValueError, match="cannot eliminate"):
        choose_enumerated([a, q, ac], {"a": frozenset({"p"}), "c": frozenset({"q"})})


# ---------------------------------------------------------------- ELBO-based samplers


def test_trace_enum_sample_elbo_matches_loss_and_posterior():
    _, marginals, log_z = brute_force_hmm(2)
    elbo = TraceEnumSample_ELBO(max_plate_nesting=1)
    model = config_enumerate(hmm)
    n = 3000
    loss = elbo.loss(model, lambda *a, **k: None, DATA, num_chains=n, num_states=2)
    assert loss == pytest.approx(-n * float(log_z), rel=1e-6)
    states = elbo.sample_saved()
    for t in (0, 5, 9):
        counts = torch.bincount(states[t], minlength=2).to(F64)
        assert chi_square_pvalue(counts, marginals[t]) > 1e-3


def test_compute_marginals_equals_brute_force():
    _, marginals, _ = brute_force_hmm(3)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    found = elbo.compute_marginals(config_enumerate(hmm), lambda *a, **k: None, DATA)
    for t in range(T):
        assert torch.allclose(found[f"x_{t}"].probs.reshape(-1).to(F64), marginals[t], atol=1e-6)


def test_compute_marginals_in_a_plate_equals_brute_force():
    keys, probs, _ = brute_force_mixture()
    g_marginal = sum(float(p) for k, p in zip(keys, probs) if k[0] == 1)
    z_marginals = torch.zeros(len(POINTS), 3, dtype=F64)
    for k, p in zip(keys, probs):
        for i, z in enumerate(k[1:]):
            z_marginals[i, z] += p
    elbo = TraceEnum_ELBO(max_plate_nesting=2)
    found = elbo.compute_marginals(config_enumerate(mixture), lambda *a, **k: None, POINTS)
    assert float(found["g"].probs.reshape(-1)[0]) == pytest.approx(g_marginal, abs=1e-9)
    assert torch.allclose(found["z"].probs.reshape(-1, 3).to(F64), z_marginals, atol=1e-9)


def test_monte_carlo_enumeration_is_refused():
    def model():
        ember.sample("z", dist.Categorical(torch.ones(3) / 3))

    sampler = infer_discrete(config_enumerate(model, num_samples=4), first_available_dim=-1)
    with pytest.raises(ValueError, match="num_samples"):
        sampler()


def test_scale_does_not_temper_the_posterior():
    """A subsampled plate scales its sites' terms in a loss; the choices still
    follow the posterior given the data (the MAP of each element is its own)."""
    data = torch.tensor([-1.1, 0.9, 3.2, 2.8], dtype=F64)

    @config_enumerate
    def model(n):
        with ember.plate("draws", n, dim=-2), poutine.scale(scale=50.0):
            with ember.plate("data", 4, dim=-1):
                z = ember.sample("z", dist.Categorical(WEIGHTS))
                ember.sample("x", dist.Normal(CENTERS[z], 1.5), obs=data)
        return z

    n = 4000
    z = infer_discrete(model, first_available_dim=-3)(n)
    for i, x in enumerate(data):
        logp = WEIGHTS.log() + dist.Normal(CENTERS, 1.5).log_prob(x)
        probs = (logp - logp.logsumexp(0)).exp()
        counts = torch.bincount(z[:, i], minlength=3).to(F64)
        assert chi_square_pvalue(counts, probs) > 1e-3


def test_subsampled_plate_keeps_its_subsample():
    """The choices are made for the subsample drawn in the enumerated run; the model
    is replayed with that same subsample."""
    data = torch.tensor([-1.0, 1.0, 3.0, 1.0, -1.0, 3.0, 3.0, 1.0], dtype=F64)

    @config_enumerate
    def model():
        with ember.plate("data", len(data), subsample_size=3) as idx:
            z = ember.sample("z", dist.Categorical(WEIGHTS))
            ember.sample("x", dist.Normal(CENTERS[z], 0.1), obs=data[idx])
        return idx, z

    decoder = infer_discrete(model, first_available_dim=-2, temperature=0)
    for _ in range(5):
        idx, z = decoder()
        assert torch.equal(CENTERS[z], data[idx])
