"""Distributed MCMC: NUTS chains on several torch.distributed ranks, gathered on rank 0.

The target is the posterior of a 2-d Gaussian mean with known unit noise and a
Normal(0, 10^2) prior, given 20 fixed observations; it is Gaussian with a closed
form, so the pooled draws can be checked exactly. Every rank runs
``--chains`` NUTS chain(s) seeded by the rule of
``ember.infer.mcmc.distributed.set_rank_seed`` (``seed + rank * chains``), then
``mcmc.gather_chains(dst=0)`` brings all chains to rank 0, which prints the
summary (n_eff and r_hat across all chains).

    torchrun --standalone --nproc_per_node 2 examples/mcmc_distributed.py --check

``--check`` makes rank 0 compare the pooled posterior mean and variance with the
exact ones (within 4 Monte Carlo standard errors from the effective sample size)
and exit non-zero on a miss; ``--out DIR`` writes each rank's own draws
(``rank<r>.pt``) and rank 0's gathered draws and diagnostics (``gathered.pt``).
Without torchrun it runs its chains in one process and gathers nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as tdist

import ember
import ember.distributions as dist
from ember.infer.mcmc import MCMC, NUTS
from ember.infer.mcmc.distributed import set_rank_seed
from ember.ops.stats import effective_sample_size

PRIOR_SCALE = 10.0
NOISE_SCALE = 1.0


def make_data(n: int = 20) -> torch.Tensor:
    """The same observations on every rank (their own generator, not the ranks' seeds)."""
    gen = torch.Generator().manual_seed(12345)
    true_loc = torch.tensor([1.0, -2.0], dtype=torch.float64)
    return true_loc + NOISE_SCALE * torch.randn(n, 2, generator=gen, dtype=torch.float64)


def model(y: torch.Tensor) -> None:
    loc = ember.sample("loc", dist.Normal(y.new_zeros(2), PRIOR_SCALE).to_event(1))
    with ember.plate("data", y.shape[0]):
        ember.sample("y", dist.Normal(loc, NOISE_SCALE).to_event(1), obs=y)


def exact_posterior(y: torch.Tensor):
    """Mean and (per coordinate) variance of the conjugate Gaussian posterior of loc."""
    precision = PRIOR_SCALE**-2 + y.shape[0] * NOISE_SCALE**-2
    mean = y.sum(0) * NOISE_SCALE**-2 / precision
    return mean, torch.full_like(mean, 1.0 / precision)


def run_chains(
    y, seed: int, chains: int, samples: int, warmup: int, chain_method: str = "parallel"
) -> MCMC:
    """This rank's MCMC run, seeded by the rank seeding rule."""
    set_rank_seed(seed, num_chains=chains)
    mcmc = MCMC(
        NUTS(model), num_samples=samples, warmup_steps=warmup, num_chains=chains,
        chain_method=chain_method, disable_progbar=True,
    )  # fmt: skip
    mcmc.run(y)
    return mcmc


def check(mcmc: MCMC, y: torch.Tensor) -> list:
    """The failed checks (empty when all pass) of the pooled draws against the exact
    posterior: mean within 4 standard errors (sd / sqrt(ESS)) and variance within 4
    standard errors (var * sqrt(2 / ESS), the Gaussian case)."""
    draws = mcmc.get_samples(group_by_chain=True)["loc"]
    ess = effective_sample_size(draws, chain_dim=0, sample_dim=1)
    pooled = draws.reshape(-1, 2)
    mean, var = exact_posterior(y)
    failures = []
    mean_err = (pooled.mean(0) - mean).abs() / (var.sqrt() / ess.sqrt())
    var_err = (pooled.var(0) - var).abs() / (var * (2.0 / ess).sqrt())
    if (mean_err > 4).any():
        failures.append(f"posterior mean off by {mean_err.tolist()} standard errors")
    if (var_err > 4).any():
        failures.append(f"posterior variance off by {var_err.tolist()} standard errors")
    r_hat = mcmc.diagnostics()["loc"]["r_hat"]
    if not (r_hat < 1.05).all():
        failures.append(f"r_hat {r_hat.tolist()} is not below 1.05")
    return failures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=500, help="draws per chain")
    p.add_argument("--warmup", type=int, default=300, help="warm-up steps per chain")
    p.add_argument("--chains", type=int, default=1, help="chains per rank")
    p.add_argument("--seed", type=int, default=0, help="base seed (rank r: seed + r * chains)")
    p.add_argument(
        "--chain-method",
        default="parallel",
        choices=["parallel", "sequential", "vectorized"],
        help="how a rank runs its chains (MCMC's chain_method)",
    )
    p.add_argument("--check", action="store_true", help="compare with the exact posterior")
    p.add_argument("--out", type=Path, help="write the local and gathered draws here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    distributed = "WORLD_SIZE" in os.environ
    if distributed and not tdist.is_initialized():
        tdist.init_process_group("gloo")
    rank = tdist.get_rank() if distributed else 0
    world = tdist.get_world_size() if distributed else 1

    y = make_data()
    mcmc = run_chains(y, args.seed, args.chains, args.samples, args.warmup, args.chain_method)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        torch.save(mcmc.get_samples(group_by_chain=True), args.out / f"rank{rank}.pt")
    if distributed:
        mcmc.gather_chains(dst=0)

    status = 0
    if rank == 0:
        total = mcmc.get_samples(group_by_chain=True)["loc"].shape[0]
        print(f"{world} rank(s) x {args.chains} chain(s): {total} chains on rank 0", flush=True)
        mcmc.summary()
        if args.out is not None:
            torch.save(
                {
                    "samples": mcmc.get_samples(group_by_chain=True),
                    "diagnostics": mcmc.diagnostics(),
                    "y": y,
                },
                args.out / "gathered.pt",
            )
        if args.check:
            failures = check(mcmc, y)
            for failure in failures:
                print(f"CHECK FAILED: {failure}", flush=True)
            if not failures:
                print("pooled draws match the exact posterior", flush=True)
            status = 1 if failures else 0
    if distributed:
        tdist.barrier()
        tdist.destroy_process_group()
        # gloo's background threads can abort the interpreter's shutdown; everything is
        # written and flushed: leave at once
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
