"""``python -m ember demo``: fit bundled models on bundled real data and report.

Seven runs, each with its data shipped in ``ember/data``:

- eight schools (Rubin 1981): hierarchical normal model, SVI;
- eight schools again by NUTS (4 chains) against the exact posterior;
- Bayesian linear regression on the diabetes data (Efron et al. 2004):
  automatic guides against the closed-form posterior;
- Gaussian mixture on iris: assignments summed out by TraceEnum_ELBO;
- VAE on the 8x8 handwritten digits, with a subsampled plate;
- normalizing flow on the two-moons density;
- the sprinkler network: exact posterior by Search, sampled by Importance.

Each prints a summary table with its wall time and checks its figures against
published or exact values. With matplotlib installed, loss curves and
posterior/density plots are written as PNG files into an output folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import torch

import ember
from ember.demo.common import DemoConfig, DemoResult, pyplot

__all__ = ["DEMOS", "main", "run_demos"]

#: The demos, in the order they run: name -> module (imported when run).
DEMOS = {
    "eight_schools": "ember.demo.eight_schools",
    "eight_schools_nuts": "ember.demo.eight_schools_nuts",
    "diabetes": "ember.demo.diabetes_regression",
    "gmm_iris": "ember.demo.gmm_iris",
    "vae_digits": "ember.demo.vae_digits",
    "flow_moons": "ember.demo.flow_moons",
    "sprinkler": "ember.demo.sprinkler",
}


def run_demos(names: Sequence[str], config: DemoConfig) -> List[DemoResult]:
    """Run the named demos in order and return their results.

    Example::

        >>> from ember.demo import run_demos
        >>> from ember.demo.common import DemoConfig
        >>> [result] = run_demos(["sprinkler"], DemoConfig(quick=True))  # doctest: +ELLIPSIS
        <BLANKLINE>
        == Sprinkler network: exact posterior by Search, sampled by Importance
        ...
        >>> result.name, all(check.passed for check in result.checks)
        ('sprinkler', True)
    """
    unknown = [name for name in names if name not in DEMOS]
    if unknown:
        raise ValueError(f"run_demos: unknown demo(s) {unknown}; choose from {list(DEMOS)}")
    import importlib

    results = []
    for name in names:
        module = importlib.import_module(DEMOS[name])
        results.append(module.run(config))
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ember demo",
        description="Fit ember's bundled models on bundled real data sets and print "
        "posterior summaries, held-out log-likelihoods, wall times and checks.",
    )
    p.add_argument("--quick", action="store_true", help="a small run that takes seconds")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("demo_output"),
        help="folder for the PNG plots (default: ./demo_output)",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write plots")
    p.add_argument(
        "--only",
        nargs="+",
        choices=list(DEMOS),
        metavar="NAME",
        help=f"run only these demos ({', '.join(DEMOS)})",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: these small models run fastest on one "
        "thread, and several threads slow down badly when the CPU is shared)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo from the command line; return the exit status (1 if a check failed).

    ``main(["--quick", "--only", "sprinkler"])`` is ``python -m ember demo
    --quick --only sprinkler``; ``main(["--help"])`` lists the options.
    """
    args = _parser().parse_args(argv)

    if args.threads < 1:
        raise SystemExit(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    out_dir: Path | None = None
    plots_note = ""
    if not args.no_plots:
        if pyplot() is None:
            plots_note = (
                "plots: matplotlib is not installed, so no plots are written; "
                "`pip install matplotlib` (or `pip install 'ember-ppl[plot]'`) to get them"
            )
        else:
            out_dir = args.out
            out_dir.mkdir(parents=True, exist_ok=True)
            plots_note = f"plots: PNG files go to {out_dir.resolve()}"
    config = DemoConfig(
        quick=args.quick,
        out_dir=out_dir,
        seed=args.seed,
        progress=False if args.no_progress else None,
    )
    names = args.only or list(DEMOS)
    print(
        f"ember {ember.__version__} demo ({'quick' if args.quick else 'full'} run) on torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s)"
    )
    if plots_note:
        print(plots_note)
    start = time.perf_counter()
    results = run_demos(names, config)
    total = time.perf_counter() - start
    checks = [c for r in results for c in r.checks]
    failed = [c for r in results for c in r.checks if not c.passed]
    print()
    print("== Summary")
    for r in results:
        status = "ok" if all(c.passed for c in r.checks) else "FAILED"
        print(f"   {r.name:<14} {r.seconds:7.1f} s  checks: {status}")
        for c in r.checks:
            print(f"      {c}")
    print(
        f"   total wall time {total:.1f} s; {len(checks) - len(failed)}/{len(checks)} checks passed"
    )
    figures = [f for r in results for f in r.figures]
    if figures:
        print(f"   {len(figures)} plots written to {out_dir.resolve()}:")
        for f in figures:
            print(f"      {f.name}")
    elif plots_note:
        print(f"   {plots_note}")
    sys.stdout.flush()
    return 1 if failed else 0
