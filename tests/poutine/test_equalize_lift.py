"""equalize (shared values across sites) and lift (params drawn from priors)."""

import math
import warnings

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine


@pytest.fixture(autouse=True)
def _clean():
    ember.clear_param_store()
    ember.enable_validation(True)
    yield
    ember.clear_param_store()


def normal_lp(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def two_normals():
    x = ember.sample("x", dist.Normal(0.0, 1.0))
    y = ember.sample("y", dist.Normal(5.0, 2.0))
    return x, y


# ---------------------------------------------------------------- equalize
def test_equalize_copies_the_first_value_as_a_zero_density_site():
    tr = poutine.trace(poutine.equalize(two_normals, ["x", "y"])).get_trace()
    x, y = tr.nodes["_RETURN"]["value"]
    assert x is y
    assert not tr.nodes["x"]["is_observed"] and tr.nodes["y"]["is_observed"]
    assert tr.nodes["y"]["infer"] == {"_deterministic": True}
    assert float(tr.log_prob_sum()) == pytest.approx(normal_lp(float(x), 0.0, 1.0), abs=1e-5)


def test_equalize_with_keep_dist_conditions_on_equality():
    tr = poutine.trace(poutine.equalize(two_normals, "x|y", keep_dist=True)).get_trace()
    x, y = tr.nodes["_RETURN"]["value"]
    assert x is y and tr.nodes["y"]["is_observed"]
    expected = normal_lp(float(x), 0.0, 1.0) + normal_lp(float(x), 5.0, 2.0)
    assert float(tr.log_prob_sum()) == pytest.approx(expected, abs=1e-5)


def test_equalize_matches_whole_names_and_only_its_site_type():
    def model():
        ember.param("w_a", torch.tensor(1.0))
        ember.param("w_b", torch.tensor(2.0))
        ember.sample("w_c", dist.Normal(0.0, 1.0))
        ember.sample("xw_a", dist.Normal(0.0, 1.0))

    tr = poutine.trace(poutine.equalize(model, "w_.", type="param")).get_trace()
    assert float(tr.nodes["w_b"]["value"].detach()) == 1.0  # the first param's value
    assert not tr.nodes["w_c"]["is_observed"]  # a sample site: other type
    tr = poutine.trace(poutine.equalize(model, "w_.")).get_trace()
    assert float(tr.nodes["w_b"]["value"].detach()) == 2.0  # params untouched
    assert not tr.nodes["xw_a"]["is_observed"]  # "w_." must match the whole name


def test_equalize_starts_afresh_each_run():
    eq = poutine.equalize(two_normals, ["x", "y"])
    first = eq()
    second = eq()
    assert first[0] is first[1] and second[0] is second[1]
    assert not torch.equal(first[0], second[0])


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"sites": 3}, TypeError),
        ({"sites": []}, TypeError),
        ({"sites": "x", "type": "obs"}, ValueError),
    ],
)
def test_equalize_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error, match="equalize"):
        poutine.equalize(two_normals, **kwargs)


# -------------------------------------------------------------------- lift
def guide():
    loc = ember.param("loc", torch.tensor([1.0, 2.0]))
    scale = ember.param("scale", torch.tensor([1.0, 1.0]))
    return ember.sample("z", dist.Normal(loc, scale))


def test_lift_with_a_stochastic_function_passes_the_initial_value():
    seen = []

    def prior(init, **kwargs):
        seen.append((init.clone(), sorted(kwargs)))
        return ember.sample(f"drawn_{len(seen)}", dist.LogNormal(torch.zeros_like(init), 1.0))

    tr = poutine.trace(poutine.lift(guide, prior=prior)).get_trace()
    assert [s[0].tolist() for s in seen] == [[1.0, 2.0], [1.0, 1.0]]
    assert seen[0][1] == ["constraint", "event_dim"]
    # the stochastic function's own sites stand for the params, which are hidden
    assert "loc" not in tr and "scale" not in tr
    assert tr.stochastic_nodes == ["drawn_1", "drawn_2", "z"]


def test_lift_with_a_dict_of_functions_records_each_as_the_sample_site():
    def loc_prior(init, **kwargs):
        return torch.full_like(init, 3.0)

    tr = poutine.trace(poutine.lift(guide, prior={"loc": loc_prior})).get_trace()
    site = tr.nodes["loc"]
    assert site["type"] == "sample" and site["fn"] is loc_prior and not site["is_observed"]
    assert site["value"].tolist() == [3.0, 3.0]
    assert tr.nodes["scale"]["type"] == "param"


def test_lift_warns_about_prior_entries_that_match_no_param():
    lifted = poutine.lift(guide, prior={"loc": dist.Normal(0.0, 1.0), "lco": None})
    with pytest.warns(UserWarning, match=r"\['lco'\].*\['scale'\]"):
        lifted()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        poutine.lift(guide, prior={"loc": dist.Normal(0.0, 1.0)})()
        with ember.validation_enabled(False):
            lifted()
