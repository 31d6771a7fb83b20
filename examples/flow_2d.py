"""Fit normalizing flows to a 2-D "banana" density by maximum likelihood.

Data: x1 ~ N(0, 1), x2 | x1 ~ N(x1^2 - 1, 0.5^2). Fits a stack of inverse
autoregressive flows with permutations (scored through the IAF inverse) and,
optionally, planar and radial stacks (used in the normalizing direction,
since their inverse has no closed form). Prints each flow's held-out
log-likelihood per point next to the best Gaussian's (closed-form fit) and
the true density's, and writes density plots when matplotlib is installed.

    python examples/flow_2d.py --steps 500 --flows iaf planar radial --out demo_output
"""

import argparse
import math
import os

import torch

import ember
import ember.distributions as dist
from ember.distributions import transforms as T


def banana(n, gen):
    x1 = torch.randn(n, generator=gen)
    x2 = x1**2 - 1 + 0.5 * torch.randn(n, generator=gen)
    return torch.stack([x1, x2], -1)


def banana_log_prob(x):
    x1, x2 = x[..., 0], x[..., 1]
    z = (x2 - x1**2 + 1) / 0.5
    return -0.5 * x1**2 - 0.5 * z**2 - math.log(0.5) - math.log(2 * math.pi)


def fit_gaussian(train):
    mean = train.mean(0)
    cov = (train - mean).T @ (train - mean) / train.shape[0]
    return dist.MultivariateNormal(mean, cov)


def build_flow(kind, layers, hidden):
    """A TransformedDistribution for the flow ``kind``, and its trainable flows."""
    base = dist.Normal(torch.zeros(2), torch.ones(2))
    if kind == "iaf":
        flows = []
        for i in range(layers):
            flows.append(T.iaf(2, [hidden, hidden]))
            if i < layers - 1:
                flows.append(T.PermuteTransform(torch.tensor([1, 0])))
        return dist.TransformedDistribution(base, flows), flows
    make = {"planar": T.planar, "radial": T.radial}[kind]
    flows = [make(2) for _ in range(4 * layers)]
    # p(y) = N(f(y)) |det df/dy|: the stack maps data to the base distribution
    return dist.TransformedDistribution(base, [f.inv for f in flows]), flows


def train_flow(d, flows, data, steps, lr, batch_size, gen):
    modules = torch.nn.ModuleList([f for f in flows if isinstance(f, torch.nn.Module)])
    optim = torch.optim.Adam(modules.parameters(), lr=lr)
    for step in range(1, steps + 1):
        batch = data[torch.randint(0, data.shape[0], (batch_size,), generator=gen)]
        loss = -d.log_prob(batch).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        if step % max(1, steps // 5) == 0:
            print(f"  step {step:5d}  train log-lik/point {-loss.item():8.4f}")


def plot_densities(results, out_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written")
        return None
    g1 = torch.linspace(-3.5, 3.5, 150)
    g2 = torch.linspace(-2.5, 8.0, 150)
    grid = torch.stack(torch.meshgrid(g1, g2, indexing="xy"), -1).reshape(-1, 2)
    panels = [("true density", banana_log_prob(grid))] + [
        (name, log_density(grid)) for name, log_density in results
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, lp) in zip(axes, panels):
        ax.pcolormesh(g1.numpy(), g2.numpy(), lp.exp().reshape(150, 150).numpy(), shading="auto")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "flow_2d_density.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", "--num-steps", type=int, default=300, help="optimizer steps (default 300)"
    )
    parser.add_argument(
        "--flows",
        nargs="+",
        default=["iaf", "planar"],
        choices=["iaf", "planar", "radial"],
        help="which flows to fit (default: iaf planar)",
    )
    parser.add_argument("--layers", type=int, default=4, help="IAF layers (planar/radial: 4x)")
    parser.add_argument("--hidden", type=int, default=24, help="hidden width of the MADE nets")
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-data", type=int, default=2000, help="training and test points")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="./demo_output", help="folder for the density plot")
    args = parser.parse_args(argv)
    if args.steps < 0 or args.layers < 1 or args.num_data < 2:
        parser.error("--steps must be >= 0, --layers >= 1 and --num-data >= 2")

    ember.set_rng_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train, test = banana(args.num_data, gen), banana(args.num_data, gen)

    gaussian = fit_gaussian(train)
    gauss_ll = gaussian.log_prob(test).mean().item()
    true_ll = banana_log_prob(test).mean().item()
    results = []
    rows = []
    for kind in args.flows:
        print(f"fitting {kind} flow")
        d, flows = build_flow(kind, args.layers, args.hidden)
        train_flow(d, flows, train, args.steps, args.lr, args.batch_size, gen)
        with torch.no_grad():
            flow_ll = d.log_prob(test).mean().item()
        rows.append((kind, flow_ll))

        def log_density(x, d=d):
            with torch.no_grad():
                return d.log_prob(x)

        results.append((kind, log_density))

    print(f"\nheld-out log-likelihood per point ({args.num_data} test points)")
    print(f"  {'true density':14s} {true_ll:8.4f}")
    print(f"  {'best Gaussian':14s} {gauss_ll:8.4f}")
    for kind, flow_ll in rows:
        print(f"  {kind + ' flow':14s} {flow_ll:8.4f}   ({flow_ll - gauss_ll:+.4f} vs Gaussian)")
    results.append(("best Gaussian", lambda x: gaussian.log_prob(x)))
    path = plot_densities(results, args.out)
    if path:
        print(f"density plot written to {path}")


if __name__ == "__main__":
    main()
