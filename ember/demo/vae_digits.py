"""A variational autoencoder on the 8×8 handwritten digits.

Each pixel of the bundled digits counts the "on" pixels of a 4×4 block
(0..16), so the decoder's likelihood is a Binomial with 16 trials per pixel.
The encoder and decoder are small MLPs registered with ``ember.module``; the
data plate is subsampled in minibatches, so each step scales its ELBO to the
full training set. The fit is judged by the ELBO of 297 held-out images.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import nn

import ember
import ember.distributions as dist
from ember.demo.common import (
    Check,
    DemoConfig,
    DemoResult,
    Timer,
    format_table,
    loss_curve,
    pyplot,
    save_figure,
    section,
)
from ember.demo.datasets import load_digits, train_test_split
from ember.infer import SVI, Trace_ELBO
from ember.infer.progress import progress_loop
from ember.optim import Adam

__all__ = ["Encoder", "Decoder", "VAE", "heldout_elbo", "run"]

PIXELS = 64
TRIALS = 16


class Encoder(nn.Module):
    """Image -> mean and scale of the Gaussian guide over the latent code."""

    def __init__(self, z_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(PIXELS, hidden), nn.Softplus(), nn.Linear(hidden, 2 * z_dim)
        )
        self.z_dim = z_dim

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out = self.net(x / TRIALS)
        loc, raw_scale = out[..., : self.z_dim], out[..., self.z_dim :]
        return loc, nn.functional.softplus(raw_scale) + 1e-3


class Decoder(nn.Module):
    """Latent code -> per-pixel logits of the Binomial likelihood."""

    def __init__(self, z_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.Softplus(), nn.Linear(hidden, PIXELS))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class VAE(nn.Module):
    """The model and the guide of the digits VAE, as methods.

    Both take a minibatch ``x``, its row ``index`` in the data set and the data
    set's ``size`` (the full size of the subsampled plate).
    """

    def __init__(self, z_dim: int = 8, hidden: int = 128):
        super().__init__()
        self.encoder = Encoder(z_dim, hidden)
        self.decoder = Decoder(z_dim, hidden)
        self.z_dim = z_dim

    def model(self, x: torch.Tensor, index: torch.Tensor, size: int) -> None:
        ember.module("decoder", self.decoder)
        with ember.plate("images", size, subsample=index):
            prior = dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1)
            z = ember.sample("z", prior)
            logits = self.decoder(z)
            ember.sample("x", dist.Binomial(TRIALS, logits=logits).to_event(1), obs=x)

    def guide(self, x: torch.Tensor, index: torch.Tensor, size: int) -> None:
        ember.module("encoder", self.encoder)
        with ember.plate("images", size, subsample=index):
            loc, scale = self.encoder(x)
            ember.sample("z", dist.Normal(loc, scale).to_event(1))


def heldout_elbo(vae: VAE, test: torch.Tensor, num_particles: int = 4) -> float:
    """The ELBO per held-out image (averaged over ``num_particles`` draws)."""
    elbo = Trace_ELBO(num_particles=num_particles)
    n = test.shape[0]
    with torch.no_grad():
        loss = elbo.loss(vae.model, vae.guide, test, torch.arange(n), n)
    return -loss / n


def independent_pixels_log_likelihood(train: torch.Tensor, test: torch.Tensor) -> float:
    """Held-out log-likelihood per image of independent Binomial pixels (the baseline)."""
    probs = ((train.sum(0) + 0.5) / (train.shape[0] * TRIALS + 1.0)).clamp(1e-4, 1 - 1e-4)
    d = torch.distributions.Binomial(TRIALS, probs=probs)
    return float(d.log_prob(test).sum(-1).mean())


def run(config: DemoConfig) -> DemoResult:
    """Train, print held-out ELBOs and the checks, and plot reconstructions and samples."""
    digits = load_digits()
    train_idx, test_idx = train_test_split(digits["images"].shape[0], 297, seed=config.seed)
    train, test = digits["images"][train_idx], digits["images"][test_idx]
    epochs = config.steps(20, 4)
    batch = 100
    steps_per_epoch = math.ceil(train.shape[0] / batch)
    num_steps = epochs * steps_per_epoch
    section(
        "Variational autoencoder on the 8x8 handwritten digits (UCI / scikit-learn)",
        [
            f"data: 1797 images of 64 pixel counts (0..16); {train.shape[0]} to fit, "
            f"{test.shape[0]} held out",
            "model: z ~ N(0, I_8), pixels ~ Binomial(16, decoder(z)); guide: N(encoder(x)); "
            "MLPs with 128 hidden units",
            f"inference: Trace_ELBO, minibatches of {batch} from a subsampled plate, Adam, "
            f"{epochs} epochs ({num_steps} steps)",
        ],
    )
    ember.set_rng_seed(config.seed)
    ember.clear_param_store()
    vae = VAE()
    svi = SVI(vae.model, vae.guide, Adam({"lr": 3e-3}), Trace_ELBO())
    order = []
    first: List[float] = []

    def step() -> float:
        if not order:
            order.extend(torch.randperm(train.shape[0]).split(batch))
        index = order.pop(0)
        loss = svi.step(train[index], index, train.shape[0]) / train.shape[0]
        if not first:
            first.append(heldout_elbo(vae, test))
        return loss

    with Timer() as timer:
        losses = progress_loop(step, num_steps, desc="digits VAE", disable=config.disable_progress)
        final = heldout_elbo(vae, test, num_particles=8)
    baseline = independent_pixels_log_likelihood(train, test)
    print(f"   wall time {timer.seconds:.1f} s")
    print("   held-out log-likelihood bounds per image (nats; higher is better):")
    print(
        format_table(
            ["", "per image"],
            [
                ["VAE ELBO after the first step", first[0]],
                [f"VAE ELBO after {num_steps} steps", final],
                ["independent Binomial pixels (exact log-lik.)", baseline],
            ],
            indent=5,
        )
    )
    margin = 100.0 if config.quick else 200.0
    checks = [
        Check(
            f"held-out ELBO improved by {final - first[0]:.1f} nats per image over the first step "
            f"(stated margin: >= {margin:.0f})",
            final - first[0] >= margin,
        )
    ]
    if not config.quick:
        checks.append(
            Check(
                f"held-out ELBO {final:.1f} above the independent-pixel log-likelihood "
                f"{baseline:.1f}",
                final > baseline,
            )
        )
    result = DemoResult("vae_digits", timer.seconds, checks)
    loss_curve(
        config,
        losses,
        "Digits VAE: loss per training image",
        "vae_digits_loss.png",
        result.figures,
        ylabel="negative ELBO per image",
    )
    _plot(config, vae, test, result.figures)
    return result


def _plot(config: DemoConfig, vae: VAE, test: torch.Tensor, figures: List) -> None:
    plt = pyplot()
    if plt is None or config.out_dir is None:
        return
    with torch.no_grad():
        x = test[:10]
        loc, _ = vae.encoder(x)
        recon = torch.sigmoid(vae.decoder(loc)) * TRIALS
        samples = torch.sigmoid(vae.decoder(torch.randn(10, vae.z_dim))) * TRIALS
    fig, axes = plt.subplots(3, 10, figsize=(10, 3.4))
    for row, (images, label) in enumerate(
        [(x, "held-out"), (recon, "reconstructed"), (samples, "sampled")]
    ):
        for col in range(10):
            ax = axes[row, col]
            ax.imshow(images[col].view(8, 8).tolist(), cmap="gray_r", vmin=0, vmax=TRIALS)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("Digits VAE: held-out images, their reconstructions, and new samples")
    save_figure(fig, config, "vae_digits.png", figures)
