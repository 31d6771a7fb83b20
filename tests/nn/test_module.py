"""PyroModule, PyroParam, PyroSample: names, the param store, caching, plates, pickling."""

import io
import math
import pickle

import pytest
import torch
from torch import nn

import ember
import ember.distributions as dist
from ember import poutine
from ember.distributions import constraints
from ember.infer import SVI, Trace_ELBO
from ember.nn import (
    PyroModule,
    PyroModuleList,
    PyroParam,
    PyroSample,
    clear,
    module_local_param_enabled,
    pyro_method,
    to_pyro_module_,
)
from ember.optim import Adam


@pytest.fixture(autouse=True)
def fresh_store():
    ember.clear_param_store()
    yield
    ember.clear_param_store()


def site_types(trace):
    return {n: s["type"] for n, s in trace.nodes.items() if s["type"] in ("param", "sample")}


class Child(PyroModule):
    def __init__(self, value):
        super().__init__()
        self.a = PyroParam(torch.tensor(value), constraint=constraints.positive)
        self.w = nn.Parameter(torch.tensor(-value))

    def forward(self):
        return self.a + self.w


class Family(PyroModule):
    def __init__(self):
        super().__init__()
        self.child = Child(2.0)
        self.plain = nn.Linear(2, 1)
        self.b = PyroParam(torch.zeros(3))
        self.z = PyroSample(dist.Normal(0.0, 1.0))

    def forward(self):
        return self.child() + self.plain(torch.ones(2)).sum() + self.b.sum() + self.z


# ---------------------------------------------------------------------- names
def test_site_names_follow_the_module_tree():
    model = Family()
    trace = poutine.trace(model).get_trace()
    assert site_types(trace) == {
        "child.a": "param",
        "child.w": "param",
        "plain$$$weight": "param",
        "plain$$$bias": "param",
        "b": "param",
        "z": "sample",
    }
    assert set(ember.get_param_store().keys()) == {
        "child.a",
        "child.w",
        "plain$$$weight",
        "plain$$$bias",
        "b",
    }
    assert {n for n, _ in model.named_parameters()} == {
        "child.a_unconstrained",
        "child.w",
        "plain.weight",
        "plain.bias",
        "b_unconstrained",
    }
    assert {n for n, _ in model.named_pyro_params()} == {
        "child.a",
        "child.w",
        "plain.weight",
        "plain.bias",
        "b",
    }


def test_root_name_prefixes_every_site():
    model = PyroModule("root")
    model.x = PyroSample(dist.Normal(0.0, 1.0))
    model.sub = PyroModule()
    model.sub.y = PyroParam(torch.ones(2))

    @pyro_method
    def run(self):
        return self.x, self.sub.y

    trace = poutine.trace(run).get_trace(model)
    assert site_types(trace) == {"root.x": "sample", "root.sub.y": "param"}


def test_param_store_holds_the_module_tensors():
    model = Family()
    model()
    store = ember.get_param_store()
    assert store.get_unconstrained("child.a") is model.child.a_unconstrained
    assert store.get_unconstrained("child.w") is model.child.w
    assert store.get_unconstrained("plain$$$weight") is model.plain.weight
    # constrained value read from the store equals the module's
    assert torch.equal(store["child.a"].detach(), torch.tensor(2.0))


def test_a_second_instance_shares_the_stored_values():
    first = Family()
    first()
    with torch.no_grad():
        first.child.a_unconstrained.fill_(math.log(5.0))
        first.b_unconstrained.fill_(7.0)
    second = Family()
    second()
    assert second.child.a_unconstrained is first.child.a_unconstrained
    assert torch.allclose(second.child.a.detach(), torch.tensor(5.0))
    assert torch.equal(second.b.detach(), torch.full((3,), 7.0))


def test_module_adopts_values_loaded_into_the_store(tmp_path):
    model = Family()
    model()
    with torch.no_grad():
        model.child.a_unconstrained.fill_(math.log(3.0))
        model.child.w.fill_(-4.0)
    path = tmp_path / "params.pt"
    ember.get_param_store().save(path)
    ember.clear_param_store()
    ember.get_param_store().load(path)
    fresh = Family()
    assert torch.allclose(fresh.child.a.detach(), torch.tensor(2.0))  # not yet synchronized
    fresh()
    assert torch.allclose(fresh.child.a.detach(), torch.tensor(3.0))
    assert torch.equal(fresh.child.w.detach(), torch.tensor(-4.0))
    assert isinstance(fresh.child.a_unconstrained, nn.Parameter)
    assert isinstance(fresh.child.w, nn.Parameter)
    store = ember.get_param_store()
    assert store.get_unconstrained("child.a") is fresh.child.a_unconstrained
    assert store.get_unconstrained("child.w") is fresh.child.w


def test_delete_and_clear_remove_from_the_store():
    model = Family()
    model()
    del model.b
    assert "b" not in ember.get_param_store()
    assert not hasattr(model, "b") and not hasattr(model, "b_unconstrained")
    del model.child
    assert not any(k.startswith("child") for k in ember.get_param_store().keys())
    clear(model)
    assert len(ember.get_param_store()) == 0
    assert list(model.parameters()) == []


def test_deleting_a_submodule_keeps_params_of_similarly_named_siblings():
    model = PyroModule()
    model.c = PyroModule()
    model.c.x = PyroParam(torch.ones(1))
    model.cx = PyroModule()
    model.cx.y = PyroParam(torch.ones(1))

    @pyro_method
    def touch(self):
        return self.c.x, self.cx.y

    touch(model)
    del model.c
    assert set(ember.get_param_store().keys()) == {"cx.y"}


def test_clear_rejects_plain_modules():
    with pytest.raises(TypeError, match="PyroModule"):
        clear(nn.Linear(1, 1))


# ---------------------------------------------------------------------- params
@pytest.mark.parametrize(
    "shape,constraint",
    [
        ((), constraints.positive),
        ((3, 2), constraints.unit_interval),
        ((4,), constraints.simplex),
        ((3, 3), constraints.lower_cholesky),
        ((2, 5), constraints.greater_than(torch.tensor([-1.0, 0.0, 1.0, 2.0, 3.0]))),
    ],
)
def test_param_constraints(shape, constraint):
    init = transform_to_sample(constraint, shape)
    module = PyroModule()
    module.x = PyroParam(init, constraint)
    assert isinstance(module.x_unconstrained, nn.Parameter)
    assert torch.allclose(module.x.detach(), init, atol=1e-5)
    assert bool(constraint.check(module.x).all())
    # the unconstrained value maps onto the constraint
    with torch.no_grad():
        module.x_unconstrained.normal_()
    expected = torch.distributions.transform_to(constraint)(module.x_unconstrained)
    assert torch.allclose(module.x, expected)
    assert bool(constraint.check(module.x).all())
    # setting a tensor updates the parameter in place
    leaf = module.x_unconstrained
    module.x = init
    assert module.x_unconstrained is leaf
    assert torch.allclose(module.x.detach(), init, atol=1e-5)


def transform_to_sample(constraint, shape):
    torch.manual_seed(0)
    return torch.distributions.transform_to(constraint)(torch.randn(shape)).detach()


def test_param_gradients_reach_the_unconstrained_leaf():
    module = PyroModule()
    module.s = PyroParam(torch.tensor(2.0), constraints.positive)

    @pyro_method
    def value(self):
        return self.s

    value(module).backward()
    # d exp(u) / du at u = log 2 is 2
    assert torch.allclose(module.s_unconstrained.grad, torch.tensor(2.0))


def test_lazy_param_init_is_called_once():
    calls = []

    def init():
        calls.append(1)
        return torch.ones(2)

    module = PyroModule()
    module.x = PyroParam(init)
    first, second = module.x, module.x
    assert torch.equal(first, second)
    assert len(calls) == 1


def test_local_param_is_subsampled_in_a_plate():
    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.locs = PyroParam(torch.arange(10.0), event_dim=0)
            self.scales = PyroParam(torch.ones(10, 2), constraints.positive, event_dim=1)

        def forward(self, idx):
            with ember.plate("data", 10, subsample=idx):
                return self.locs, self.scales

    locs, scales = Model()(torch.tensor([1, 3, 8]))
    assert torch.equal(locs.detach(), torch.tensor([1.0, 3.0, 8.0]))
    assert scales.shape == (3, 2)


def test_param_decorator_and_errors():
    class Model(PyroModule):
        @PyroParam(constraint=constraints.positive, event_dim=1)
        def rate(self):
            return torch.full((3,), 2.0)

    m = Model()
    assert torch.allclose(m.rate.detach(), torch.full((3,), 2.0))
    assert m._pyro_params["rate"] == (constraints.positive, 1)
    with pytest.raises(TypeError, match="tensor"):
        PyroModule().x = PyroParam("not a tensor")
    with pytest.raises(TypeError, match="decorator"):
        PyroParam(torch.ones(1))(lambda self: torch.ones(1))


# --------------------------------------------------------------------- samples
class Hierarchy(PyroModule):
    def __init__(self):
        super().__init__()
        self.scale = PyroParam(torch.tensor(0.5), constraints.positive)
        self.mu = PyroSample(dist.Normal(0.0, 1.0))
        self.x = PyroSample(lambda self: dist.Normal(self.mu, self.scale).expand([3]).to_event(1))
        self.y = PyroSample(lambda self: self.x.exp())

    def forward(self):
        return self.mu, self.x, self.y, self.x


def test_samples_are_cached_within_a_call_and_fresh_across_calls():
    model = Hierarchy()
    ember.set_rng_seed(0)
    trace = poutine.trace(model).get_trace()
    mu, x, y, x_again = trace.nodes["_RETURN"]["value"]
    assert x is x_again
    assert site_types(trace) == {"scale": "param", "mu": "sample", "x": "sample", "y": "sample"}
    assert trace.nodes["y"]["infer"] == {"_deterministic": True}
    assert torch.equal(trace.nodes["x"]["fn"].base_dist.loc, mu.expand(3))
    assert torch.allclose(y, x.exp())
    # the log-density of the dependent site is that of N(mu, 0.5)
    expected = torch.distributions.Normal(mu, 0.5).log_prob(x).sum()
    assert torch.allclose(trace.nodes["x"]["fn"].log_prob(x), expected)
    second = model()
    assert not torch.equal(second[0], mu)


def test_samples_outside_a_call_draw_without_sites():
    model = Hierarchy()
    with poutine.trace() as tr:
        a, b = model.mu, model.mu
    assert not torch.equal(a, b)
    assert site_types(tr.trace) == {}


def test_conditioned_sample_attribute():
    model = Hierarchy()
    mu, x, y, _ = poutine.condition(model, data={"mu": torch.tensor(1.5)})()
    assert torch.equal(mu, torch.tensor(1.5))


def test_sample_attribute_inside_a_plate_is_batched():
    class Local(PyroModule):
        def __init__(self):
            super().__init__()
            self.z = PyroSample(dist.Normal(0.0, 1.0))

        def forward(self, data):
            with ember.plate("data", len(data)):
                z = self.z
                ember.sample("obs", dist.Normal(z, 1.0), obs=data)
            return z

    trace = poutine.trace(Local()).get_trace(torch.zeros(4))
    assert trace.nodes["z"]["value"].shape == (4,)
    assert [f.name for f in trace.nodes["z"]["cond_indep_stack"]] == ["data"]


def test_prior_may_make_its_own_sample_statements():
    def prior(self):
        a = ember.sample("a", dist.Normal(0.0, 1.0))
        return dist.Normal(a, 1.0)

    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.b = PyroSample(prior)

        def forward(self):
            return self.b + self.b

    trace = poutine.trace(Model()).get_trace()
    assert list(trace.stochastic_nodes) == ["a", "b"]


def test_pyro_sample_rejects_bad_priors():
    with pytest.raises(TypeError, match="exactly one argument"):
        PyroSample(lambda a, b: dist.Normal(0.0, 1.0))
    with pytest.raises(TypeError, match="distribution"):
        PyroSample(3.0)


def test_pyro_method_shares_the_cache_with_forward():
    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.z = PyroSample(dist.Normal(0.0, 1.0))

        @pyro_method
        def read(self):
            return self.z

        def forward(self):
            return self.read(), self.z

    a, b = Model()()
    assert a is b


def test_sample_replaces_a_parameter_of_a_torch_module():
    ember.set_rng_seed(1)
    layer = PyroModule[nn.Linear](3, 2)
    layer.weight = PyroSample(dist.Normal(0.0, 1.0).expand([2, 3]).to_event(2))
    x = torch.randn(3)
    trace = poutine.trace(layer).get_trace(x)
    w = trace.nodes["weight"]["value"]
    assert torch.allclose(trace.nodes["_RETURN"]["value"], x @ w.T + layer.bias)
    assert site_types(trace) == {"weight": "sample", "bias": "param"}


# ---------------------------------------------------------------- inference
def test_svi_fits_a_conjugate_posterior_with_modules():
    data = torch.tensor([0.3, 1.1, 2.0, 0.6])

    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.mu = PyroSample(dist.Normal(0.0, 1.0))

        def forward(self, data):
            mu = self.mu
            with ember.plate("data", len(data)):
                ember.sample("obs", dist.Normal(mu, 1.0), obs=data)

    class Guide(PyroModule):
        def __init__(self):
            super().__init__()
            self.loc = nn.Parameter(torch.tensor(0.0))
            self.scale = PyroParam(torch.tensor(1.0), constraints.positive)
            self.mu = PyroSample(lambda self: dist.Normal(self.loc, self.scale))

        def forward(self, data):
            return self.mu

    ember.set_rng_seed(0)
    model, guide = Model(), Guide()
    svi = SVI(
        model, guide, Adam({"lr": 0.05}), Trace_ELBO(num_particles=8, vectorize_particles=True)
    )
    for _ in range(600):
        svi.step(data)
    # exact posterior: N(sum(x) / (n + 1), 1 / (n + 1))
    n = len(data)
    assert abs(guide.loc.item() - data.sum().item() / (n + 1)) < 0.05
    assert abs(guide.scale.item() - (1 / (n + 1)) ** 0.5) < 0.05
    assert set(ember.get_param_store().keys()) == {"loc", "scale"}


def test_elbo_module_parameters_are_the_module_parameters():
    class Model(PyroModule):
        def __init__(self):
            super().__init__()
            self.z = PyroSample(dist.Normal(0.0, 1.0))

        def forward(self):
            ember.sample("x", dist.Normal(self.z, 1.0), obs=torch.tensor(1.0))

    class Guide(PyroModule):
        def __init__(self):
            super().__init__()
            self.loc = nn.Parameter(torch.tensor(0.2))
            self.z = PyroSample(lambda self: dist.Delta(self.loc))

        def forward(self):
            return self.z

    model, guide = Model(), Guide()
    loss_fn = Trace_ELBO()(model, guide)
    assert {n for n, _ in loss_fn.named_parameters()} == {"guide.loc"}
    loss = loss_fn()
    loss.backward()
    # loss = -log N(0.2; 0, 1) - log N(1; 0.2, 1); d/dloc = 0.2 - (1 - 0.2)
    assert torch.allclose(guide.loc.grad, torch.tensor(0.2 - 0.8))


# -------------------------------------------------------- local parameters
def test_local_params_stay_out_of_the_store():
    with ember.settings.context(module_local_params=True):
        assert module_local_param_enabled()
        first, second = Family(), Family()
        with torch.no_grad():
            first.b_unconstrained.fill_(3.0)
        trace = poutine.trace(first).get_trace()
        second()
        assert len(ember.get_param_store()) == 0
        assert site_types(trace)["b"] == "param"
        assert trace.nodes["b"]["value"].unconstrained() is first.b_unconstrained
        assert trace.nodes["plain$$$weight"]["value"] is first.plain.weight
        assert torch.equal(second.b.detach(), torch.zeros(3))
    assert not module_local_param_enabled()


def test_local_params_refuse_global_param_statements():
    class Model(PyroModule):
        def forward(self):
            return ember.param("global_thing", torch.zeros(1))

    with ember.settings.context(module_local_params=True):
        with pytest.raises(NotImplementedError, match="global_thing"):
            Model()()
    assert "global_thing" not in ember.get_param_store()


# ---------------------------------------------------------- mixins, lists
def test_mixin_factory_is_cached_and_named():
    assert PyroModule[nn.Module] is PyroModule
    assert PyroModule[nn.Linear] is PyroModule[nn.Linear]
    assert PyroModule[PyroModule[nn.Linear]] is PyroModule[nn.Linear]
    assert PyroModule[nn.ModuleList] is PyroModuleList
    net = PyroModule[nn.Sequential](PyroModule[nn.Linear](2, 3), PyroModule[nn.Tanh]())
    assert type(net).__name__ == "PyroSequential"
    assert [m._pyro_name for m in net] == ["0", "1"]
    with pytest.raises(TypeError, match="nn.Module subclass"):
        PyroModule[int]


def test_module_list_slices_keep_site_names():
    class Net(PyroModule):
        def __init__(self):
            super().__init__()
            self.layers = PyroModuleList([PyroModule[nn.Linear](2, 2) for _ in range(3)])
            for layer in self.layers:
                layer.weight = PyroSample(dist.Normal(0.0, 1.0).expand([2, 2]).to_event(2))

        def forward(self, x):
            for layer in self.layers[:-1]:
                x = layer(x)
            return self.layers[-1](x)

    trace = poutine.trace(Net()).get_trace(torch.ones(2))
    names = {n for n, t in site_types(trace).items() if t == "sample"}
    assert names == {f"layers.{i}.weight" for i in range(3)}
    assert isinstance(Net().layers[:2], nn.ModuleList)


def test_to_pyro_module_converts_in_place():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    x = torch.randn(3)
    expected = net(x)
    to_pyro_module_(net)
    assert isinstance(net, PyroModule[nn.Sequential])
    assert isinstance(net[0], PyroModule[nn.Linear])
    assert net[0]._pyro_name == "0"
    assert torch.allclose(net(x), expected)
    assert set(ember.get_param_store().keys()) == {"0.weight", "0.bias"}
    with pytest.raises(TypeError, match="nn.Module"):
        to_pyro_module_("net")


def test_bayesian_recurrent_network():
    gru = nn.GRU(2, 3)
    to_pyro_module_(gru)
    for name, value in list(gru.named_parameters(recurse=False)):
        setattr(
            gru, name, PyroSample(dist.Normal(0.0, 1.0).expand(value.shape).to_event(value.dim()))
        )
    x = torch.randn(4, 1, 2)
    trace = poutine.trace(gru).get_trace(x)
    assert {n for n, t in site_types(trace).items() if t == "sample"} == set(
        gru._flat_weights_names
    )
    out1, _ = gru(x)
    out2, _ = gru(x)
    assert not torch.allclose(out1, out2)


# ----------------------------------------------------------- serialization
def test_state_dict_round_trip_updates_the_store():
    model = Family()
    model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert "child.a_unconstrained" in state and "b_unconstrained" in state
    with torch.no_grad():
        state["child.a_unconstrained"].fill_(math.log(9.0))
    model.load_state_dict(state)
    assert torch.allclose(model.child.a.detach(), torch.tensor(9.0))
    assert torch.allclose(ember.get_param_store()["child.a"].detach(), torch.tensor(9.0))
    other = Family()
    other.load_state_dict(model.state_dict())
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), other.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_modules_pickle_and_torch_save():
    torch.manual_seed(0)
    net = PyroModule[nn.Sequential](PyroModule[nn.Linear](3, 2), PyroModule[nn.Sigmoid]())
    net.extra = PyroParam(torch.tensor(0.5), constraints.unit_interval)
    x = torch.randn(3)
    expected = net(x)
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    ember.clear_param_store()
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded).__name__ == "PyroSequential"
    assert torch.allclose(loaded(x), expected)
    assert torch.allclose(loaded.extra.detach(), torch.tensor(0.5))
    model = PyroModule[nn.Linear](2, 1)
    model.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 2]).to_event(2))
    copy = pickle.loads(pickle.dumps(model))
    trace = poutine.trace(copy).get_trace(torch.ones(2))
    assert site_types(trace) == {"weight": "sample", "bias": "param"}


class Decorated(PyroModule):
    @PyroParam(constraint=constraints.positive)
    def scale(self):
        return torch.tensor(2.0)

    @PyroSample
    def loc(self):
        return dist.Normal(0.0, self.scale)

    def forward(self):
        return self.loc


def test_decorated_modules_pickle():
    model = Decorated()
    model()
    copy = pickle.loads(pickle.dumps(model))
    trace = poutine.trace(copy).get_trace()
    assert site_types(trace) == {"scale": "param", "loc": "sample"}
    assert torch.allclose(trace.nodes["loc"]["fn"].scale, torch.tensor(2.0))
