"""TraceEnum_ELBO against brute-force marginal likelihoods computed with loops."""

import itertools
import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import TraceEnum_ELBO, config_enumerate
from ember.infer.enum_factors import site_log_prob, support_log_prob
from ember.ops import IntractableError


def normal_logpdf(x, loc, scale=1.0):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def logsumexp(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


@pytest.fixture(autouse=True)
def clean_param_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


# ----------------------------------------------------------------------------- mixture
WEIGHTS = [0.2, 0.5, 0.3]
LOCS = [-2.0, 0.5, 3.0]
MIX_DATA = [-2.3, -1.1, 0.0, 0.4, 0.9, 2.2, 3.1, 3.5, -0.5, 1.7]


def mixture_model(data, locs=None):
    weights = torch.tensor(WEIGHTS, dtype=data.dtype)
    if locs is None:
        locs = torch.tensor(LOCS, dtype=data.dtype)
    with ember.plate("data", len(data)):
        z = ember.sample("z", dist.Categorical(weights))
        ember.sample("x", dist.Normal(locs[z], 1.0), obs=data)


def brute_mixture(data, locs=LOCS):
    return sum(
        logsumexp([math.log(w) + normal_logpdf(x, m) for w, m in zip(WEIGHTS, locs)]) for x in data
    )


def empty_guide(*args, **kwargs):
    pass


@pytest.mark.parametrize("vectorize", [False, True])
def test_mixture_loss_is_exact_marginal(vectorize):
    data = torch.tensor(MIX_DATA, dtype=torch.float64)
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=2, vectorize_particles=vectorize)
    loss = elbo.loss(config_enumerate(mixture_model), empty_guide, data)
    assert loss == pytest.approx(-brute_mixture(MIX_DATA), rel=1e-10)


def test_mixture_infers_max_plate_nesting():
    data = torch.tensor(MIX_DATA, dtype=torch.float64)
    loss = TraceEnum_ELBO().loss(config_enumerate(mixture_model), empty_guide, data)
    assert loss == pytest.approx(-brute_mixture(MIX_DATA), rel=1e-10)


def test_mixture_with_delta_guide_gradient_is_exact():
    data = torch.tensor(MIX_DATA, dtype=torch.float64)
    init = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)

    @config_enumerate
    def model(data):
        locs = ember.sample("locs", dist.Normal(torch.zeros(3, dtype=data.dtype), 10.0).to_event(1))
        mixture_model(data, locs)

    def guide(data):
        loc = ember.param("locs_q", init.clone())
        ember.sample("locs", dist.Delta(loc, event_dim=1))

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.loss_and_grads(model, guide, data)
    grad = ember.get_param_store().get_param("locs_q").grad

    locs = init.clone().requires_grad_()
    log_joint = dist.Normal(torch.zeros(3, dtype=data.dtype), 10.0).log_prob(locs).sum()
    comp = torch.tensor(WEIGHTS, dtype=data.dtype).log() + dist.Normal(locs, 1.0).log_prob(
        data.unsqueeze(-1)
    )
    log_joint = log_joint + torch.logsumexp(comp, -1).sum()
    log_joint.backward()
    expected = -(
        dist.Normal(torch.zeros(3, dtype=data.dtype), 10.0).log_prob(init).sum().item()
        + brute_mixture(MIX_DATA, init.tolist())
    )
    assert loss == pytest.approx(expected, rel=1e-10)
    # the gradient of -loss is the gradient of the exact log marginal likelihood
    assert torch.allclose(-grad, locs.grad, atol=1e-10)


def test_guide_side_enumeration_is_exact_expectation():
    data = torch.tensor(MIX_DATA[:4], dtype=torch.float64)
    q_logits = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def guide(data):
        logits = ember.param("q_logits", q_logits.clone())
        with ember.plate("data", len(data)):
            ember.sample("z", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.loss_and_grads(mixture_model, guide, data)
    grad = ember.get_param_store().get_param("q_logits").grad

    logits = q_logits.clone().requires_grad_()
    logq = logits.log_softmax(-1)
    logp = torch.tensor(WEIGHTS, dtype=data.dtype).log() + dist.Normal(
        torch.tensor(LOCS, dtype=data.dtype), 1.0
    ).log_prob(data.unsqueeze(-1))
    exact = (logq.exp() * (logp - logq)).sum()
    (-exact).backward()
    assert loss == pytest.approx(-exact.item(), rel=1e-10)
    assert torch.allclose(grad, logits.grad, atol=1e-10)
    # the ELBO is below the exact marginal likelihood
    assert -loss <= brute_mixture(MIX_DATA[:4]) + 1e-12


# ----------------------------------------------------------------------------- nested plates
PA = [0.3, 0.7]
PB = [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]
PC = [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]
MU = [-1.0, 2.0]
NESTED_DATA = [[0.1, 1.5], [-0.7, 2.2], [1.9, -1.2]]  # indexed [q][p]; q at dim -2, p at dim -1


@config_enumerate
def nested_model(data):
    dt = data.dtype
    a = ember.sample("a", dist.Categorical(torch.tensor(PA, dtype=dt)))
    with ember.plate("p", 2, dim=-1):
        b = ember.sample("b", dist.Categorical(torch.tensor(PB, dtype=dt)[a]))
        with ember.plate("q", 3, dim=-2):
            c = ember.sample("c", dist.Categorical(torch.tensor(PC, dtype=dt)[b]))
            ember.sample("x", dist.Normal(torch.tensor(MU, dtype=dt)[c], 1.0), obs=data)


def brute_nested():
    terms = []
    for a in range(2):
        for bs in itertools.product(range(3), repeat=2):
            for cs in itertools.product(range(2), repeat=6):
                lp = math.log(PA[a])
                for j in range(2):
                    lp += math.log(PB[a][bs[j]])
                    for i in range(3):
                        c = cs[3 * j + i]
                        lp += math.log(PC[bs[j]][c]) + normal_logpdf(NESTED_DATA[i][j], MU[c])
                terms.append(lp)
    return logsumexp(terms)


def test_nested_plates_loss_is_exact_marginal():
    data = torch.tensor(NESTED_DATA, dtype=torch.float64)
    loss = TraceEnum_ELBO(max_plate_nesting=2).loss(nested_model, empty_guide, data)
    assert loss == pytest.approx(-brute_nested(), rel=1e-10)


# ----------------------------------------------------------------------------- HMM
INIT = [0.6, 0.3, 0.1]
TRANS = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]
EMIT = [-1.0, 0.0, 2.0]
YS = [[-0.8, 0.3, 1.9, 2.5], [0.1, -1.2, -0.4, 2.0]]


def hmm_model(ys, history=1):
    dt = ys.dtype
    trans = torch.tensor(TRANS, dtype=dt)
    with ember.plate("sequences", ys.shape[0], dim=-1):
        x = None
        for t in poutine.markov(range(ys.shape[1]), history=history):
            probs = torch.tensor(INIT, dtype=dt) if x is None else trans[x]
            x = ember.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
            ember.sample(f"y_{t}", dist.Normal(torch.tensor(EMIT, dtype=dt)[x], 1.0), obs=ys[:, t])


def brute_hmm():
    total = 0.0
    for seq in YS:
        terms = []
        for xs in itertools.product(range(3), repeat=len(seq)):
            lp = math.log(INIT[xs[0]])
            for t, y in enumerate(seq):
                if t:
                    lp += math.log(TRANS[xs[t - 1]][xs[t]])
                lp += normal_logpdf(y, EMIT[xs[t]])
            terms.append(lp)
        total += logsumexp(terms)
    return total


@pytest.mark.parametrize("history", [1, 2, 3])
def test_hmm_loss_is_exact_marginal(history):
    ys = torch.tensor(YS, dtype=torch.float64)
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(hmm_model, empty_guide, ys, history)
    assert loss == pytest.approx(-brute_hmm(), rel=1e-10)


def test_hmm_recycles_enumeration_dims():
    ys = torch.tensor(YS, dtype=torch.float64)
    trace = poutine.trace(poutine.enum(hmm_model, first_available_dim=-2)).get_trace(ys)
    shapes = [tuple(trace.nodes[f"x_{t}"]["value"].shape) for t in range(4)]
    assert shapes == [(3, 1), (3, 1, 1), (3, 1), (3, 1, 1)]


# ----------------------------------------------------------------------------- sequential
def test_sequential_matches_parallel_in_model():
    data = torch.tensor(MIX_DATA[:3], dtype=torch.float64)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    parallel = elbo.loss(config_enumerate(mixture_model), empty_guide, data)
    sequential = elbo.loss(config_enumerate(mixture_model, "sequential"), empty_guide, data)
    assert sequential == pytest.approx(parallel, rel=1e-10)
    assert parallel == pytest.approx(-brute_mixture(MIX_DATA[:3]), rel=1e-10)


def test_sequential_matches_parallel_in_guide():
    data = torch.tensor(MIX_DATA[:3], dtype=torch.float64)
    q_logits = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def guide(data):
        logits = ember.param("q_logits", q_logits.clone())
        a = ember.sample("a", dist.Bernoulli(torch.tensor(0.3, dtype=data.dtype)))
        with ember.plate("data", len(data)):
            ember.sample("z", dist.Categorical(logits=logits + a.unsqueeze(-1)))

    @config_enumerate
    def model(data):
        ember.sample("a", dist.Bernoulli(torch.tensor(0.6, dtype=data.dtype)))
        mixture_model(data)

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    grads = []
    losses = []
    for strategy in ["parallel", "sequential"]:
        ember.clear_param_store()
        losses.append(elbo.loss_and_grads(model, config_enumerate(guide, strategy), data))
        grads.append(ember.get_param_store().get_param("q_logits").grad)
    assert losses[0] == pytest.approx(losses[1], rel=1e-10)
    assert torch.allclose(grads[0], grads[1], atol=1e-10)


# ----------------------------------------------------------------------------- errors
def test_intractable_model_names_site_and_plate():
    @config_enumerate
    def model():
        with ember.plate("p", 3):
            x = ember.sample("x", dist.Categorical(torch.tensor([0.5, 0.5])))
        ember.sample("y", dist.Bernoulli(torch.tensor([0.1, 0.9])[x]))

    for _ in range(2):  # plans are cached; a failed plan is not, so it fails again
        with pytest.raises(IntractableError, match=r"site 'y'.*enumerated site 'x'.*plate \{'p'\}"):
            TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide)


def test_warns_without_enumerated_sites():
    def model():
        ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))

    with pytest.warns(UserWarning, match="no sample sites configured for enumeration"):
        TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide)


def test_hmm_gradient_matches_brute_force():
    ys = torch.tensor(YS, dtype=torch.float64)
    init_logits = torch.zeros(3, 3, dtype=torch.float64)

    def model(ys):
        trans = ember.param("trans_logits", init_logits.clone()).softmax(-1)
        with ember.plate("sequences", ys.shape[0], dim=-1):
            x = None
            for t in poutine.markov(range(ys.shape[1])):
                probs = torch.tensor(INIT, dtype=ys.dtype) if x is None else trans[x]
                x = ember.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
                loc = torch.tensor(EMIT, dtype=ys.dtype)[x]
                ember.sample(f"y_{t}", dist.Normal(loc, 1.0), obs=ys[:, t])

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss_and_grads(model, empty_guide, ys)
    grad = ember.get_param_store().get_param("trans_logits").grad

    logits = init_logits.clone().requires_grad_()
    trans = logits.softmax(-1)
    total = 0.0
    for seq in YS:
        terms = []
        for xs in itertools.product(range(3), repeat=4):
            lp = torch.tensor(INIT[xs[0]], dtype=torch.float64).log()
            for t, y in enumerate(seq):
                if t:
                    lp = lp + trans[xs[t - 1], xs[t]].log()
                lp = lp + normal_logpdf(y, EMIT[xs[t]])
            terms.append(lp)
        total = total + torch.logsumexp(torch.stack(terms), 0)
    total.backward()
    assert loss == pytest.approx(-total.item(), rel=1e-10)
    assert torch.allclose(-grad, logits.grad, atol=1e-10)


def test_guide_side_markov_chain_is_exact_expectation():
    ys = torch.tensor(YS[:1], dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    q_init = torch.randn(3, dtype=torch.float64, generator=g).log_softmax(-1)
    q_trans = torch.randn(3, 3, dtype=torch.float64, generator=g).log_softmax(-1)

    def guide(ys):
        with ember.plate("sequences", 1, dim=-1):
            x = None
            for t in poutine.markov(range(4)):
                logits = q_init if x is None else q_trans[x]
                x = ember.sample(
                    f"x_{t}", dist.Categorical(logits=logits), infer={"enumerate": "parallel"}
                )

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(hmm_model, guide, ys)
    expected = 0.0
    for xs in itertools.product(range(3), repeat=4):
        logq = q_init[xs[0]].item() + sum(q_trans[xs[t - 1], xs[t]].item() for t in range(1, 4))
        logp = math.log(INIT[xs[0]])
        for t, y in enumerate(YS[0]):
            if t:
                logp += math.log(TRANS[xs[t - 1]][xs[t]])
            logp += normal_logpdf(y, EMIT[xs[t]])
        expected += math.exp(logq) * (logp - logq)
    assert loss == pytest.approx(-expected, rel=1e-10)


def test_monte_carlo_enumeration_is_unbiased():
    data = torch.tensor(MIX_DATA[:2], dtype=torch.float64)
    ember.set_rng_seed(0)

    @config_enumerate(num_samples=4000)
    def model(data):
        a = ember.sample("a", dist.Categorical(torch.tensor(WEIGHTS, dtype=data.dtype)))
        locs = torch.tensor(LOCS, dtype=data.dtype)
        with ember.plate("data", len(data)):
            ember.sample("x", dist.Normal(locs[a], 1.0), obs=data)

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide, data)
    exact = logsumexp(
        [
            math.log(w) + sum(normal_logpdf(x, m) for x in MIX_DATA[:2])
            for w, m in zip(WEIGHTS, LOCS)
        ]
    )
    # log of a mean of 4000 likelihood draws; its std error via the delta method
    lik = [math.exp(sum(normal_logpdf(x, m) for x in MIX_DATA[:2]) - exact) for m in LOCS]
    var = sum(w * v**2 for w, v in zip(WEIGHTS, lik)) - 1.0
    assert abs(-loss - exact) < 5 * math.sqrt(var / 4000)


def test_score_function_gradient_of_sampled_guide_site_is_unbiased():
    data = torch.tensor(MIX_DATA[:4], dtype=torch.float64)
    dt = data.dtype

    @config_enumerate
    def model(data):
        b = ember.sample("b", dist.Bernoulli(torch.tensor(0.3, dtype=dt)))
        with ember.plate("data", len(data)):
            z = ember.sample("z", dist.Categorical(torch.tensor(WEIGHTS, dtype=dt)))
            ember.sample("x", dist.Normal(torch.tensor(LOCS, dtype=dt)[z] + b, 1.0), obs=data)

    def guide(data):
        q = ember.param("q_logit", torch.tensor(0.2, dtype=dt))
        ember.sample("b", dist.Bernoulli(logits=q))

    # exact gradient of the ELBO by summing over b by hand
    q = torch.tensor(0.2, dtype=dt, requires_grad=True)
    exact = 0.0
    for b in (0.0, 1.0):
        logq = dist.Bernoulli(logits=q).log_prob(torch.tensor(b, dtype=dt))
        logp = math.log(0.3 if b else 0.7) + brute_mixture(MIX_DATA[:4], [m + b for m in LOCS])
        exact = exact + logq.exp() * (logp - logq)
    (-exact).backward()

    ember.set_rng_seed(0)
    elbo = TraceEnum_ELBO(max_plate_nesting=1, num_particles=500, vectorize_particles=True)
    grads = []
    for _ in range(10):
        ember.clear_param_store()
        elbo.loss_and_grads(model, guide, data)
        grads.append(ember.get_param_store().get_param("q_logit").grad.item())
    grads = torch.tensor(grads, dtype=dt)
    se = grads.std() / math.sqrt(len(grads))
    assert abs(grads.mean().item() - q.grad.item()) < 4 * se.item() + 1e-12
    assert se.item() < 0.2 * abs(q.grad.item())  # the test has power to see a wrong sign


def test_undeclared_batch_dim_is_reported():
    @config_enumerate
    def model():
        z = ember.sample("z", dist.Categorical(torch.ones(2) / 2))
        ember.sample("x", dist.Normal(torch.zeros(3) + z, 1.0), obs=torch.zeros(3))

    with pytest.raises(ValueError, match="site 'x'.*no plate in scope owns it"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide)


SEQ_X = [0.7, -0.2, 1.5]


def seq_par_model():
    f64 = torch.float64
    a = ember.sample(
        "a", dist.Bernoulli(torch.tensor(0.3, dtype=f64)), infer={"enumerate": "sequential"}
    )
    g = ember.sample("g", dist.Bernoulli(torch.tensor(0.6, dtype=f64)))
    with ember.plate("data", len(SEQ_X)):
        ember.sample("x", dist.Normal(a + 2 * g, 1.0), obs=torch.tensor(SEQ_X, dtype=f64))


def brute_seq_par_elbo(q):
    elbo = 0.0
    for g in (0, 1):
        qg = q if g else 1 - q
        terms = [
            math.log(0.3 if a else 0.7)
            + math.log(0.6 if g else 0.4)
            + sum(normal_logpdf(x, a + 2 * g) for x in SEQ_X)
            for a in (0, 1)
        ]
        elbo += qg * (logsumexp(terms) - math.log(qg))
    return elbo


def test_sequential_model_with_parallel_guide_is_exact():
    def guide():
        q = ember.param("q", torch.tensor(0.25, dtype=torch.float64))
        ember.sample("g", dist.Bernoulli(q), infer={"enumerate": "parallel"})

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.loss_and_grads(seq_par_model, guide)
    assert loss == pytest.approx(-brute_seq_par_elbo(0.25), rel=1e-10)
    # the gradient in q against a central finite difference of the brute force
    eps = 1e-6
    fd = -(brute_seq_par_elbo(0.25 + eps) - brute_seq_par_elbo(0.25 - eps)) / (2 * eps)
    grad = ember.get_param_store().get_param("q").grad
    assert grad.item() == pytest.approx(fd, rel=1e-6)


def test_sequential_model_with_plate_local_parallel_guide_is_rejected():
    def model():
        f64 = torch.float64
        a = ember.sample(
            "a", dist.Bernoulli(torch.tensor(0.3, dtype=f64)), infer={"enumerate": "sequential"}
        )
        with ember.plate("data", 3):
            g = ember.sample("g", dist.Bernoulli(torch.tensor(0.6, dtype=f64)))
            ember.sample("x", dist.Normal(a + 2 * g, 1.0), obs=torch.zeros(3, dtype=f64))

    def guide():
        with ember.plate("data", 3):
            ember.sample(
                "g",
                dist.Bernoulli(torch.tensor(0.5, dtype=torch.float64)),
                infer={"enumerate": "parallel"},
            )

    with pytest.raises(ValueError, match=r"guide site 'g'.*plate\(s\) 'data'.*\['a'\]"):
        TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)


def test_sampled_guide_site_depending_on_enumerated_one_is_averaged_without_bias():
    # b is drawn once per value of the enumerated a; the ELBO and its gradient average
    # over a exactly and over b by Monte Carlo (score function for b's parameter)
    f64 = torch.float64

    def model():
        a = ember.sample("a", dist.Bernoulli(torch.tensor(0.5, dtype=f64)))
        ember.sample("b", dist.Bernoulli(0.2 + 0.5 * a))

    def guide():
        qb = ember.param("qb", torch.tensor(0.3, dtype=f64))
        a = ember.sample(
            "a", dist.Bernoulli(torch.tensor(0.4, dtype=f64)), infer={"enumerate": "parallel"}
        )
        ember.sample("b", dist.Bernoulli(qb + 0.3 * a))

    def exact_elbo(qb):
        total = 0.0
        for a in (0, 1):
            qa = 0.4 if a else 0.6
            q1 = qb + 0.3 * a
            p1 = 0.2 + 0.5 * a
            for b in (0, 1):
                qab = q1 if b else 1 - q1
                pab = p1 if b else 1 - p1
                total = total + qa * qab * (math.log(0.5) + math.log(pab) - math.log(qa))
                total = total - qa * qab * torch.log(qab)
        return total

    qb = torch.tensor(0.3, dtype=f64, requires_grad=True)
    exact = exact_elbo(qb)
    (exact_grad,) = torch.autograd.grad(exact, [qb])
    n = 20000
    ember.set_rng_seed(0)
    elbo = TraceEnum_ELBO(max_plate_nesting=0, num_particles=n, vectorize_particles=True)
    loss = elbo.loss_and_grads(model, guide)
    # per particle: sum over a of q(a) f(a, b_a), b_a drawn independently per a; the
    # gradient's terms are q(a) (d log q(b_a|a) f(a, b_a) - d log q(b_a|a))
    var = grad_var = 0.0
    for a in (0, 1):
        qa, q1, p1 = (0.4 if a else 0.6), 0.3 + 0.3 * a, 0.2 + 0.5 * a
        f = [
            math.log(0.5)
            + math.log(p1 if b else 1 - p1)
            - math.log(qa)
            - math.log(q1 if b else 1 - q1)
            for b in (0, 1)
        ]
        g = [(1 / q1 if b else -1 / (1 - q1)) * (f[b] - 1) for b in (0, 1)]
        for values, out in ((f, "f"), (g, "g")):
            mean = q1 * values[1] + (1 - q1) * values[0]
            v = qa**2 * (q1 * (values[1] - mean) ** 2 + (1 - q1) * (values[0] - mean) ** 2)
            if out == "f":
                var += v
            else:
                grad_var += v
    assert abs(-loss - exact.item()) < 4 * math.sqrt(var / n)
    grad = ember.param("qb").grad.item()
    assert abs(-grad - exact_grad.item()) < 4 * math.sqrt(grad_var / n)


def test_subsampled_plate_scales_the_local_marginals():
    data = torch.tensor(MIX_DATA, dtype=torch.float64)
    idx = torch.tensor([1, 4, 7])

    @config_enumerate
    def model(data):
        weights = torch.tensor(WEIGHTS, dtype=data.dtype)
        locs = torch.tensor(LOCS, dtype=data.dtype)
        with ember.plate("data", len(data), subsample=idx) as ind:
            z = ember.sample("z", dist.Categorical(weights))
            ember.sample("x", dist.Normal(locs[z], 1.0), obs=data[ind])

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, empty_guide, data)
    expected = len(MIX_DATA) / 3 * brute_mixture([MIX_DATA[i] for i in idx.tolist()])
    assert loss == pytest.approx(-expected, rel=1e-10)


def test_differentiable_loss_matches_loss_and_its_gradient():
    data = torch.tensor(MIX_DATA, dtype=torch.float64)
    locs = torch.tensor(LOCS, dtype=torch.float64, requires_grad=True)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    model = config_enumerate(mixture_model)
    loss = elbo.differentiable_loss(model, empty_guide, data, locs)
    assert loss.item() == pytest.approx(-brute_mixture(MIX_DATA), rel=1e-10)
    (grad,) = torch.autograd.grad(loss, [locs])
    locs2 = locs.detach().clone().requires_grad_()
    comp = torch.tensor(WEIGHTS, dtype=data.dtype).log() + dist.Normal(locs2, 1.0).log_prob(
        data.unsqueeze(-1)
    )
    (-torch.logsumexp(comp, -1).sum()).backward()
    assert torch.allclose(grad, locs2.grad, atol=1e-10)


def test_guide_and_model_enumeration_together():
    data = torch.tensor(MIX_DATA[:5], dtype=torch.float64)
    dt = data.dtype
    shift = [0.0, 1.5]
    q_a = torch.tensor([0.35, 0.65], dtype=dt)

    def model(data):
        a = ember.sample("a", dist.Categorical(torch.tensor([0.5, 0.5], dtype=dt)))
        with ember.plate("data", len(data)):
            z = ember.sample(
                "z",
                dist.Categorical(torch.tensor(WEIGHTS, dtype=dt)),
                infer={"enumerate": "parallel"},
            )
            loc = torch.tensor(LOCS, dtype=dt)[z] + torch.tensor(shift, dtype=dt)[a]
            ember.sample("x", dist.Normal(loc, 1.0), obs=data)

    def guide(data):
        ember.sample("a", dist.Categorical(q_a), infer={"enumerate": "parallel"})

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide, data)
    expected = 0.0
    for a in range(2):
        logp = math.log(0.5) + brute_mixture(MIX_DATA[:5], [m + shift[a] for m in LOCS])
        expected += q_a[a].item() * (logp - math.log(q_a[a].item()))
    assert loss == pytest.approx(-expected, rel=1e-10)


def test_compute_marginals_of_mixture_and_hmm():
    data = torch.tensor(MIX_DATA, dtype=torch.float64)
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    marginals = elbo.compute_marginals(config_enumerate(mixture_model), empty_guide, data)
    probs = marginals["z"].probs
    assert probs.shape == (len(MIX_DATA), 3)
    for i, x in enumerate(MIX_DATA):
        joint = [w * math.exp(normal_logpdf(x, m)) for w, m in zip(WEIGHTS, LOCS)]
        for k in range(3):
            assert probs[i, k].item() == pytest.approx(joint[k] / sum(joint), rel=1e-9)

    ys = torch.tensor(YS, dtype=torch.float64)
    marginals = elbo.compute_marginals(hmm_model, empty_guide, ys)
    for s, seq in enumerate(YS):
        post = [[0.0] * 3 for _ in range(4)]
        for xs in itertools.product(range(3), repeat=4):
            lp = math.log(INIT[xs[0]])
            for t, y in enumerate(seq):
                if t:
                    lp += math.log(TRANS[xs[t - 1]][xs[t]])
                lp += normal_logpdf(y, EMIT[xs[t]])
            for t in range(4):
                post[t][xs[t]] += math.exp(lp)
        for t in range(4):
            got = marginals[f"x_{t}"].probs[s]
            for k in range(3):
                assert got[k].item() == pytest.approx(post[t][k] / sum(post[t]), rel=1e-9)


def test_compute_marginals_rejects_enumerated_guides():
    def guide():
        ember.sample("a", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match="guide site 'a' is enumerated"):
        TraceEnum_ELBO(max_plate_nesting=0).compute_marginals(lambda: None, guide)


# ----------------------------------------------------------------------------- long chains
T_LONG = 50
_g = torch.Generator().manual_seed(0)
LONG_TRANS = torch.softmax(torch.randn(3, 3, generator=_g, dtype=torch.float64), -1)
LONG_INIT = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
LONG_LOCS = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
LONG_YS = torch.randn(T_LONG, generator=_g, dtype=torch.float64)


def _long_step(t, x):
    probs = LONG_INIT if x is None else LONG_TRANS[x]
    x = ember.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
    ember.sample(f"y_{t}", dist.Normal(LONG_LOCS[x], 1.0), obs=LONG_YS[t])
    return x


def long_hmm_iterator():
    x = None
    for t in poutine.markov(range(T_LONG)):
        x = _long_step(t, x)


def long_hmm_recursive():
    @poutine.markov
    def step(t, x):
        if t < T_LONG:
            step(t + 1, _long_step(t, x))

    step(0, None)


def long_hmm_reentered():
    x = None
    chain = poutine.markov()
    for t in range(T_LONG):
        with chain:
            x = _long_step(t, x)


def forward_algorithm():
    """log p(y) of the long HMM by the forward recursion, in plain Python floats."""
    emit = [[normal_logpdf(y, m) for m in LONG_LOCS.tolist()] for y in LONG_YS.tolist()]
    trans = LONG_TRANS.tolist()
    alpha = [math.log(p) + e for p, e in zip(LONG_INIT.tolist(), emit[0])]
    for t in range(1, T_LONG):
        alpha = [
            logsumexp([alpha[i] + math.log(trans[i][j]) for i in range(3)]) + emit[t][j]
            for j in range(3)
        ]
    return logsumexp(alpha)


@pytest.mark.parametrize("model", [long_hmm_iterator, long_hmm_recursive, long_hmm_reentered])
def test_long_hmm_recycles_dims_and_matches_forward_algorithm(model):
    trace = poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()
    used = {trace.nodes[f"x_{t}"]["infer"]["_enumerate_dim"] for t in range(T_LONG)}
    assert used == {-1, -2}  # history 1: two dims for the whole chain
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide)
    assert loss == pytest.approx(-forward_algorithm(), rel=1e-10)


# ----------------------------------------------------------------------------- fast paths
def test_enumerated_categorical_values_take_the_fast_log_prob(monkeypatch):
    calls = []
    gather = torch.distributions.Categorical.log_prob

    def counting(self, value):
        calls.append(value)
        return gather(self, value)

    def model():
        with ember.plate("data", 4):
            ember.sample(
                "z",
                dist.Categorical(torch.tensor([0.2, 0.3, 0.5])),
                infer={"enumerate": "parallel"},
            )
            ember.sample(
                "w",
                dist.Categorical(logits=torch.randn(4, 3)),
                infer={"enumerate": "parallel", "expand": True},
            )

    trace = poutine.trace(poutine.enum(model, first_available_dim=-2)).get_trace()
    monkeypatch.setattr(torch.distributions.Categorical, "log_prob", counting)
    z, w = trace.nodes["z"], trace.nodes["w"]
    assert z["value"].shape == (3, 1) and w["value"].shape == (3, 1, 4)
    fast = site_log_prob(z)
    assert not calls  # the unexpanded support the handler made: read off the logits
    slow = z["fn"].log_prob(z["value"].clone())
    assert len(calls) == 1
    assert torch.equal(fast.expand(slow.shape), slow)
    calls.clear()
    # an expanded support is not the handler's own unexpanded support: it takes the gather
    assert torch.equal(site_log_prob(w), gather(w["fn"], w["value"]))
    assert len(calls) == 1
    calls.clear()
    # a value that is not the very tensor the handler made is not trusted
    replaced = dict(z, value=z["value"].flip(0))
    expected = gather(z["fn"], z["value"].flip(0))
    assert torch.equal(site_log_prob(replaced), expected)
    assert len(calls) == 1


def test_enumerated_supports_are_fresh_tensors():
    def model():
        a = ember.sample("a", dist.Categorical(torch.ones(3) / 3), infer={"enumerate": "parallel"})
        b = ember.sample("b", dist.Bernoulli(torch.tensor(0.3)), infer={"enumerate": "parallel"})
        return a, b

    enum_model = poutine.enum(model, first_available_dim=-1)
    a1, b1 = enum_model()
    a2, b2 = enum_model()
    assert a1 is not a2 and a1.data_ptr() != a2.data_ptr()
    assert torch.equal(a1, torch.arange(3)) and a1.dtype == torch.long
    assert torch.equal(b1, torch.tensor([[0.0], [1.0]])) and b1.dtype == torch.float32
    a1.add_(5)  # a value changed in place is never handed out again
    a3, _ = enum_model()
    assert torch.equal(a3, torch.arange(3))


def test_categorical_log_prob_of_a_support_changed_in_place_is_right():
    d = dist.Categorical(torch.tensor([0.1, 0.2, 0.7]))
    v = d.enumerate_support()
    v.data.copy_(v.flip(0))
    assert torch.equal(d.log_prob(v), torch.tensor([0.7, 0.2, 0.1]).log())


def test_delta_guide_log_density_matches_log_prob(monkeypatch):
    data = torch.tensor(MIX_DATA, dtype=torch.float64)

    @config_enumerate
    def model(data, log_density=0.0):
        locs = ember.sample("locs", dist.Normal(torch.zeros(3, dtype=data.dtype), 5.0).to_event(1))
        mixture_model(data, locs)

    def guide(data, log_density=0.0):
        locs = ember.param("locs_map", torch.tensor(LOCS, dtype=data.dtype))
        ember.sample("locs", dist.Delta(locs, log_density=log_density, event_dim=1))

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    prior = dist.Normal(torch.zeros(3, dtype=data.dtype), 5.0).log_prob(
        torch.tensor(LOCS, dtype=data.dtype)
    )
    expected = brute_mixture(MIX_DATA) + prior.sum().item()
    assert elbo.loss(model, guide, data) == pytest.approx(-expected, rel=1e-10)
    # a non-zero log_density enters the guide term, as Delta.log_prob gives it
    assert elbo.loss(model, guide, data, 1.5) == pytest.approx(-expected + 1.5, rel=1e-10)

    # a MAP guide's Delta sites sample their own point: no comparison is needed
    def refuse(self, value):
        raise AssertionError("Delta.log_prob called")

    monkeypatch.setattr(dist.Delta, "log_prob", refuse)
    assert elbo.loss(model, guide, data) == pytest.approx(-expected, rel=1e-10)


@pytest.mark.parametrize(
    "make",
    [
        lambda: dist.Categorical(torch.tensor([0.2, 0.3, 0.5])),
        lambda: dist.Categorical(logits=torch.tensor([0.1, -0.4, 1.0])),
        lambda: dist.Categorical(logits=torch.randn(4, 3)),
        lambda: dist.Categorical(torch.softmax(torch.randn(2, 1, 3), -1)),
        lambda: dist.Bernoulli(torch.tensor(0.3)),
        lambda: dist.Bernoulli(logits=torch.randn(4)),
    ],
)
def test_support_log_prob_shortcut_matches_log_prob(make):
    torch.manual_seed(0)

    def model():
        with ember.plate("outer", 2, dim=-2), ember.plate("inner", 4, dim=-1):
            ember.sample("z", make(), infer={"enumerate": "parallel"})

    trace = poutine.trace(poutine.enum(model, first_available_dim=-3)).get_trace()
    site = trace.nodes["z"]
    expected = site["fn"].log_prob(site["value"].clone())  # the gather
    shortcut = support_log_prob(site["fn"], site["infer"]["_enumerate_dim"])
    shape = torch.broadcast_shapes(shortcut.shape, expected.shape)
    assert shape == expected.shape
    # Categorical: the same numbers; Bernoulli: softplus vs torch's formula, to rounding
    assert torch.allclose(shortcut.expand(shape), expected, rtol=1e-6, atol=1e-7)


def test_chain_across_separate_markov_blocks_is_a_clear_error():
    def model():  # separate markov blocks do not see each other, so x_1 reuses x_0's dim
        x = None
        for t in range(70):
            with poutine.markov():
                probs = LONG_INIT if x is None else LONG_TRANS[x]
                x = ember.sample(f"x_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match=r"site 'x_1'.*reused.*ember.markov\(range"):
        poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()


def test_too_many_enumerated_sites_in_view_is_a_clear_error():
    def model():  # no markov declaration: every dim stays in view
        for t in range(70):
            ember.sample(f"x_{t}", dist.Categorical(LONG_INIT), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match=r"site 'x_63'.*at most 64 dims.*ember.markov\(range"):
        poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()


def test_separate_markov_blocks_recycle_dims_exactly():
    # 100 independent two-state mixtures, each in its own markov block: two dims suffice
    # and the ELBO is the sum of the 100 exact log marginals
    locs = torch.linspace(-1.0, 1.0, 100, dtype=torch.float64)

    @config_enumerate
    def model():
        for i in range(100):
            with poutine.markov():
                z = ember.sample(f"z_{i}", dist.Bernoulli(torch.tensor(0.3, dtype=torch.float64)))
                ember.sample(f"y_{i}", dist.Normal(2.0 * z, 1.0), obs=locs[i])

    trace = poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()
    assert {trace.nodes[f"z_{i}"]["infer"]["_enumerate_dim"] for i in range(100)} == {-1}
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, empty_guide)
    expected = sum(
        math.log(0.7 * math.exp(normal_logpdf(y, 0.0)) + 0.3 * math.exp(normal_logpdf(y, 2.0)))
        for y in locs.tolist()
    )
    assert loss == pytest.approx(-expected, rel=1e-10)


def test_sequential_model_site_with_parallel_guide_site_in_a_plate_is_exact():
    data = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)

    def model():
        with ember.plate("p", 3):
            a = ember.sample("a", dist.Bernoulli(torch.tensor(0.3, dtype=torch.float64)))
            b = ember.sample(
                "b",
                dist.Bernoulli(torch.tensor(0.6, dtype=torch.float64)),
                infer={"enumerate": "sequential"},
            )
            ember.sample("y", dist.Normal(a + 2 * b, 1.0), obs=data)

    def guide():
        with ember.plate("p", 3):
            q = torch.tensor(0.45, dtype=torch.float64)
            ember.sample("a", dist.Bernoulli(q), infer={"enumerate": "parallel"})

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(model, guide)
    expected = 0.0
    for y in data.tolist():
        for a in (0, 1):
            qa = 0.45 if a else 0.55
            pb = sum((0.6 if b else 0.4) * math.exp(normal_logpdf(y, a + 2 * b)) for b in (0, 1))
            expected += qa * (math.log(0.3 if a else 0.7) + math.log(pb) - math.log(qa))
    assert loss == pytest.approx(-expected, rel=1e-10)
