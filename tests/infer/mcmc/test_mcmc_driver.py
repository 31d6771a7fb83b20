"""The MCMC driver: chains in processes, streaming statistics, hooks, progress output."""

import io

import pytest
import torch

import ember
import ember.distributions as dist
from ember.infer import Predictive
from ember.infer.mcmc import MCMC, NUTS, StreamingMCMC
from ember.infer.mcmc.api import _MultiSampler, _UnarySampler
from ember.infer.mcmc.util import initialize_model


def normal_model(y):
    mu = ember.sample("mu", dist.Normal(0.0, 10.0))
    with ember.plate("n", y.shape[0]):
        ember.sample("y", dist.Normal(mu, 1.0), obs=y)


Y = torch.tensor([0.5, 1.5, 2.0, 0.0])
# conjugate posterior of mu: precision 1/100 + 4, mean (sum y) / precision
POST_PREC = 0.01 + 4.0
POST_MEAN = float(Y.sum()) / POST_PREC


def test_parallel_chains_in_processes(monkeypatch):
    monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 3)
    ember.set_rng_seed(0)
    mcmc = MCMC(NUTS(normal_model), 300, warmup_steps=200, num_chains=2, mp_context="fork",
                disable_progbar=True)  # fmt: skip
    assert isinstance(mcmc.sampler, _MultiSampler)
    mcmc.run(Y)
    mu = mcmc.get_samples(group_by_chain=True)["mu"]
    assert mu.shape == (2, 300)
    assert not torch.equal(mu[0], mu[1])  # the chains draw independently
    assert abs(float(mu.mean()) - POST_MEAN) < 4 * (1 / POST_PREC) ** 0.5 / 200**0.5
    assert set(mcmc.diagnostics()["divergences"]) == {"chain 0", "chain 1"}


def test_too_many_chains_warns_and_runs_sequentially(monkeypatch):
    monkeypatch.setattr(torch.multiprocessing, "cpu_count", lambda: 2)
    with pytest.warns(UserWarning, match="sequentially"):
        mcmc = MCMC(NUTS(normal_model), 5, warmup_steps=5, num_chains=2, disable_progbar=True)
    assert isinstance(mcmc.sampler, _UnarySampler)


def test_streaming_statistics_match_exact_posterior():
    ember.set_rng_seed(1)
    mcmc = StreamingMCMC(NUTS(normal_model), 600, warmup_steps=200, disable_progbar=True)
    mcmc.run(Y)
    stats = mcmc.get_statistics(group_by_chain=False)["mu"]
    assert stats["count"] == 600
    assert abs(float(stats["mean"]) - POST_MEAN) < 4 * (1 / POST_PREC) ** 0.5 / 150**0.5
    assert "r_hat" in mcmc.diagnostics()["mu"]


def test_hook_save_params_and_initial_params():
    ember.set_rng_seed(2)
    calls = []

    def model():
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        ember.sample("b", dist.Normal(a, 1.0))

    init, _, _, _ = initialize_model(model)
    mcmc = MCMC(NUTS(model), 4, warmup_steps=3, initial_params=init, save_params=["b"],
                hook_fn=lambda k, p, stage, i: calls.append((stage, i)),
                disable_progbar=True)  # fmt: skip
    mcmc.run()
    assert calls == [("Warmup", 0), ("Warmup", 1), ("Warmup", 2)] + [
        ("Sample", i) for i in range(4)
    ]
    assert set(mcmc.get_samples()) == {"b"}


def test_plain_progress_lines_when_not_a_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    ember.set_rng_seed(3)
    mcmc = MCMC(NUTS(normal_model), 20, warmup_steps=100)
    mcmc.run(Y)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("Sample: 120/120 step size")
    assert "acc. prob" in lines[-1] and "div. 0" in lines[-1]
    assert any(line.startswith("Warmup: ") for line in lines)
    assert len(lines) <= 12  # about one line per tenth of the run


def test_initial_params_need_a_chain_dim():
    with pytest.raises(ValueError, match="leading dim of size 2"):
        MCMC(NUTS(normal_model), 5, num_chains=2, initial_params={"mu": torch.tensor(0.0)},
             disable_progbar=True)  # fmt: skip


def test_predictive_from_mcmc_samples():
    ember.set_rng_seed(4)
    mcmc = MCMC(NUTS(normal_model), 50, warmup_steps=50, disable_progbar=True)
    mcmc.run(Y)
    post = mcmc.get_samples()
    pred = Predictive(normal_model, posterior_samples=post)(Y)
    assert pred["y"].shape == (50, 4)
    # the draws of mu are reused: the predictive mean of y follows each draw's mu
    assert torch.allclose(pred["y"].mean(-1), post["mu"], atol=4 * 0.5 + 1e-6)
