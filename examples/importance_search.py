"""Importance sampling and systematic search.

1. Search enumerates every execution of a small discrete program (two dice,
   observed to sum to at least 10) and gives its exact posterior.
2. Importance samples from the prior (or a guide) and reweights by the
   likelihood; on a Normal-Normal model its posterior mean is compared with
   the closed form, and a better proposal (the guide) raises the effective
   sample size.

    python examples/importance_search.py --num-samples 2000
"""

import argparse
import itertools

import torch

import ember
import ember.distributions as dist
from ember.infer import EmpiricalMarginal, Importance, Search


def dice(threshold):
    a = ember.sample("a", dist.Categorical(torch.ones(6) / 6))
    b = ember.sample("b", dist.Categorical(torch.ones(6) / 6))
    total = a + b + 2  # faces 1..6
    # a hard observation: weight 1 if the sum reaches the threshold, else 0
    ember.factor("at_least", torch.where(total >= threshold, 0.0, -float("inf")))
    return total


def normal_model(y):
    mu = ember.sample("mu", dist.Normal(0.0, 1.0))
    with ember.plate("data", len(y)):
        ember.sample("y", dist.Normal(mu, 1.0), obs=y)


def normal_guide(y):
    # a proposal near the posterior: N(sum(y) / (n + 1), 1 / sqrt(n + 1)) widened
    n = len(y)
    ember.sample("mu", dist.Normal(y.sum() / (n + 1), 2.0 / (n + 1) ** 0.5))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=2000, help="importance samples")
    parser.add_argument("--threshold", type=int, default=10, help="dice: observed sum >= this")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ember.set_rng_seed(args.seed)

    # 1. exact posterior of the first die by systematic search
    posterior = Search(dice).run(args.threshold)
    marginal = EmpiricalMarginal(posterior, sites="a")
    pairs = [
        (a, b) for a, b in itertools.product(range(6), range(6)) if a + b + 2 >= args.threshold
    ]
    print(f"dice with sum >= {args.threshold}: P(first die = k)")
    for k in range(6):
        exact = sum(1 for a, _ in pairs if a == k) / len(pairs)
        p = marginal.log_prob(torch.tensor(k)).exp().item()
        print(f"  k={k + 1}  search {p:.4f}  brute force {exact:.4f}")

    # 2. importance sampling on a conjugate model
    y = torch.tensor([0.8, 1.6, 1.1, 0.4, 1.9])
    n = len(y)
    exact_mean = (y.sum() / (n + 1)).item()
    for name, guide in (("prior", None), ("guide", normal_guide)):
        imp = Importance(normal_model, guide=guide, num_samples=args.num_samples).run(y)
        mean = EmpiricalMarginal(imp, sites="mu").mean.item()
        print(
            f"importance ({name} proposal): posterior mean of mu {mean:.4f} "
            f"(exact {exact_mean:.4f}), effective sample size {imp.get_ESS().item():.0f}"
        )


if __name__ == "__main__":
    main()
