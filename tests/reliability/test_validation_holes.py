"""Validation that writes behind a tensor's back cannot bypass, parameter reuse, and
degenerate parameter shapes (each reproduction as reported)."""

import warnings

import pytest
import torch

import ember
import ember.distributions as dist
from ember.distributions import constraints


def test_an_own_sample_changed_through_data_is_checked_again():
    d = dist.Gamma(2.0, 1.0)
    x = d.sample((3,))
    x.data.fill_(-1.0)  # does not bump the version counter
    with pytest.raises(ValueError, match="Gamma.log_prob"):
        d.log_prob(x)


def test_an_own_sample_changed_through_numpy_is_checked_again():
    d = dist.Beta(2.0, 2.0)
    x = d.sample((4,))
    x.numpy()[:] = 1.5
    with pytest.raises(ValueError, match="Beta.log_prob"):
        d.log_prob(x)


def test_an_unchanged_own_sample_scores_exactly():
    d = dist.Gamma(torch.tensor([2.0, 3.0]), 1.0)
    x = d.sample((5,))
    expected = torch.distributions.Gamma(torch.tensor([2.0, 3.0]), 1.0).log_prob(x)
    assert torch.equal(d.log_prob(x), expected)


def test_an_enumerated_support_edited_in_place_scores_its_new_values():
    probs = torch.tensor([0.2, 0.8])
    d = dist.Categorical(probs)
    support = d.enumerate_support()
    support.data[:] = torch.tensor([1, 0])
    assert torch.allclose(d.log_prob(support), probs.log()[[1, 0]])


@pytest.mark.parametrize(
    "make",
    [
        lambda: dist.Categorical(probs=torch.zeros(0)),
        lambda: dist.Categorical(logits=torch.zeros(2, 0)),
        lambda: dist.Dirichlet(torch.ones(0)),
        lambda: dist.OneHotCategorical(probs=torch.zeros(0)),
    ],
)
def test_parameters_with_no_categories_are_refused_at_construction(make):
    with pytest.raises(ValueError, match="size 0 in its event dim"):
        make()


def test_an_empty_batch_is_allowed():
    d = dist.Categorical(probs=torch.ones(0, 3) / 3)
    assert d.batch_shape == (0,) and d.sample().shape == (0,)


def test_reusing_a_parameter_name_with_another_shape_warns_and_keeps_the_value():
    ember.clear_param_store()
    first = ember.param("a", torch.arange(3.0))
    with pytest.warns(UserWarning, match=r"shape \(5,\)\) is ignored.*shape \(3,\)"):
        again = ember.param("a", torch.zeros(5))
    assert torch.equal(again, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same shape, or no init: silent, as in Pyro
        ember.param("a", torch.zeros(3))
        ember.param("a")


def test_reusing_a_parameter_name_with_another_constraint_is_refused():
    ember.clear_param_store()
    ember.param("b", torch.ones(2))
    with pytest.raises(ValueError, match="constraint is fixed when the parameter is created"):
        ember.param("b", torch.ones(2), constraint=constraints.positive)


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("family", ["categorical", "bernoulli"])
def test_an_enumerated_site_edited_in_place_scores_its_new_values(family, validate):
    from ember.infer.enum_factors import site_log_prob

    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])  # batch varies along the plate
    if family == "categorical":
        make = lambda: dist.Categorical(probs)  # noqa: E731
        edited = torch.tensor([2, 0, 1])
    else:
        make = lambda: dist.Bernoulli(probs[:, 0])  # noqa: E731
        edited = torch.tensor([1.0, 0.0])

    def model():
        with ember.plate("p", 2):
            ember.sample("z", make(), infer={"enumerate": "parallel"})

    ember.enable_validation(validate)
    try:
        tr = ember.poutine.trace(ember.poutine.enum(model, first_available_dim=-2)).get_trace()
        site = tr.nodes["z"]
        site["value"].data.copy_(edited.reshape(site["value"].shape))  # version unchanged
        expected = make().log_prob(site["value"])
        assert torch.allclose(site_log_prob(site), expected.expand_as(site_log_prob(site)))
    finally:
        ember.enable_validation(True)


@pytest.mark.parametrize("family", ["categorical", "bernoulli"])
def test_support_rows_picked_by_value_follow_an_edit(family):
    # the route taken off the CPU without validation: no host read, rows follow the values
    from ember.infer.enum_factors import pick_support_rows, support_log_prob

    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    d = dist.Categorical(probs) if family == "categorical" else dist.Bernoulli(probs[:, 0])
    value = d.enumerate_support(expand=False)  # shape (K, 1)
    flipped = value.flip(0)
    table = support_log_prob(d, -2)
    assert torch.allclose(pick_support_rows(table, value, -2), d.log_prob(value))
    assert torch.allclose(pick_support_rows(table, flipped, -2), d.log_prob(flipped))
