"""TraceGraph_ELBO with baselines for non-reparameterized latents.

A two-component 1-D mixture whose assignments are *sampled* by the guide
(Bernoulli, not reparameterizable) instead of enumerated. TraceGraph_ELBO's
score-function terms use only each site's downstream costs, and a baseline
reduces their variance further: a decaying average of the cost, or a small
neural network of the data point (``nn_baseline``). The script measures the
variance of one guide gradient under each choice, then fits the mixture.

    python examples/tracegraph_baselines.py --baseline nn --num-steps 500
"""

import argparse

import torch
from torch import nn

import ember
import ember.distributions as dist
from ember.infer import SVI, TraceGraph_ELBO
from ember.optim import Adam


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, generator=g) < 0.5
    return torch.where(z, 2.0, -2.0) + torch.randn(n, generator=g)


class Guide(nn.Module):
    def __init__(self, baseline):
        super().__init__()
        self.classifier = nn.Linear(1, 1)  # P(component 1 | x)
        self.baseline_net = nn.Sequential(
            nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0)
        )
        self.baseline = baseline

    def baseline_config(self, x):
        if self.baseline == "decaying":
            return {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}
        if self.baseline == "nn":
            ember.module("baseline_net", self.baseline_net)
            return {"nn_baseline": self.baseline_net, "nn_baseline_input": x.unsqueeze(-1)}
        return {}

    def __call__(self, x):
        ember.module("classifier", self.classifier)
        probs = torch.sigmoid(self.classifier(x.unsqueeze(-1))).squeeze(-1)
        with ember.plate("data", x.shape[0]):
            ember.sample("z", dist.Bernoulli(probs), infer={"baseline": self.baseline_config(x)})


def model(x):
    locs = ember.param("locs", torch.tensor([-0.5, 0.5]))
    with ember.plate("data", x.shape[0]):
        z = ember.sample("z", dist.Bernoulli(x.new_tensor(0.5)))
        ember.sample("x", dist.Normal(locs[z.long()], 1.0), obs=x)


def gradient_variance(baseline, x, repeats, warmup):
    """Variance of d(loss)/d(classifier weight) over repeated single-particle estimates."""
    ember.set_rng_seed(1)
    ember.clear_param_store()
    guide = Guide(baseline)
    elbo = TraceGraph_ELBO()
    svi = SVI(model, guide, Adam({"lr": 0.05}), elbo)
    for _ in range(warmup):  # let the decaying or learned baseline settle
        svi.step(x)
    grads = []
    for _ in range(repeats):
        guide.classifier.weight.grad = None
        elbo.loss_and_grads(model, guide, x)
        grads.append(guide.classifier.weight.grad.item())
    return torch.tensor(grads).var().item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline",
        choices=["none", "decaying", "nn"],
        default="nn",
        help="baseline used for the fit (default nn)",
    )
    parser.add_argument("--num-steps", type=int, default=500, help="SVI steps (default 500)")
    parser.add_argument("--num-points", type=int, default=200)
    parser.add_argument(
        "--variance-repeats",
        type=int,
        default=30,
        help="gradient estimates per baseline for the variance table",
    )
    parser.add_argument(
        "--warmup", type=int, default=100, help="SVI steps before measuring (trains the baselines)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    x = make_data(args.num_points, args.seed)
    print(f"variance of one guide-gradient coordinate after {args.warmup} steps:")
    for baseline in ("none", "decaying", "nn"):
        var = gradient_variance(baseline, x, args.variance_repeats, args.warmup)
        print(f"  baseline {baseline:<9} {var:12.4g}")

    ember.set_rng_seed(args.seed)
    ember.clear_param_store()
    guide = Guide(args.baseline)
    svi = SVI(model, guide, Adam({"lr": 0.02}), TraceGraph_ELBO())
    for step in range(1, args.num_steps + 1):
        loss = svi.step(x)
        if step % max(1, args.num_steps // 5) == 0:
            print(f"step {step:5d}  loss {loss:9.2f}  locs {ember.param('locs').tolist()}")
    print("true component means: [-2.0, 2.0]")


if __name__ == "__main__":
    main()
