"""Variational autoencoder on binarized 8x8 digits, trained with minibatches.

The encoder and decoder are registered with ``ember.module`` so SVI optimizes
their weights; the data plate is subsampled, so each minibatch ELBO is
scaled up to the whole data set. Prints the held-out ELBO per image.

    python examples/vae.py --epochs 20 --z-dim 4
"""

import argparse

import torch
from torch import nn

import ember
import ember.distributions as dist
from ember.demo.datasets import load_digits
from ember.infer import SVI, Trace_ELBO
from ember.optim import Adam


class VAE(nn.Module):
    def __init__(self, z_dim, hidden=64):
        super().__init__()
        self.z_dim = z_dim
        self.encoder = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z_dim))
        self.decoder = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, 64))

    def model(self, x, index, size):
        ember.module("decoder", self.decoder)
        with ember.plate("images", size, subsample=index):
            z = ember.sample("z", dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            ember.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x, index, size):
        ember.module("encoder", self.encoder)
        with ember.plate("images", size, subsample=index):
            out = self.encoder(x)
            loc, scale = out[:, : self.z_dim], nn.functional.softplus(out[:, self.z_dim :]) + 1e-3
            ember.sample("z", dist.Normal(loc, scale).to_event(1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="passes over the data (default 10)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--z-dim", type=int, default=4, help="latent dimension")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    images = (load_digits()["images"] > 7).float()  # binarize the pixel counts
    train, test = images[:1500], images[1500:]
    ember.set_rng_seed(args.seed)
    ember.clear_param_store()
    vae = VAE(args.z_dim)
    elbo = Trace_ELBO()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 3e-3}), elbo)
    n = train.shape[0]
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for index in torch.randperm(n).split(args.batch_size):
            total += svi.step(train[index], index, n) * len(index) / n
        with torch.no_grad():
            held = elbo.loss(vae.model, vae.guide, test, torch.arange(len(test)), len(test))
        print(
            f"epoch {epoch:3d}  train loss/image {total / n:7.2f}  "
            f"held-out ELBO/image {-held / len(test):7.2f}"
        )


if __name__ == "__main__":
    main()
