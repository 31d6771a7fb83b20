"""Enumeration: a Gaussian mixture on iris with the assignments summed out.

The component of each flower is a discrete latent; ``config_enumerate`` marks
it for parallel enumeration and ``TraceEnum_ELBO`` sums it out exactly, so
only the continuous latents (component means, MAP-estimated with Delta
guides) and the parameters are fitted. Prints the fitted components and the
posterior responsibilities of a few flowers.

    python examples/gmm_enumeration.py --num-steps 300 --components 3
"""

import argparse

import torch

import ember
import ember.distributions as dist
from ember.demo.datasets import load_iris
from ember.distributions import constraints
from ember.infer import SVI, TraceEnum_ELBO, config_enumerate
from ember.optim import Adam


@config_enumerate
def model(x, k):
    weights = ember.sample("weights", dist.Dirichlet(x.new_ones(k)))
    scales = ember.param("scales", x.new_ones(k, x.shape[1]), constraint=constraints.positive)
    with ember.plate("components", k):
        locs = ember.sample("locs", dist.Normal(x.new_zeros(x.shape[1]), 3.0).to_event(1))
    with ember.plate("flowers", x.shape[0]):
        a = ember.sample("assignment", dist.Categorical(weights))
        ember.sample("x", dist.Normal(locs[a], scales[a]).to_event(1), obs=x)


def guide(x, k):
    # point estimates (MAP) of the global latents; the assignments are enumerated
    w = ember.param("weights_map", x.new_ones(k) / k, constraint=constraints.simplex)
    ember.sample("weights", dist.Delta(w, event_dim=1))
    init = x[torch.linspace(0, x.shape[0] - 1, k).long()]  # spread-out data points
    locs = ember.param("locs_map", init)
    with ember.plate("components", k):
        ember.sample("locs", dist.Delta(locs, event_dim=1))


def responsibilities(x, k):
    """Posterior P(assignment | x) under the fitted point estimates."""
    w, locs = ember.param("weights_map"), ember.param("locs_map")
    scales = ember.param("scales")
    lp = dist.Normal(locs, scales).to_event(1).log_prob(x.unsqueeze(-2)) + w.log()
    return (lp - lp.logsumexp(-1, keepdim=True)).exp()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-steps", type=int, default=300, help="SVI steps (default 300)")
    parser.add_argument("--components", type=int, default=3, help="mixture components")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    iris = load_iris()
    x = iris["data"]
    x = (x - x.mean(0)) / x.std(0)
    ember.set_rng_seed(args.seed)
    ember.clear_param_store()
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    svi = SVI(model, guide, Adam({"lr": 0.05}), elbo)
    for step in range(1, args.num_steps + 1):
        loss = svi.step(x, args.components)
        if step % max(1, args.num_steps // 5) == 0:
            print(f"step {step:5d}  loss per flower {loss / x.shape[0]:.4f}")
    with torch.no_grad():
        print("weights:", [round(v, 3) for v in ember.param("weights_map").tolist()])
        print("component means (standardized):")
        for row in ember.param("locs_map"):
            print("  ", [round(v, 2) for v in row.tolist()])
        resp = responsibilities(x, args.components)
        for i in (0, 60, 120):
            probs = [round(p, 3) for p in resp[i].tolist()]
            species = iris["species_names"][iris["species"][i]]
            print(f"flower {i:3d} ({species}): P(component) = {probs}")


if __name__ == "__main__":
    main()
