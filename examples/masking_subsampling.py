"""Masking and subsampling: logistic regression on data with missing labels.

The data set has many rows; each SVI step looks at a random minibatch drawn
by ``ember.plate(..., subsample_size=...)``, whose log-likelihood is scaled
up to the whole data set. Some labels are missing: their likelihood terms
are masked out with ``ember.poutine.mask`` (the sampled values stand in and
are ignored), so they neither bias the fit nor need imputing.

    python examples/masking_subsampling.py --num-points 10000 --batch-size 256
"""

import argparse

import torch

import ember
import ember.distributions as dist
from ember.distributions import constraints
from ember.infer import SVI, Trace_ELBO
from ember.optim import Adam

TRUE_WEIGHTS = torch.tensor([1.5, -2.0, 0.5])
TRUE_BIAS = -0.3


def make_data(n, missing, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    p = torch.sigmoid(x @ TRUE_WEIGHTS + TRUE_BIAS)
    y = (torch.rand(n, generator=g) < p).float()
    observed = torch.rand(n, generator=g) >= missing
    return x, y, observed


def model(x, y, observed, batch_size):
    w = ember.sample("w", dist.Normal(torch.zeros(3), 5.0).to_event(1))
    b = ember.sample("b", dist.Normal(0.0, 5.0))
    with ember.plate("data", x.shape[0], subsample_size=batch_size) as idx:
        logits = x[idx] @ w + b
        with ember.poutine.mask(mask=observed[idx]):
            ember.sample("y", dist.Bernoulli(logits=logits), obs=y[idx])


def guide(x, y, observed, batch_size):
    loc = ember.param("w_loc", torch.zeros(3))
    scale = ember.param("w_scale", torch.full((3,), 0.1), constraint=constraints.positive)
    ember.sample("w", dist.Normal(loc, scale).to_event(1))
    b_loc = ember.param("b_loc", torch.tensor(0.0))
    b_scale = ember.param("b_scale", torch.tensor(0.1), constraint=constraints.positive)
    ember.sample("b", dist.Normal(b_loc, b_scale))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-points", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=256, help="subsample size")
    parser.add_argument("--missing", type=float, default=0.3, help="fraction of missing labels")
    parser.add_argument("--num-steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x, y, observed = make_data(args.num_points, args.missing, args.seed)
    # missing labels hold a placeholder (1): masking must make them irrelevant,
    # otherwise they would pull the bias up
    y = torch.where(observed, y, torch.ones_like(y))
    ember.set_rng_seed(args.seed)
    ember.clear_param_store()
    svi = SVI(model, guide, Adam({"lr": 0.02}), Trace_ELBO())
    for step in range(1, args.num_steps + 1):
        loss = svi.step(x, y, observed, args.batch_size)
        if step % max(1, args.num_steps // 5) == 0:
            print(f"step {step:5d}  loss {loss:10.1f}")
    print(f"observed labels: {int(observed.sum())} of {args.num_points}")
    print(
        "weights:",
        [round(v, 3) for v in ember.param("w_loc").tolist()],
        "true:",
        TRUE_WEIGHTS.tolist(),
    )
    print("bias:", round(ember.param("b_loc").item(), 3), "true:", TRUE_BIAS)


if __name__ == "__main__":
    main()
