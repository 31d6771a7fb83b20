"""Hierarchical model with SVI: the eight-schools data (Rubin 1981).

Fits the non-centered hierarchical normal model with a mean-field Gaussian
guide and prints posterior means and 90% intervals from guide draws.

    python examples/eight_schools_svi.py --num-steps 2000
"""

import argparse

import torch

import ember
import ember.distributions as dist
from ember.demo.datasets import load_eight_schools
from ember.distributions import constraints
from ember.infer import SVI, Trace_ELBO
from ember.optim import ClippedAdam


def model(sigma, y=None):
    mu = ember.sample("mu", dist.Normal(0.0, 5.0))
    tau = ember.sample("tau", dist.HalfCauchy(5.0))
    with ember.plate("schools", len(sigma)):
        theta_tilde = ember.sample("theta_tilde", dist.Normal(0.0, 1.0))
        ember.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)


def guide(sigma, y=None):
    # mean-field: every latent gets an independent Gaussian (log-normal for tau)
    for name in ("mu", "log_tau"):
        ember.param(f"{name}_loc", torch.tensor(0.0))
        ember.param(f"{name}_scale", torch.tensor(1.0), constraint=constraints.positive)
    ember.sample("mu", dist.Normal(ember.param("mu_loc"), ember.param("mu_scale")))
    ember.sample("tau", dist.LogNormal(ember.param("log_tau_loc"), ember.param("log_tau_scale")))
    loc = ember.param("theta_tilde_loc", torch.zeros(len(sigma)))
    scale = ember.param(
        "theta_tilde_scale", torch.ones(len(sigma)), constraint=constraints.positive
    )
    with ember.plate("schools", len(sigma)):
        ember.sample("theta_tilde", dist.Normal(loc, scale))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-steps", type=int, default=1000, help="SVI steps (default 1000)")
    parser.add_argument("--num-samples", type=int, default=2000, help="posterior draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_eight_schools()
    sigma, y = data["stderr"], data["effect"]
    ember.set_rng_seed(args.seed)
    ember.clear_param_store()
    svi = SVI(model, guide, ClippedAdam({"lr": 0.03, "lrd": 0.999}), Trace_ELBO(num_particles=4))
    for step in range(1, args.num_steps + 1):
        loss = svi.step(sigma, y)
        if step % max(1, args.num_steps // 5) == 0:
            print(f"step {step:5d}  loss {loss:8.3f}")

    # posterior draws: run the guide, then compute theta = mu + tau * theta_tilde
    draws = {"mu": [], "tau": [], "theta": []}
    with torch.no_grad():
        for _ in range(args.num_samples):
            tr = ember.poutine.trace(guide).get_trace(sigma, y)
            mu, tau = tr.nodes["mu"]["value"], tr.nodes["tau"]["value"]
            draws["mu"].append(mu)
            draws["tau"].append(tau)
            draws["theta"].append(mu + tau * tr.nodes["theta_tilde"]["value"])
    print(f"{'latent':<10}{'mean':>8}{'5%':>8}{'95%':>8}")
    for name, values in draws.items():
        v = torch.stack(values).reshape(args.num_samples, -1)
        q = torch.quantile(v, torch.tensor([0.05, 0.95]), dim=0)
        for i in range(v.shape[1]):
            label = name if v.shape[1] == 1 else f"{name}[{data['schools'][i]}]"
            print(f"{label:<10}{v[:, i].mean():8.2f}{q[0, i]:8.2f}{q[1, i]:8.2f}")


if __name__ == "__main__":
    main()
