"""Shared check for pathwise gradient estimators: Monte Carlo vs analytic gradients."""

import torch


def batched_gradient_estimates(make_dist, cost, params, num_batches=50, batch_size=400):
    """Gradients of ``mean(cost(z))`` over ``num_batches`` independent batches, stacked.

    Returns ``(num_batches, P)``: one flattened gradient of all ``params`` per batch.
    """
    rows = []
    for _ in range(num_batches):
        z = make_dist().rsample((batch_size,))
        grads = torch.autograd.grad(cost(z).mean(), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def z_scores(estimates, exact_grads):
    """``(mean - exact) / standard_error`` per parameter entry, and the standard errors."""
    exact = torch.cat([g.reshape(-1) for g in exact_grads])
    mean = estimates.mean(0)
    se = estimates.std(0) / estimates.size(0) ** 0.5
    return (mean - exact) / se, se, exact
