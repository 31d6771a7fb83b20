"""Gradient variance of ember's pathwise estimators against simpler alternatives.

For a quadratic cost ``f(z) = z^T A z + b^T z`` prints the per-sample variance
(summed over parameter entries) of

* OMTMultivariateNormal vs MultivariateNormal (plain reparameterization) for
  ``scale_tril`` in dimension 5 with an anisotropic covariance;
* AVFMultivariateNormal before and after adapting its control variate with the
  documentation's training loop;
* MixtureOfDiagNormals' pathwise logits gradient vs the score-function
  (REINFORCE) gradient of the same expectation;

and the time per backward pass of each estimator. When pyro-ppl is installed
the same figures are printed for Pyro's classes.

Run: .venv/bin/python benchmarks/pathwise_gradients.py
"""

import time

import torch

import ember.distributions as edist

try:
    import pyro.distributions as pdist
except ImportError:  # pyro is optional here
    pdist = None

NUM_BATCHES, BATCH_SIZE = 200, 50


def per_sample_variance(make_dist, cost, param, score_function=False):
    """Per-sample variance (summed over entries) of the gradient of E[cost] wrt ``param``."""
    rows = []
    start = time.perf_counter()
    for _ in range(NUM_BATCHES):
        d = make_dist()
        if score_function:
            z = d.sample((BATCH_SIZE,))
            surrogate = (cost(z).detach() * d.log_prob(z)).mean()
        else:
            surrogate = cost(d.rsample((BATCH_SIZE,))).mean()
        (g,) = torch.autograd.grad(surrogate, [param])
        rows.append(g.reshape(-1))
    elapsed = (time.perf_counter() - start) / NUM_BATCHES
    rows = torch.stack(rows)
    return (rows.var(0) * BATCH_SIZE).sum().item(), elapsed


def quadratic(D, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g)
    A = A @ A.t() / D
    b = torch.randn(D, generator=g)
    return lambda z: torch.einsum("...i,ij,...j->...", z, A, z) + z @ b


def omt_vs_reparam(lib, name):
    torch.manual_seed(0)
    D = 5
    loc = torch.randn(D)
    L = (
        torch.randn(D, D).tril(-1) * 0.5 + torch.diag(torch.linspace(0.3, 3.0, D))
    ).requires_grad_()
    cost = quadratic(D, 1)
    v_rep, t_rep = per_sample_variance(lambda: lib.MultivariateNormal(loc, scale_tril=L), cost, L)
    v_omt, t_omt = per_sample_variance(lambda: lib.OMTMultivariateNormal(loc, L), cost, L)
    print(
        f"{name:6s} scale_tril grad variance: reparam {v_rep:9.3f}  OMT {v_omt:9.3f}  "
        f"ratio {v_omt / v_rep:.3f}   ({t_rep * 1e3:.2f} vs {t_omt * 1e3:.2f} ms/step)"
    )


def avf_adaptation(lib, name):
    torch.manual_seed(0)
    D = 3
    loc = torch.tensor([1.0, -0.5, 2.0])
    scale_tril = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.7, 0.0], [-0.3, 0.2, 1.5]])
    control_var = torch.full((2, 1, D), 0.1, requires_grad=True)
    opt_cv = torch.optim.Adam([control_var], lr=0.1, betas=(0.5, 0.999))
    start = time.perf_counter()
    for _ in range(1000):
        d = lib.AVFMultivariateNormal(loc, scale_tril, control_var)
        z = d.rsample()
        cost = torch.pow(z, 2.0).sum()
        cost.backward()
        opt_cv.step()
        opt_cv.zero_grad()
    train = time.perf_counter() - start
    L = scale_tril.clone().requires_grad_()

    def cost(z):
        return z.pow(2).sum(-1)

    zero = torch.zeros(2, 1, D)
    v0, _ = per_sample_variance(lambda: lib.AVFMultivariateNormal(loc, L, zero), cost, L)
    cv = control_var.detach()
    v1, _ = per_sample_variance(lambda: lib.AVFMultivariateNormal(loc, L, cv), cost, L)
    print(
        f"{name:6s} AVF scale_tril grad variance: initial {v0:8.3f}  adapted {v1:8.3f}  "
        f"ratio {v1 / v0:.3f}   (1000 adaptation steps in {train:.2f} s)"
    )


def mixture_logits(lib, name):
    torch.manual_seed(0)
    K, D = 4, 3
    locs = torch.randn(K, D) * 2
    scale = torch.rand(K, D) + 0.5
    logits = torch.randn(K, requires_grad=True)
    cost = quadratic(D, 2)
    make = lambda: lib.MixtureOfDiagNormals(locs, scale, logits)  # noqa: E731
    v_path, t_path = per_sample_variance(make, cost, logits)
    v_sf, t_sf = per_sample_variance(make, cost, logits, score_function=True)
    print(
        f"{name:6s} mixture logits grad variance: score function {v_sf:9.3f}  "
        f"pathwise {v_path:9.3f}  ratio {v_path / v_sf:.3f}   "
        f"({t_sf * 1e3:.2f} vs {t_path * 1e3:.2f} ms/step)"
    )


if __name__ == "__main__":
    libs = [(edist, "ember")] + ([(pdist, "pyro")] if pdist is not None else [])
    for lib, name in libs:
        omt_vs_reparam(lib, name)
        avf_adaptation(lib, name)
        mixture_logits(lib, name)
