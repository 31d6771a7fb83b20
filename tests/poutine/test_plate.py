"""Plates: dims, broadcasting, subsampling and scaling, sequential plates, shape errors."""

import math

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine
from ember.poutine.runtime import get_plates


@pytest.fixture(autouse=True)
def _clean():
    ember.clear_param_store()
    ember.enable_validation(True)
    yield
    ember.clear_param_store()
    ember.enable_validation(True)


def normal_lp(x, loc=0.0, scale=1.0):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def test_automatic_dims_from_the_right_and_broadcasting():
    def model():
        with ember.plate("a", 3) as ia, ember.plate("b", 4) as ib:
            x = ember.sample("x", dist.Normal(0.0, 1.0))
        return ia, ib, x

    tr = poutine.trace(model).get_trace()
    ia, ib, x = tr.nodes["_RETURN"]["value"]
    assert torch.equal(ia, torch.arange(3)) and torch.equal(ib, torch.arange(4))
    assert x.shape == (4, 3)
    site = tr.nodes["x"]
    assert site["fn"].batch_shape == (4, 3)
    frames = {f.name: f for f in site["cond_indep_stack"]}
    assert frames["a"].dim == -1 and frames["b"].dim == -2
    assert frames["a"].size == 3 and frames["a"].vectorized and frames["a"].counter == 0


def test_explicit_dim_and_interstitial_broadcast():
    def model():
        with ember.plate("a", 3, dim=-3):
            return ember.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))

    x = model()
    assert x.shape == (3, 1, 1, 2)


def test_dims_are_released_after_the_plate():
    with ember.plate("a", 2):
        pass
    with ember.plate("b", 5):
        assert [f.dim for f in get_plates()] == [-1]


def test_subsample_seed_example_100_indices_and_scaling():
    ember.set_rng_seed(0)
    data = torch.randn(1000)

    def model():
        loc = ember.param("loc", torch.tensor(0.25))
        with ember.plate("data", len(data), subsample_size=100) as ind:
            batch = data[ind]
            ember.sample("obs", dist.Normal(loc, 1.0), obs=batch)
        return ind

    tr = poutine.trace(model).get_trace()
    ind = tr.nodes["_RETURN"]["value"]
    assert ind.shape == (100,) and len(set(ind.tolist())) == 100
    assert int(ind.min()) >= 0 and int(ind.max()) < 1000
    site = tr.nodes["obs"]
    assert site["scale"] == pytest.approx(10.0)
    expected = 10.0 * sum(normal_lp(float(x), 0.25) for x in data[ind])
    assert tr.log_prob_sum().item() == pytest.approx(expected, rel=1e-5)
    # the subsample site records the indices, so replay reuses them
    replayed = poutine.trace(poutine.replay(model, trace=tr)).get_trace()
    assert torch.equal(replayed.nodes["_RETURN"]["value"], ind)


def test_custom_subsample_and_size_check():
    sub = torch.tensor([3, 1, 4])
    with ember.plate("d", 10, subsample=sub) as ind:
        assert ind is sub
    with pytest.raises(ValueError, match="subsample_size does not match"):
        ember.plate("d", 10, subsample_size=2, subsample=sub)
    with pytest.raises(ValueError, match="exceeds size"):
        ember.plate("d", 10, subsample_size=20)


def test_sequential_plate_seed_example():
    data = torch.tensor([0.0, 1.0, 2.0])

    def model():
        for i in ember.plate("data", len(data), subsample_size=2):
            ember.sample(f"obs_{i}", dist.Normal(0.0, 1.0), obs=data[i])

    tr = poutine.trace(model).get_trace()
    obs = [n for n in tr.nodes if n.startswith("obs_")]
    assert len(obs) == 2
    frames = [tr.nodes[n]["cond_indep_stack"][0] for n in obs]
    assert all(f.dim is None and not f.vectorized for f in frames)
    assert frames[0].counter != frames[1].counter
    assert all(tr.nodes[n]["scale"] == pytest.approx(1.5) for n in obs)
    expected = 1.5 * sum(normal_lp(float(data[int(n[4:])])) for n in obs)
    assert tr.log_prob_sum().item() == pytest.approx(expected, rel=1e-6)


def test_sequential_inside_vectorized():
    def model():
        with ember.plate("outer", 3):
            for i in ember.plate("inner", 2):
                ember.sample(f"x{i}", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    assert tr.nodes["x0"]["value"].shape == (3,)


def test_local_param_indexed_inside_subsampled_plate():
    full = torch.arange(10.0)
    with ember.plate("d", 10, subsample=torch.tensor([2, 7])):
        local = ember.param("local", full.clone(), event_dim=0)
    assert torch.equal(local.detach(), torch.tensor([2.0, 7.0]))
    assert local.unconstrained() is ember.get_param_store()._params["local"]
    with ember.plate("d", 10, subsample=torch.tensor([0])):
        with pytest.raises(ValueError, match="invalid shape"):
            ember.param("bad", torch.zeros(3), event_dim=0)


def test_subsample_primitive():
    data = torch.arange(20.0).reshape(10, 2)
    with ember.plate("d", 10, subsample=torch.tensor([1, 3]), dim=-1):
        batch = ember.subsample(data, event_dim=1)
    assert torch.equal(batch, data[[1, 3]])


# -------------------------------------------------------------- shape errors
def test_distribution_shape_mismatch_names_site_shapes_plates():
    def model():
        with ember.plate("data", 5):
            ember.sample("x", dist.Normal(torch.zeros(3), 1.0))

    with pytest.raises(ValueError) as info:
        poutine.trace(model).get_trace()
    msg = str(info.value)
    assert "'x'" in msg and "(3,)" in msg and "'data'" in msg and "size 5" in msg
    assert "Hint" in msg


def test_observed_value_shape_mismatch_raises_with_validation():
    def model():
        with ember.plate("data", 5):
            ember.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(4))

    with pytest.raises(ValueError) as info:
        model()
    msg = str(info.value)
    assert "'y'" in msg and "(4,)" in msg and "plate('data', size=5, dim=-1)" in msg
    assert "Hint" in msg
    ember.enable_validation(False)
    model()  # unchecked when validation is off (the mismatch surfaces later, if at all)


def test_two_plates_claiming_one_dim():
    with pytest.raises(ValueError) as info:
        with ember.plate("a", 2, dim=-1), ember.plate("b", 3, dim=-1):
            pass
    msg = str(info.value)
    assert "'a'" in msg and "'b'" in msg and "dim=-1" in msg and "dim=-2" in msg
    assert get_plates() == ()


def test_duplicate_site_name_raises_value_error():
    def model():
        for _ in range(2):
            ember.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError) as info:
        poutine.trace(model).get_trace()
    msg = str(info.value)
    assert "Multiple sample sites named 'x'" in msg and "unique name" in msg
    assert "Trace Shapes" in msg


def test_param_violating_constraint_raises():
    from ember.distributions import constraints

    with pytest.raises(ValueError) as info:
        ember.param("s", torch.tensor([1.0, -2.0]), constraint=constraints.positive)
    msg = str(info.value)
    assert "'s'" in msg and "(2,)" in msg and "Hint" in msg
    assert "s" not in ember.get_param_store()


def test_bad_plate_arguments():
    with pytest.raises(ValueError, match="negative int"):
        ember.plate("a", 3, dim=1)
    with pytest.raises(TypeError):
        ember.plate(3, 3)
    with pytest.raises(ValueError, match="size"):
        ember.plate("a", -4)


def test_block_plate_removes_one_plate():
    from ember.poutine.plate_messenger import block_plate

    with ember.plate("a", 3), ember.plate("b", 2, subsample_size=1):
        with block_plate("b"):
            frames = [f.name for f in get_plates()]
            x = ember.sample("x", dist.Normal(0.0, 1.0))
        with block_plate(dim=-1):
            assert [f.name for f in get_plates()] == ["b"]
    assert frames == ["a"] and x.shape == (3,)
    with pytest.raises(ValueError, match="no enclosing plate"):
        with block_plate("zzz"):
            pass


def test_pyro_module_paths():
    from ember.poutine.broadcast_messenger import BroadcastMessenger
    from ember.poutine.indep_messenger import CondIndepStackFrame, IndepMessenger
    from ember.poutine.plate_messenger import PlateMessenger
    from ember.poutine.subsample_messenger import SubsampleMessenger

    assert issubclass(PlateMessenger, SubsampleMessenger)
    assert issubclass(SubsampleMessenger, IndepMessenger)
    assert CondIndepStackFrame("p", -1, 2, 0).vectorized
    assert issubclass(BroadcastMessenger, ember.poutine.Messenger)


def test_plate_without_size_declares_a_dim_only():
    def model():
        with ember.plate("free", dim=-2) as idx:
            x = ember.sample("x", dist.Normal(torch.zeros(4, 1), 1.0))
        return idx, x

    tr = poutine.trace(model).get_trace()
    idx, x = tr.nodes["_RETURN"]["value"]
    assert idx is None and x.shape == (4, 1)
    frame = tr.nodes["x"]["cond_indep_stack"][0]
    assert frame.dim == -2 and frame.size == -1


def test_a_plate_of_size_zero_is_refused_and_leaves_no_dim_behind():
    from ember.poutine.runtime import DIM_ALLOCATOR

    def model():
        with ember.plate("empty", 0):
            pass

    with pytest.raises(ValueError, match="plate 'empty' has size 0") as info:
        poutine.trace(model)()
    assert isinstance(info.value, ZeroDivisionError)  # what Pyro raises there
    assert DIM_ALLOCATOR.names() == {}
    with pytest.raises(ValueError, match="positive int"):
        ember.plate("neg", -3)


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("has_rsample", [False, True])
def test_broadcasting_keeps_a_has_rsample_override(depth, has_rsample):
    loc = torch.tensor(0.0, requires_grad=True)
    with ember.plate_stack("p", (2,) * depth):
        d = dist.Normal(loc, 1.0).has_rsample_(has_rsample)
        x = ember.sample("x", d)
    assert x.shape == (2,) * depth
    assert x.requires_grad == has_rsample


def test_subsample_indices_distribution():
    from ember.poutine.subsample_messenger import SubsampleIndices

    ember.set_rng_seed(0)
    idx = SubsampleIndices(10, 4).sample()
    assert idx.shape == (4,) and len(set(idx.tolist())) == 4 and 0 <= idx.min() <= idx.max() < 10
    assert SubsampleIndices(5, 5).sample().tolist() == [0, 1, 2, 3, 4]
    assert float(SubsampleIndices(10, 4).log_prob(idx)) == 0.0
