"""CSIS on a conjugate Gaussian model, against closed forms.

Model: x ~ N(0, V0), y1, y2 ~ N(x, VY) independently. Guide: q(x | y) =
N(w * (y1 + y2), s^2). With S = y1 + y2: Var S = 2 VY + 4 V0, Cov(x, S) = 2 V0,
so the compilation loss E_p[-log q(x | y)] is
0.5 log(2 pi s^2) + (V0 - 2 w Cov + w^2 Var S) / (2 s^2), minimized at
w* = Cov / Var S and s*^2 = V0 - Cov^2 / Var S (the exact posterior).
"""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import CSIS, EmpiricalMarginal
from ember.optim import SGD, Adam

V0, VY = 5.0, 2.0
COV, VAR_S = 2 * V0, 2 * VY + 4 * V0
W_STAR = COV / VAR_S
S2_STAR = V0 - COV**2 / VAR_S


def model(observations=None):
    if observations is None:  # placeholders: CSIS samples the data during training
        observations = {"y1": torch.tensor(0.0), "y2": torch.tensor(0.0)}
    x = ember.sample("x", dist.Normal(0.0, V0**0.5))
    ember.sample("y1", dist.Normal(x, VY**0.5), obs=observations["y1"])
    ember.sample("y2", dist.Normal(x, VY**0.5), obs=observations["y2"])
    return x


def guide(observations=None):
    if observations is None:
        raise ValueError("the guide needs the observations")
    w = ember.param("w", torch.tensor(0.1))
    log_s = ember.param("log_s", torch.tensor(0.3))
    total = torch.as_tensor(observations["y1"]) + torch.as_tensor(observations["y2"])
    ember.sample("x", dist.Normal(w * total, log_s.exp()))


def exact_loss(w, s):
    return 0.5 * math.log(2 * math.pi * s * s) + (V0 - 2 * w * COV + w * w * VAR_S) / (2 * s * s)


def test_validation_loss_matches_closed_form():
    ember.clear_param_store()
    ember.set_rng_seed(0)
    n = 4000
    csis = CSIS(model, guide, Adam({"lr": 0.01}), validation_batch_size=n)
    loss = csis.validation_loss()
    per_trace = []
    for tr in csis.validation_batch:
        x = tr.nodes["x"]["value"]
        total = tr.nodes["y1"]["value"] + tr.nodes["y2"]["value"]
        per_trace.append(-dist.Normal(0.1 * total, math.exp(0.3)).log_prob(x))
    per_trace = torch.stack(per_trace)
    # the loss is exactly the batch mean of -log q ...
    assert abs(loss - per_trace.mean().item()) < 1e-4
    # ... and that mean estimates the closed form within its standard error
    se = per_trace.std().item() / math.sqrt(n)
    assert abs(loss - exact_loss(0.1, math.exp(0.3))) < 4 * se
    # the fixed batch gives the same value again
    assert csis.validation_loss() == loss


def test_gradient_matches_hand_computation():
    ember.clear_param_store()
    ember.set_rng_seed(1)
    lr = 0.01
    csis = CSIS(model, guide, SGD({"lr": lr}), validation_batch_size=50)
    csis.set_validation_batch()
    w = ember.param("w", torch.tensor(0.1))
    csis.loss_and_grads(True, csis.validation_batch)
    s2 = math.exp(0.6)
    grad_w = 0.0
    for tr in csis.validation_batch:
        x = tr.nodes["x"]["value"]
        total = tr.nodes["y1"]["value"] + tr.nodes["y2"]["value"]
        grad_w += float(-(x - 0.1 * total) * total / s2) / 50
    leaf = ember.get_param_store().get_param("w").unconstrained()
    assert leaf is w.unconstrained() or leaf is w
    assert abs(float(leaf.grad) - grad_w) < 1e-4 * max(1.0, abs(grad_w))


def _set_guide(w, s):
    ember.clear_param_store()
    ember.param("w", torch.tensor(w))
    ember.param("log_s", torch.tensor(math.log(s)))


@pytest.mark.parametrize("w, s", [(W_STAR, S2_STAR**0.5), (0.2, 1.5)])
def test_importance_weights_and_evidence(w, s):
    ember.set_rng_seed(3)
    _set_guide(w, s)
    n = 4000
    csis = CSIS(model, guide, Adam({"lr": 0.01}), num_inference_samples=n)
    y1, y2 = torch.tensor(1.5), torch.tensor(2.5)
    posterior = csis.run({"y1": y1, "y2": y2})
    assert len(posterior.log_weights) == n
    # every importance weight is log p(x, y) - log q(x | y), computed by hand
    xs = EmpiricalMarginal(posterior, "x").enumerate_support()
    log_w = posterior.stacked_log_weights()
    expected = (
        dist.Normal(0.0, V0**0.5).log_prob(xs)
        + dist.Normal(xs, VY**0.5).log_prob(y1)
        + dist.Normal(xs, VY**0.5).log_prob(y2)
        - dist.Normal(w * (y1 + y2), s).log_prob(xs)
    )
    assert torch.allclose(log_w, expected, atol=1e-4)
    # evidence: (y1, y2) ~ N(0, [[V0 + VY, V0], [V0, V0 + VY]])
    cov = torch.tensor([[V0 + VY, V0], [V0, V0 + VY]])
    log_evidence = dist.MultivariateNormal(torch.zeros(2), cov).log_prob(torch.stack([y1, y2]))
    estimate = posterior.get_log_normalizer().item()
    if w == W_STAR:  # the guide is the exact posterior: every weight is the evidence
        assert torch.allclose(log_w, log_evidence.expand(n), atol=1e-4)
    else:  # delta method: se(log mean w) = std(w) / (sqrt(n) mean(w))
        weights = (log_w - log_w.max()).exp()
        se = (weights.std() / weights.mean()).item() / math.sqrt(n)
        assert abs(estimate - log_evidence.item()) < 4 * se
    mean = EmpiricalMarginal(posterior, "x").mean.item()
    assert abs(mean - (y1 + y2).item() * W_STAR) < 4 * math.sqrt(S2_STAR / 1000)


@pytest.mark.slow
def test_training_approaches_exact_posterior():
    ember.clear_param_store()
    ember.set_rng_seed(2)
    csis = CSIS(model, guide, Adam({"lr": 0.05}), training_batch_size=25)
    start = exact_loss(0.1, math.exp(0.3))
    for _ in range(400):
        csis.step()
    w = ember.param("w").item()
    s = math.exp(ember.param("log_s").item())
    assert abs(w - W_STAR) < 0.05
    assert abs(s * s / S2_STAR - 1) < 0.2
    assert exact_loss(w, s) < exact_loss(W_STAR, S2_STAR**0.5) + 0.05 * (
        start - exact_loss(W_STAR, S2_STAR**0.5)
    )
