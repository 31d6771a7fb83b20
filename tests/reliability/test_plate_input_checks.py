"""Bad plate sizes, bad subsample indices and a guide plate whose size differs from the
model's: each refused at the call that is wrong, naming the plate."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.infer import SVI, Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO
from ember.optim import Adam
from ember.poutine.runtime import DIM_ALLOCATOR, get_stack


@pytest.fixture(autouse=True)
def _clean_stack():
    yield
    assert get_stack() == ()
    assert DIM_ALLOCATOR.names() == {}


# --- sizes ------------------------------------------------------------------------------


def test_plate_of_size_minus_one_is_refused():
    # -1 means "no size" inside ember; a user passing it gets an error, not that meaning
    with pytest.raises(ValueError, match=r"plate 'd': size must be a positive int, got -1"):
        ember.plate("d", -1)


@pytest.mark.parametrize("size", [-1, -7, 0])
def test_nonpositive_sizes_are_value_errors(size):
    with pytest.raises(ValueError, match="plate 'd'"):
        ember.plate("d", size)


@pytest.mark.parametrize(
    "size, match",
    [
        (2.5, "got float 2.5"),
        (3.0, "got float 3.0"),
        ("3", "got str"),
        (True, "got the bool True"),
        (False, "got the bool False"),
        (torch.tensor(True), "bool"),
        (torch.tensor([3, 4]), r"0-dim integer tensor, got shape \(2,\)"),
        (torch.tensor(3.0), "dtype torch.float32"),
    ],
)
def test_sizes_of_the_wrong_type_are_type_errors(size, match):
    with pytest.raises(TypeError, match="plate 'd'.*" + match):
        ember.plate("d", size)


def test_a_negative_tensor_size_is_refused_with_validation_on():
    with pytest.raises(ValueError, match="plate 'd': size must be a positive int, got -2"):
        ember.plate("d", torch.tensor(-2))


def test_a_zero_dim_integer_tensor_size_works():
    with ember.plate("d", torch.tensor(4)) as idx:
        x = ember.sample("x", dist.Normal(0.0, 1.0))
    assert torch.equal(idx, torch.arange(4))
    assert x.shape == (4,)


def test_a_plate_without_size_still_only_declares_independence():
    with poutine.trace() as tr, ember.plate("d"):
        ember.sample("x", dist.Normal(torch.zeros(3), 1.0))
    frame = tr.trace.nodes["x"]["cond_indep_stack"][0]
    assert (frame.name, frame.size) == ("d", -1)


def test_subsample_size_larger_than_size_is_refused():
    with pytest.raises(ValueError, match="plate 'd': subsample_size=12 exceeds size=10"):
        ember.plate("d", 10, subsample_size=12)


# --- subsample indices ------------------------------------------------------------------


def test_out_of_range_subsample_is_refused():
    with pytest.raises(ValueError, match=r"plate 'd' of size 10: subsample index 12"):
        ember.plate("d", 10, subsample=torch.tensor([0, 5, 12]))


def test_negative_subsample_index_is_refused():
    with pytest.raises(ValueError, match=r"subsample index -1 is out of range.*\[0, 9\]"):
        ember.plate("d", 10, subsample=torch.tensor([0, -1, 3]))


def test_out_of_range_subsample_is_refused_inside_a_trace():
    def model():
        with ember.plate("d", 10, subsample=torch.tensor([0, 5, 12])):
            ember.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="plate 'd' of size 10"):
        poutine.trace(model).get_trace()


@pytest.mark.parametrize(
    "subsample, match",
    [
        (torch.tensor([0.0, 1.0]), "integer dtype, got torch.float32"),
        (torch.tensor([True, False]), "integer dtype, got torch.bool"),
        ([0.5, 1.0], "integer dtype"),
        (3, "got int 3"),
    ],
)
def test_subsample_of_a_wrong_dtype_is_a_type_error(subsample, match):
    with pytest.raises(TypeError, match="plate 'd'.*" + match):
        ember.plate("d", 10, subsample=subsample)


@pytest.mark.parametrize("subsample", [torch.tensor([[0, 1]]), torch.tensor(3)])
def test_subsample_that_is_not_1d_is_refused(subsample):
    with pytest.raises(ValueError, match=r"plate 'd': subsample must be a 1-dim tensor"):
        ember.plate("d", 10, subsample=subsample)


@pytest.mark.parametrize("empty", [torch.tensor([], dtype=torch.long), []])
def test_an_empty_subsample_is_refused(empty):
    with pytest.raises(ValueError, match="plate 'd': subsample is empty"):
        ember.plate("d", 10, subsample=empty)


def test_a_list_of_indices_is_read_as_a_tensor():
    with poutine.trace() as tr, ember.plate("d", 10, subsample=[1, 4]) as idx:
        x = ember.sample("x", dist.Normal(0.0, 1.0))
    assert torch.equal(idx, torch.tensor([1, 4]))
    assert x.shape == (2,)
    # a subsample of 2 out of 10 scales the log-density by 5
    tr.trace.compute_log_prob()
    expected = 5.0 * dist.Normal(0.0, 1.0).log_prob(x).sum()
    assert torch.allclose(tr.trace.nodes["x"]["log_prob_sum"], expected)


def test_the_range_check_is_skipped_with_validation_off():
    # the range check needs a host sync: with validation off it does not run (the
    # dtype and shape checks, which are free, still do)
    with ember.validation_enabled(False):
        plate = ember.plate("d", 10, subsample=torch.tensor([0, 12]))
        assert plate.subsample_size == 2
        with pytest.raises(TypeError, match="integer dtype"):
            ember.plate("d", 10, subsample=torch.tensor([0.0]))


def test_valid_subsample_scales_exactly():
    sub = torch.tensor([9, 0, 3])
    with poutine.trace() as tr, ember.plate("d", 10, subsample=sub) as idx:
        ember.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(3))
    assert idx is sub
    tr.trace.compute_log_prob()
    expected = (10 / 3) * 3 * (-0.5 * math.log(2 * math.pi))
    assert tr.trace.nodes["x"]["log_prob_sum"].item() == pytest.approx(expected, rel=1e-6)


# --- model and guide plates of different sizes -------------------------------------------


def _model():
    with ember.plate("d", 10):
        ember.sample("x", dist.Normal(0.0, 1.0))


def _guide():
    with ember.plate("d", 5):
        ember.sample("x", dist.Normal(0.0, 1.0))


@pytest.mark.parametrize("Elbo", [Trace_ELBO, TraceGraph_ELBO, TraceEnum_ELBO])
def test_guide_plate_smaller_than_model_plate_is_not_a_subsample(Elbo):
    with pytest.raises(ValueError, match="plate 'd' has size 10 in the model but size 5 in"):
        Elbo().loss(_model, _guide)


def test_guide_plate_size_mismatch_is_refused_in_svi_before_any_update():
    ember.clear_param_store()

    def guide():
        loc = ember.param("loc", torch.zeros(5))
        with ember.plate("d", 5):
            ember.sample("x", dist.Normal(loc, 1.0))

    svi = SVI(_model, guide, Adam({"lr": 0.1}), Trace_ELBO())
    with pytest.raises(ValueError, match="subsample_size=5"):  # the hint
        svi.step()
    assert torch.equal(ember.param("loc").detach(), torch.zeros(5))


def test_a_real_subsample_in_the_guide_is_still_accepted():
    def guide():
        with ember.plate("d", 10, subsample_size=5):
            ember.sample("x", dist.Normal(0.0, 1.0))

    ember.set_rng_seed(0)
    model_trace = poutine.trace(poutine.replay(_model, trace=poutine.trace(guide).get_trace()))
    tr = model_trace.get_trace()
    assert tr.nodes["x"]["value"].shape == (5,)
    loss = Trace_ELBO().loss(_model, guide)
    assert math.isfinite(loss)
    # the ELBO of a guide equal to the prior is exactly 0 whatever the subsample
    assert loss == pytest.approx(0.0, abs=1e-5)
