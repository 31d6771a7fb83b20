"""The settings registry and the Binomial settings it exposes."""

import math

import pytest
import torch

import ember.distributions as dist
from ember import settings


def test_binomial_settings_are_registered_with_defaults():
    assert settings.get("binomial_approx_sample_thresh") == math.inf
    assert settings.get("binomial_approx_log_prob_tol") == 0.0
    everything = settings.get()
    assert everything["binomial_approx_sample_thresh"] == math.inf
    assert settings.registered()["binomial_approx_log_prob_tol"] == (
        "ember.distributions.torch",
        "Binomial.approx_log_prob_tol",
    )


def test_set_and_context_reach_the_class_attribute():
    with settings.context(binomial_approx_sample_thresh=1e6, binomial_approx_log_prob_tol=1e-3):
        assert dist.Binomial.approx_sample_thresh == 1e6
        assert dist.Binomial.approx_log_prob_tol == 1e-3
        d = dist.Binomial(torch.tensor(50.0), probs=torch.tensor(0.4, dtype=torch.float64))
        k = torch.tensor(20.0, dtype=torch.float64)
        exact = torch.distributions.Binomial(d.total_count, probs=d.probs).log_prob(k)
        assert (d.log_prob(k) - exact).abs() < 1e-3
    assert dist.Binomial.approx_sample_thresh == math.inf
    assert dist.Binomial.approx_log_prob_tol == 0.0
    settings.set(binomial_approx_log_prob_tol=0.1)
    try:
        assert dist.Binomial.approx_log_prob_tol == 0.1
    finally:
        settings.set(binomial_approx_log_prob_tol=0.0)


def test_context_restores_after_an_error():
    with pytest.raises(RuntimeError):
        with settings.context(binomial_approx_sample_thresh=10.0):
            raise RuntimeError("boom")
    assert settings.get("binomial_approx_sample_thresh") == math.inf


@pytest.mark.parametrize(
    "alias, value",
    [
        ("binomial_approx_sample_thresh", -1.0),
        ("binomial_approx_sample_thresh", "big"),
        ("binomial_approx_log_prob_tol", -0.1),
    ],
)
def test_bad_values_raise(alias, value):
    with pytest.raises(ValueError, match=alias):
        settings.set(**{alias: value})
    assert settings.get(alias) in (math.inf, 0.0)


def test_unknown_setting_lists_known_ones():
    with pytest.raises(KeyError, match="binomial_approx_sample_thresh"):
        settings.get("no_such_setting")
