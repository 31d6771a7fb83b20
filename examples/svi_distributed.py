"""Data-parallel SVI on torch.distributed: Bayesian logistic regression on the digits.

Each process (rank) fits the same model and guide on its shard of the 1,797
bundled 8x8 digit images ("is it a 3?", 64 standardized pixels, Normal(0, 1)
weights, AutoNormal guide); ``DistributedOptimizer`` averages the gradients
across the ranks before every Adam step, and ``shard_plate`` scales each
rank's likelihood so that the average is the full-data ELBO.

    torchrun --standalone --nproc_per_node 2 examples/svi_distributed.py --steps 50 --check

``--check`` then trains the same model in one process on the full batch with
the same seed and prints, as its last line, the largest absolute difference
between the data-parallel and the single-process parameters. ``--save DIR``
writes a checkpoint (param store, optimizer state, random state; rank 0
writes) after the run; ``--resume DIR`` starts from one. Without torchrun it
runs in one process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as tdist

import ember
import ember.distributions as dist
from ember.demo.datasets import load_digits
from ember.infer import SVI, Trace_ELBO
from ember.infer.autoguide import AutoNormal
from ember.optim import Adam, DistributedOptimizer
from ember.optim.distributed import get_rank, get_world_size, shard_plate


def load_data(dtype=torch.float64):
    d = load_digits(dtype)
    x = d["images"]
    x = (x - x.mean(0)) / x.std(0).clamp(min=1e-6)
    y = (d["labels"] == 3).to(dtype)
    return x, y


def model(x, y):
    w = ember.sample("w", dist.Normal(x.new_zeros(x.shape[1]), 1.0).to_event(1))
    b = ember.sample("b", dist.Normal(x.new_tensor(0.0), 1.0))
    with shard_plate("data", x.shape[0]) as idx:
        ember.sample("y", dist.Bernoulli(logits=b + x[idx] @ w), obs=y[idx])


def train(steps: int, seed: int, resume: Path | None = None, save: Path | None = None):
    """Fit the guide for ``steps`` steps (continuing a checkpoint when given); return
    the parameters (name -> tensor) and the losses."""
    x, y = load_data()
    ember.clear_param_store()
    ember.set_rng_seed(seed)
    guide = AutoNormal(model)
    optim = DistributedOptimizer(Adam({"lr": 0.05}))
    svi = SVI(model, guide, optim, Trace_ELBO())
    if resume is not None:
        guide(x, y)  # build the guide's parameters, then overwrite them
        ember.get_param_store().load(resume / "params.pt")
        optim.load(str(resume / "optim.pt"))
        ember.util.set_rng_state(torch.load(resume / "rng.pt", weights_only=False))
    losses = [svi.step(x, y) for _ in range(steps)]
    if save is not None:
        if get_rank() == 0:
            save.mkdir(parents=True, exist_ok=True)
            ember.get_param_store().save(save / "params.pt")
            optim.save(str(save / "optim.pt"))
            torch.save(ember.util.get_rng_state(), save / "rng.pt")
        if get_world_size() > 1:
            tdist.barrier()
    params = {k: v.detach().clone() for k, v in ember.get_param_store().items()}
    return params, losses


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="compare with one process, full batch")
    p.add_argument("--save", type=Path, help="write a checkpoint here after training")
    p.add_argument("--resume", type=Path, help="start from the checkpoint here")
    p.add_argument("--dump", type=Path, help="write the final parameters to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if "WORLD_SIZE" in os.environ and not tdist.is_initialized():
        tdist.init_process_group("gloo")
    rank, world = get_rank(), get_world_size()
    params, losses = train(args.steps, args.seed, args.resume, args.save)
    if rank == 0:
        print(f"{world} process(es), {args.steps} steps: final loss {losses[-1]:.3f}", flush=True)
        if args.dump is not None:
            torch.save(params, args.dump)
    if args.check and rank == 0:
        single = _single_process_params(args)
        diff = max((params[k] - single[k]).abs().max().item() for k in params)
        print(f"largest parameter difference, data-parallel vs single process: {diff:.3e}")
    if world > 1:
        tdist.barrier()
        tdist.destroy_process_group()
        # gloo's background threads can abort the interpreter's shutdown ("terminate called
        # without an active exception"); everything is written and flushed: leave at once
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _single_process_params(args):
    """The same run in a new process of its own (no process group), on the full batch."""
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_VARS}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "single.pt"
        cmd = [sys.executable, __file__, "--steps", str(args.steps), "--seed", str(args.seed)]
        if args.resume is not None:
            cmd += ["--resume", str(args.resume)]
        subprocess.run(cmd + ["--dump", str(out)], env=env, check=True, stdout=subprocess.DEVNULL)
        return torch.load(out)


_TORCHRUN_VARS = {
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
}


if __name__ == "__main__":
    raise SystemExit(main())
