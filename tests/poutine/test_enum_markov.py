"""EnumMessenger dim allocation and MarkovMessenger dim recycling."""

import pytest
import torch

import ember
import ember.distributions as dist
from ember import poutine

PAR = {"enumerate": "parallel"}


def test_enum_allocates_fresh_dims_left_of_plates():
    def model():
        a = ember.sample("a", dist.Categorical(torch.ones(3) / 3), infer=PAR)
        with ember.plate("p", 4):
            b = ember.sample("b", dist.Bernoulli(torch.tensor([0.2, 0.4, 0.6])[a]), infer=PAR)
        return a, b

    trace = poutine.trace(poutine.enum(model, first_available_dim=-2)).get_trace()
    a, b = trace.nodes["a"]["value"], trace.nodes["b"]["value"]
    assert a.shape == (3, 1) and torch.equal(a.flatten(), torch.arange(3))
    assert b.shape == (2, 1, 1) and torch.equal(b.flatten(), torch.tensor([0.0, 1.0]))
    assert trace.nodes["a"]["infer"]["_enumerate_dim"] == -2
    assert trace.nodes["b"]["infer"]["_enumerate_dim"] == -3
    assert trace.nodes["b"]["infer"]["_enum_dims"] == {-2: "a", -3: "b"}
    # the plate still sees the full batch
    assert trace.nodes["b"]["fn"].log_prob(b).shape == (2, 3, 4)


def test_enum_expand_and_event_dims():
    def model():
        with ember.plate("p", 4):
            x = ember.sample(
                "x", dist.OneHotCategorical(torch.ones(3) / 3), infer=dict(PAR, expand=True)
            )
        return x

    x = poutine.enum(model, first_available_dim=-2)()
    assert x.shape == (3, 4, 3)
    assert torch.equal(x[:, 0], torch.eye(3))


def test_enum_leaves_other_sites_alone():
    def model():
        ember.sample("n", dist.Normal(0.0, 1.0))
        ember.sample("s", dist.Bernoulli(0.5), infer={"enumerate": "sequential"})
        return ember.sample("o", dist.Bernoulli(0.5), obs=torch.tensor(1.0), infer=PAR)

    trace = poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()
    assert trace.nodes["n"]["value"].shape == ()
    assert trace.nodes["s"]["value"].shape == ()
    assert trace.nodes["o"]["value"].item() == 1.0


def test_enum_monte_carlo_draws():
    def model():
        with ember.plate("p", 5):
            return ember.sample(
                "z", dist.Categorical(torch.ones(4) / 4), infer=dict(PAR, num_samples=7)
            )

    z = poutine.enum(model, first_available_dim=-2)()
    assert z.shape == (7, 5)


def test_enum_rejects_bad_input():
    def model():
        ember.sample("w", dist.Normal(0.0, 1.0), infer=PAR)

    with pytest.raises(ValueError, match="'w'.*no enumerable support"):
        poutine.enum(model, first_available_dim=-1)()
    with pytest.raises(ValueError, match="must be negative"):
        poutine.enum(model, first_available_dim=0)
    with pytest.raises(TypeError, match="negative int"):
        poutine.enum(model, first_available_dim=-1.5)


def test_enum_dim_clash_is_reported():
    def model():
        with ember.plate("p", 3, dim=-2):
            ember.sample("z", dist.Bernoulli(0.5), infer=PAR)

    with pytest.raises(ValueError, match="'z'.*dim -2"):
        poutine.enum(model, first_available_dim=-2)()


def chain(length, history, keep=False):
    def model():
        xs = []
        for t in poutine.markov(range(length), history=history, keep=keep):
            if xs and history:
                probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])[xs[-1]]
            else:
                probs = torch.tensor([0.5, 0.5])
            xs.append(ember.sample(f"x_{t}", dist.Categorical(probs), infer=PAR))
        return xs

    return model


@pytest.mark.parametrize("history", [0, 1, 2, 3])
def test_markov_iterator_recycles_history_plus_one_dims(history):
    trace = poutine.trace(poutine.enum(chain(8, history), first_available_dim=-1)).get_trace()
    dims = [trace.nodes[f"x_{t}"]["infer"]["_enumerate_dim"] for t in range(8)]
    assert dims == [-1 - (t % (history + 1)) for t in range(8)]


def test_markov_history_too_short_is_reported():
    def model():
        xs = []
        for t in poutine.markov(range(3), history=0):
            probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])[xs[-1]] if xs else torch.ones(2) / 2
            xs.append(ember.sample(f"x_{t}", dist.Categorical(probs), infer=PAR))

    with pytest.raises(ValueError, match="'x_1'.*raise its history"):
        poutine.enum(model, first_available_dim=-1)()


def test_without_markov_every_site_gets_its_own_dim():
    def model():
        for t in range(4):
            ember.sample(f"x_{t}", dist.Bernoulli(0.5), infer=PAR)

    trace = poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()
    assert [trace.nodes[f"x_{t}"]["infer"]["_enumerate_dim"] for t in range(4)] == [-1, -2, -3, -4]


def test_markov_context_manager_and_visibility_of_outside_sites():
    def model():
        g = ember.sample("g", dist.Bernoulli(0.5), infer=PAR)
        step = poutine.markov()  # one messenger, entered once per step
        for t in range(4):
            with step:
                ember.sample(f"x_{t}", dist.Bernoulli(0.5 + 0.0 * g), infer=PAR)

    trace = poutine.trace(poutine.enum(model, first_available_dim=-1)).get_trace()
    dims = [trace.nodes[f"x_{t}"]["infer"]["_enumerate_dim"] for t in range(4)]
    assert trace.nodes["g"]["infer"]["_enumerate_dim"] == -1
    assert dims == [-2, -3, -2, -3]
    assert trace.nodes["x_2"]["infer"]["_enum_dims"] == {-1: "g", -2: "x_2", -3: "x_1"}


def test_markov_decorator_recursion():
    @poutine.markov
    def step(t, x):
        if t == 5:
            return
        probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])[x]
        x = ember.sample(f"x_{t}", dist.Categorical(probs), infer=PAR)
        step(t + 1, x)

    trace = poutine.trace(poutine.enum(step, first_available_dim=-1)).get_trace(0, 0)
    dims = [trace.nodes[f"x_{t}"]["infer"]["_enumerate_dim"] for t in range(5)]
    assert dims == [-1, -2, -1, -2, -1]


def test_markov_branches_are_independent_unless_kept():
    def tree(keep):
        m = poutine.markov(history=1, keep=keep)

        def model():
            with m:
                ember.sample("root", dist.Bernoulli(0.5), infer=PAR)
                for side in ["left", "right"]:
                    with m:
                        ember.sample(side, dist.Bernoulli(0.5), infer=PAR)

        return model

    trace = poutine.trace(poutine.enum(tree(False), first_available_dim=-1)).get_trace()
    assert [trace.nodes[n]["infer"]["_enumerate_dim"] for n in ["root", "left", "right"]] == [
        -1,
        -2,
        -2,
    ]
    trace = poutine.trace(poutine.enum(tree(True), first_available_dim=-1)).get_trace()
    assert [trace.nodes[n]["infer"]["_enumerate_dim"] for n in ["root", "left", "right"]] == [
        -1,
        -2,
        -3,
    ]


def test_markov_rejects_bad_arguments():
    with pytest.raises(ValueError, match="history"):
        poutine.markov(history=-1)
    with pytest.raises(ValueError, match="dim"):
        poutine.markov(dim=2)
    with pytest.raises(TypeError, match="callable, an iterable or None"):
        poutine.markov(3)


def test_markov_records_dim_and_name():
    def model():
        for _ in poutine.markov(range(1), dim=-3, name="time"):
            ember.sample("x", dist.Normal(0.0, 1.0))

    site = poutine.trace(model).get_trace().nodes["x"]
    assert site["infer"]["_markov_dim"] == -3 and site["infer"]["_markov_name"] == "time"
