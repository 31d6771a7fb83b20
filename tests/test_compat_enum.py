"""Integration: discrete enumeration as Pyro users write it
(``config_enumerate``, ``TraceEnum_ELBO``, ``pyro.markov``), checked against
brute-force sums over every discrete assignment."""

import itertools
import math

import pytest
import torch

import ember as pyro
import ember.distributions as dist
from ember import poutine
from ember.distributions import constraints
from ember.infer import SVI, TraceEnum_ELBO, config_enumerate
from ember.optim import Adam


@pytest.fixture(autouse=True)
def _fresh_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


DATA = torch.tensor([-2.1, -1.7, 0.2, 2.9, 3.4, 2.2])


@config_enumerate
def gmm_model(data):
    weights = pyro.param("weights", torch.tensor([0.3, 0.7]), constraint=constraints.simplex)
    locs = pyro.param("locs", torch.tensor([-1.0, 2.0]))
    scale = pyro.param("scale", torch.tensor(1.2), constraint=constraints.positive)
    with pyro.plate("data", len(data)):
        z = pyro.sample("z", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[z], scale), obs=data)


def gmm_guide(data):
    pass


def gmm_brute_force_loglik(data):
    w = pyro.param("weights")
    locs = pyro.param("locs")
    scale = pyro.param("scale")
    total = 0.0
    for x in data.tolist():
        total += torch.logsumexp(
            torch.stack(
                [
                    w[k].log() + dist.Normal(locs[k], scale).log_prob(torch.tensor(x))
                    for k in range(2)
                ]
            ),
            0,
        )
    return total


def test_gmm_loss_is_exact_marginal_likelihood():
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.loss(gmm_model, gmm_guide, DATA)
    assert isinstance(loss, float)
    expected = -gmm_brute_force_loglik(DATA).item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_gmm_gradient_matches_brute_force():
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.differentiable_loss(gmm_model, gmm_guide, DATA)
    names = ["weights", "locs", "scale"]
    raws = [pyro.param(n).unconstrained() for n in names]
    grads = torch.autograd.grad(loss, raws)
    expected = torch.autograd.grad(-gmm_brute_force_loglik(DATA), raws)
    for n, g, e in zip(names, grads, expected):
        assert torch.allclose(g, e, atol=1e-4), (n, g, e)


def test_gmm_svi_increases_marginal_likelihood():
    svi = SVI(gmm_model, gmm_guide, Adam({"lr": 0.1}), loss=TraceEnum_ELBO(max_plate_nesting=1))
    first = svi.step(DATA)
    for _ in range(60):
        last = svi.step(DATA)
    assert last < first - 1.0
    # step() returns the loss before its update; evaluate at the final params
    final = TraceEnum_ELBO(max_plate_nesting=1).loss(gmm_model, gmm_guide, DATA)
    assert final == pytest.approx(-gmm_brute_force_loglik(DATA).item(), rel=1e-5)
    assert final <= last + 1e-3
    locs = sorted(pyro.param("locs").tolist())
    assert locs[0] < -0.5 and locs[1] > 1.5


def test_gmm_with_global_latent_in_guide_enumerated_in_model():
    # a continuous global latent sampled by the guide plus enumerated local ones:
    # with a Delta guide the loss is -log p(data, loc) at that loc
    @config_enumerate
    def model(data):
        shift = pyro.sample("shift", dist.Normal(0.0, 5.0))
        with pyro.plate("data", len(data)):
            z = pyro.sample("z", dist.Bernoulli(0.4))
            pyro.sample("obs", dist.Normal(shift + 3.0 * z, 1.0), obs=data)

    def guide(data):
        pyro.sample("shift", dist.Delta(torch.tensor(-1.5)))

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide, DATA)
    shift = torch.tensor(-1.5)
    expected = dist.Normal(0.0, 5.0).log_prob(shift)
    for x in DATA:
        expected = expected + torch.logsumexp(
            torch.stack(
                [
                    math.log(0.6) + dist.Normal(shift, 1.0).log_prob(x),
                    math.log(0.4) + dist.Normal(shift + 3.0, 1.0).log_prob(x),
                ]
            ),
            0,
        )
    assert loss == pytest.approx(-expected.item(), rel=1e-5)


def test_enumerated_trace_shapes():
    elbo_model = poutine.enum(config_enumerate(gmm_model), first_available_dim=-2)
    tr = poutine.trace(elbo_model).get_trace(DATA)
    z = tr.nodes["z"]
    assert z["infer"]["enumerate"] == "parallel"
    # the enumerated value lives in a fresh dim left of the plate dim
    assert z["value"].shape == (2, 1)
    assert torch.equal(z["value"].reshape(-1), torch.arange(2))


# --------------------------------------------------------------------------
# HMM with pyro.markov
# --------------------------------------------------------------------------

TRANS = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
INIT = torch.tensor([0.5, 0.3, 0.2])
EMIT_LOCS = torch.tensor([-1.0, 0.5, 2.0])
SEQ = torch.tensor([-0.8, -1.2, 0.4, 1.9, 2.3])


def hmm_model(seq):
    state = pyro.sample("x_0", dist.Categorical(INIT), infer={"enumerate": "parallel"})
    pyro.sample("y_0", dist.Normal(EMIT_LOCS[state], 0.7), obs=seq[0])
    for t in pyro.markov(range(1, len(seq))):
        state = pyro.sample(
            f"x_{t}", dist.Categorical(TRANS[state]), infer={"enumerate": "parallel"}
        )
        pyro.sample(f"y_{t}", dist.Normal(EMIT_LOCS[state], 0.7), obs=seq[t])


def hmm_brute_force(seq):
    terms = []
    for path in itertools.product(range(3), repeat=len(seq)):
        lp = INIT[path[0]].log()
        for t, s in enumerate(path):
            if t:
                lp = lp + TRANS[path[t - 1], s].log()
            lp = lp + dist.Normal(EMIT_LOCS[s], 0.7).log_prob(seq[t])
        terms.append(lp)
    return torch.logsumexp(torch.stack(terms), 0)


def test_hmm_markov_loss_matches_brute_force():
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(hmm_model, lambda seq: None, SEQ)
    assert loss == pytest.approx(-hmm_brute_force(SEQ).item(), rel=1e-5)


def test_hmm_markov_reuses_enumeration_dims():
    enum_model = poutine.enum(hmm_model, first_available_dim=-1)
    tr = poutine.trace(enum_model).get_trace(SEQ)
    dims = {tr.nodes[f"x_{t}"]["value"].dim() for t in range(len(SEQ))}
    # markov lets the chain recycle a bounded number of dims (Pyro uses 2)
    assert max(dims) <= 3


def test_vectorized_hmm_over_sequences_with_plate():
    seqs = torch.stack([SEQ, SEQ.flip(0) - 0.5])

    @config_enumerate
    def model(seqs):
        with pyro.plate("sequences", len(seqs), dim=-1):
            state = pyro.sample("x_0", dist.Categorical(INIT))
            pyro.sample("y_0", dist.Normal(EMIT_LOCS[state], 0.7), obs=seqs[:, 0])
            for t in pyro.markov(range(1, seqs.shape[1])):
                state = pyro.sample(f"x_{t}", dist.Categorical(TRANS[state]))
                pyro.sample(f"y_{t}", dist.Normal(EMIT_LOCS[state], 0.7), obs=seqs[:, t])

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, lambda seqs: None, seqs)
    expected = hmm_brute_force(seqs[0]) + hmm_brute_force(seqs[1])
    assert loss == pytest.approx(-expected.item(), rel=1e-5)
