"""Benchmark: data-parallel SVI steps per second with 1, 2 and 4 gloo processes.

The model's per-step compute dominates: a Bayesian neural network regression
(one hidden layer of 64 units, Normal(0, 1) priors on all 2,176 weights, an
AutoNormal guide) on 100,000 synthetic points; each rank computes the
likelihood of its shard (``shard_plate``), ``DistributedOptimizer`` averages
the gradients in one all-reduce per step. Strong scaling: the global data
stay the same, so each rank's share shrinks as processes are added. The
time each step spends in the gradient all-reduce is reported separately (it
includes waiting for the slowest rank), and so is the time of the bare
all-reduce of the same bucket; the last lines project the all-reduce cost of
a ring all-reduce over N machines.

Run: ``.venv/bin/python benchmarks/distributed.py [--steps 60] [--procs 1 2 4]``
(it starts ``torchrun`` itself; ``--worker`` is the per-rank entry point).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as tdist

import ember
import ember.distributions as dist
import ember.optim.distributed as edist
from ember.infer import SVI, Trace_ELBO
from ember.infer.autoguide import AutoNormal
from ember.optim import Adam, DistributedOptimizer

N, D, H = 100_000, 32, 64
ROOT = Path(__file__).resolve().parent.parent


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g)
    y = torch.tanh(x @ torch.randn(D, generator=g)) + 0.1 * torch.randn(N, generator=g)
    return x, y


def model(x, y):
    w1 = ember.sample("w1", dist.Normal(0.0, 1.0).expand([D, H]).to_event(2))
    b1 = ember.sample("b1", dist.Normal(0.0, 1.0).expand([H]).to_event(1))
    w2 = ember.sample("w2", dist.Normal(0.0, 1.0).expand([H]).to_event(1))
    with edist.shard_plate("data", N) as idx:
        hidden = torch.tanh(x[idx] @ w1 + b1)
        ember.sample("y", dist.Normal(hidden @ w2, 0.1), obs=y[idx])


def worker(steps: int, out: Path) -> None:
    torch.set_num_threads(1)
    if "WORLD_SIZE" in os.environ:
        tdist.init_process_group("gloo")
    rank, world = edist.get_rank(), edist.get_world_size()
    x, y = data()
    ember.set_rng_seed(0)
    guide = AutoNormal(model)
    optim = DistributedOptimizer(Adam({"lr": 0.01}))
    reduce_time = [0.0]
    average = optim._average_gradients

    def timed_average(params):
        t0 = time.perf_counter()
        average(params)
        reduce_time[0] += time.perf_counter() - t0

    optim._average_gradients = timed_average
    svi = SVI(model, guide, optim, Trace_ELBO())
    for _ in range(5):  # warm-up: parameters created and broadcast
        svi.step(x, y)
    reduce_time[0] = 0.0
    if world > 1:
        tdist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        svi.step(x, y)
    seconds = time.perf_counter() - t0
    numel = sum(p.numel() for _, p in ember.get_param_store().named_parameters())
    bare = 0.0
    if world > 1:
        bucket = torch.zeros(numel)
        tdist.barrier()
        t0 = time.perf_counter()
        for _ in range(50):
            tdist.all_reduce(bucket)
        bare = (time.perf_counter() - t0) / 50
    if rank == 0:
        out.write_text(
            json.dumps(
                {
                    "world": world,
                    "steps_per_second": steps / seconds,
                    "allreduce_ms": 1e3 * reduce_time[0] / steps,
                    "bare_allreduce_ms": 1e3 * bare,
                    "bucket_bytes": 4 * numel,
                }
            )
        )
    if world > 1:
        tdist.destroy_process_group()
        # gloo's background threads can abort the interpreter's shutdown: leave at once
        sys.stdout.flush()
        os._exit(0)


def run(nproc: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += ["--nproc_per_node", str(nproc), __file__, "--worker", str(out)]
        cmd += ["--steps", str(steps)]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker is not None:
        worker(args.steps, args.worker)
        return
    print(f"{os.cpu_count()} CPU cores; {N} points, {D}-{H}-1 network, AutoNormal, gloo")
    print(
        f"{'processes':>10}{'steps/s':>10}{'speed-up':>10}{'all-reduce ms/step':>20}"
        f"{'bare all-reduce ms':>20}"
    )
    base = None
    results = []
    for nproc in args.procs:
        r = run(nproc, args.steps)
        results.append(r)
        base = base or r["steps_per_second"]
        print(
            f"{nproc:>10}{r['steps_per_second']:>10.1f}{r['steps_per_second'] / base:>9.2f}x"
            f"{r['allreduce_ms']:>20.3f}{r['bare_allreduce_ms']:>20.3f}",
            flush=True,
        )
    multi = [r for r in results if r["world"] > 1]
    if multi:
        # a ring all-reduce takes 2 (R - 1) hops, each moving 1 / R of the bucket
        r = multi[0]
        step_ms = 1e3 / results[0]["steps_per_second"]
        print(
            f"bucket {r['bucket_bytes'] / 1e3:.1f} kB (one per step); bare all-reduce "
            f"{r['bare_allreduce_ms']:.3f} ms over loopback with {r['world']} processes; "
            f"one-process step {step_ms:.1f} ms"
        )
        print("projected all-reduce per step, ring over a network (50 us per hop + bandwidth):")
        for gbit in (10, 100):
            for machines in (2, 8, 32):
                hops = 2 * (machines - 1)
                seconds = hops * (50e-6 + r["bucket_bytes"] / machines / (gbit * 1e9 / 8))
                share = 1e3 * seconds / (step_ms / machines)
                print(
                    f"   {machines:>3} machines, {gbit:>3} Gbit/s: {seconds * 1e3:7.3f} ms "
                    f"({share:.0%} of a step's compute on 1/{machines} of the data)"
                )


if __name__ == "__main__":
    main()
