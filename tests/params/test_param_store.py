"""ParamStore: constrained storage, mapping API, state, safe atomic save/load, scope."""

import os
import pickle

import pytest
import torch

import ember
from ember.distributions import constraints
from ember.params.param_store import ParamStoreDict, _decode_constraint, _encode_constraint


@pytest.fixture
def store():
    ember.clear_param_store()
    yield ember.get_param_store()
    ember.clear_param_store()


def test_constrained_values_stored_unconstrained(store):
    s = ember.param("s", torch.tensor([1.0, 4.0]), constraint=constraints.positive)
    u = dict(store.named_parameters())["s"]
    assert torch.allclose(u, torch.log(torch.tensor([1.0, 4.0])))
    assert u.requires_grad and u.is_leaf
    assert s.unconstrained() is u
    assert torch.allclose(store["s"], torch.tensor([1.0, 4.0]))
    p = ember.param("p", torch.tensor(0.25), constraint=constraints.unit_interval)
    assert p.item() == pytest.approx(0.25)
    # the initial value is used only the first time
    again = ember.param("s", torch.tensor([9.0, 9.0]), constraint=constraints.positive)
    assert torch.allclose(again, torch.tensor([1.0, 4.0]))
    # gradients flow to the unconstrained leaf
    (store["s"].sum()).backward()
    assert torch.allclose(u.grad, torch.tensor([1.0, 4.0]))


def test_mapping_api(store):
    ember.param("a", torch.zeros(2))
    ember.param("b", lambda: torch.ones(3))
    assert "a" in store and "c" not in store
    assert sorted(store.keys()) == ["a", "b"] == sorted(store.get_all_param_names())
    assert [v.shape for v in store.values()] == [torch.Size([2]), torch.Size([3])]
    assert dict(store.items())["b"].tolist() == [1.0, 1.0, 1.0]
    ua = dict(store.named_parameters())["a"]
    assert store.param_name(ua) == "a"
    del store["a"]
    assert "a" not in store and store.param_name(ua) is None
    with pytest.raises(KeyError, match="no parameter named 'a'"):
        store["a"]
    with pytest.raises(KeyError):
        ember.param("missing")
    with pytest.raises(TypeError):
        ember.param("bad", [1.0, 2.0])


def test_replace_param_and_setitem(store):
    old = ember.param("w", torch.tensor(1.0), constraint=constraints.positive)
    store.replace_param("w", torch.tensor(3.0), old)
    assert store["w"].item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="replace_param"):
        store.replace_param("w", torch.tensor(5.0), old)


def test_get_and_set_state(store):
    ember.param("a", torch.tensor(2.0), constraint=constraints.greater_than(1.0))
    state = store.get_state()
    assert set(state) == {"params", "constraints"}
    other = ParamStoreDict()
    other.set_state(state)
    assert other["a"].item() == pytest.approx(2.0)
    assert other._constraints["a"] is state["constraints"]["a"]


def test_module_parameters_share_storage(store):
    net = torch.nn.Linear(2, 1)
    ember.module("net", net)
    assert dict(store.named_parameters())["net$$$weight"] is net.weight
    assert store.param_name(net.bias) == "net$$$bias"


@pytest.mark.parametrize(
    "constraint",
    [
        constraints.real,
        constraints.positive,
        constraints.unit_interval,
        constraints.simplex,
        constraints.lower_cholesky,
        constraints.greater_than(-1.5),
        constraints.less_than(torch.tensor([1.0, 2.0])),
        constraints.interval(-2.0, 3.0),
        constraints.independent(constraints.positive, 1),
        constraints.ordered_vector,
        constraints.corr_cholesky,
    ],
    ids=lambda c: type(c).__name__,
)
def test_constraint_registry_round_trip(constraint):
    assert _encode_constraint(type(constraints.simplex)())["name"] == "simplex"
    record = _encode_constraint(constraint)
    back = _decode_constraint(record)
    assert type(back) is type(constraint)
    for attr in ("lower_bound", "upper_bound", "reinterpreted_batch_ndims"):
        if hasattr(constraint, attr):
            a, b = getattr(constraint, attr), getattr(back, attr)
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def test_unknown_constraint_refused_at_save(store, tmp_path):
    class Odd(constraints.Constraint):
        def check(self, value):
            return value == value

    torch.distributions.transform_to.register(Odd, lambda c: torch.distributions.ExpTransform())
    store.setdefault("x", torch.zeros(1), constraint=Odd())
    path = tmp_path / "p.pt"
    with pytest.raises(ValueError, match="not a registered constraint"):
        store.save(path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # no temp file left behind


def test_save_load_round_trip(store, tmp_path):
    ember.param("loc", torch.randn(3))
    ember.param("scale", torch.tensor([0.5, 2.0]), constraint=constraints.positive)
    ember.param("b", torch.tensor(0.2), constraint=constraints.interval(-1.0, 1.0))
    ember.param("probs", torch.tensor([0.2, 0.3, 0.5]), constraint=constraints.simplex)
    before = {k: v.detach().clone() for k, v in store.items()}
    cons_before = dict(store._constraints)
    path = tmp_path / "params.pt"
    store.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["params.pt"]
    store.clear()
    store.load(path)
    assert sorted(store.keys()) == sorted(before)
    for k, v in before.items():
        assert torch.allclose(store[k], v, atol=1e-6)
        assert store[k].dtype == v.dtype
        c = store._constraints[k]
        assert type(c) is type(cons_before[k])
    assert store._constraints["b"].lower_bound == -1.0
    assert dict(store.named_parameters())["loc"].requires_grad
    store.load(path, map_location="cpu")


def test_save_overwrites_atomically(store, tmp_path):
    path = tmp_path / "params.pt"
    ember.param("a", torch.zeros(1))
    store.save(path)
    store["a"] = torch.ones(1)
    store.save(path)
    store.clear()
    store.load(path)
    assert store["a"].item() == 1.0


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_runs_nothing(store, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    # a torch.save-style file whose pickle would create the marker file when loaded unsafely
    torch.save({"format": "ember_param_store", "params": {"x": _Evil(str(marker))}}, evil)
    assert not marker.exists()
    with pytest.raises(ValueError, match="refused"):
        store.load(evil)
    assert not marker.exists()
    # a raw pickle too
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(ValueError):
        store.load(raw)
    assert not marker.exists()
    assert len(store) == 0
    # the payload is real: an unrestricted unpickle does create the marker
    handle = pickle.loads(raw.read_bytes())
    handle.close()
    assert marker.exists()


def test_unknown_or_malformed_files(store, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="not a readable ember param-store file"):
        store.load(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not an ember param-store file"):
        store.load(other)
    bad_constraint = tmp_path / "bad.pt"
    torch.save(
        {
            "format": "ember_param_store",
            "version": 1,
            "params": {"x": torch.zeros(1)},
            "constraints": {"x": {"name": "no_such_constraint", "args": {}}},
        },
        bad_constraint,
    )
    with pytest.raises(ValueError, match="unknown constraint 'no_such_constraint'"):
        store.load(bad_constraint)


def test_scope_isolates_parameters(store):
    ember.param("outer", torch.zeros(1))
    with store.scope() as state:
        assert len(store) == 0
        ember.param("inner", torch.ones(1))
    assert sorted(store.keys()) == ["outer"]
    assert sorted(state["params"]) == ["inner"]
    with store.scope(state):
        assert store["inner"].item() == 1.0
    assert "inner" not in store


@pytest.mark.parametrize(
    "constraint, value",
    [
        (constraints.real, torch.tensor([-1.0, 2.0])),
        (constraints.positive, torch.tensor([0.5, 3.0])),
        (constraints.greater_than(2.0), torch.tensor([2.5, 7.0])),
        (constraints.interval(-1.0, 3.0), torch.tensor([0.0, 2.5])),
        (constraints.unit_interval, torch.tensor([0.2, 0.9])),
        (constraints.simplex, torch.tensor([0.2, 0.3, 0.5])),
        (constraints.lower_cholesky, torch.tensor([[2.0, 0.0], [0.5, 1.5]])),
    ],
)
def test_read_value_and_gradient_equal_torch_transform_to(store, constraint, value):
    # the store may drop no-op parts of the transform (e.g. `0 + 1 * x` after exp);
    # values and gradients must be those of torch's transform_to
    read = ember.param("p", value, constraint=constraint)
    leaf = dict(store.named_parameters())["p"]
    twin = leaf.detach().clone().requires_grad_()
    expected = torch.distributions.transform_to(constraint)(twin)
    assert torch.equal(read.detach(), expected.detach())
    torch.testing.assert_close(read.detach(), value)
    weights = torch.arange(1.0, value.numel() + 1).reshape(value.shape)
    (read * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(leaf.grad, twin.grad)


def test_positive_param_is_one_exp_of_the_leaf(store):
    s = ember.param("s", torch.tensor(2.0), constraint=constraints.positive)
    assert type(s.grad_fn).__name__ == "ExpBackward0"
    r = ember.param("r", torch.tensor(2.0))
    assert r is dict(store.named_parameters())["r"]  # real: the leaf itself
