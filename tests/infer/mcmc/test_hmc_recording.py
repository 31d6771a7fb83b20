"""The recorded potential-and-gradient graph of HMC/NUTS (``record_potential_grad``):
exact against autograd, rejected when it cannot be exact, and what the kernel uses."""

import torch

import ember
import ember.distributions as dist
from ember.infer.mcmc import NUTS
from ember.infer.mcmc.hmc import record_potential_grad


def test_recorded_gradient_matches_autograd():
    a = torch.tensor([[2.0, 0.5], [0.5, 1.0]])

    def potential(z):
        return 0.5 * z @ a @ z + torch.log1p(z.exp()).sum()

    recorded = record_potential_grad(potential, torch.zeros(2))
    assert recorded is not None
    for z in (torch.tensor([0.3, -1.2]), torch.tensor([2.0, 0.7])):
        g, pe = recorded(z)
        # closed form: A z + sigmoid(z)
        assert torch.allclose(g, a @ z + torch.sigmoid(z), atol=1e-6)
        assert torch.allclose(pe, potential(z))
        assert not g.requires_grad and not pe.requires_grad


def test_batched_recording_gives_each_rows_gradient():
    def potential(z):  # (C, D) -> (C,)
        return (z**2).sum(-1) * torch.tensor([1.0, 2.0, 3.0])

    recorded = record_potential_grad(potential, torch.ones(3, 2), batched=True)
    z = torch.tensor([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])
    g, pe = recorded(z)
    assert torch.allclose(pe, potential(z))
    assert torch.allclose(g, 2 * z * torch.tensor([[1.0], [2.0], [3.0]]))


def test_value_dependent_branch_is_rejected():
    # a Python branch on the value records one path only: the checks at random points
    # around the recording point catch it
    def potential(z):
        if float(z.sum()) > 0:
            return (z**2).sum()
        return (z**4).sum()

    assert record_potential_grad(potential, torch.full((3,), 5.0)) is None


def test_kernel_records_and_treats_params_as_constants():
    # a model reading an ember.param (which requires grad) still gets a recorded graph
    # whose outputs do not require grad
    ember.clear_param_store()

    def model():
        loc = ember.param("loc", torch.tensor(1.5))
        ember.sample("x", dist.Normal(loc, 2.0))

    ember.set_rng_seed(0)
    kernel = NUTS(model)
    kernel.setup(10)
    assert kernel._grad_fn is not None
    z = torch.tensor([0.5])
    g, pe = kernel.potential_grad_flat(z)
    assert not g.requires_grad and not pe.requires_grad
    assert torch.allclose(g, (z - 1.5) / 4.0)
