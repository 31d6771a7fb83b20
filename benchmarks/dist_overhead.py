"""Overhead of ember's distribution wrappers over plain torch.distributions.

Times construct + log_prob + rsample (sample for Categorical) at batch 1,000
for Normal, MultivariateNormal (dim 10), Dirichlet and Categorical, through
ember.distributions and through torch.distributions, with validation on and
off, and prints each ratio (target <= 1.10). Pyro's wrappers are timed too
when pyro-ppl is installed.

Run: .venv/bin/python benchmarks/dist_overhead.py
"""

import timeit

import torch

import ember
import ember.distributions as edist

try:
    import pyro.distributions as pdist
except ImportError:  # pyro is optional here
    pdist = None

BATCH = 1000
torch.manual_seed(0)
LOC = torch.randn(BATCH)
SCALE = torch.rand(BATCH) + 0.5
MVN_LOC = torch.randn(BATCH, 10)
MVN_TRIL = torch.eye(10).expand(BATCH, 10, 10) + 0.1 * torch.randn(BATCH, 10, 10).tril(-1)
CONC = torch.rand(BATCH, 5) + 0.5
LOGITS = torch.randn(BATCH, 6)


def workloads(ns):
    def normal():
        d = ns.Normal(LOC, SCALE)
        d.log_prob(d.rsample())

    def mvn():
        d = ns.MultivariateNormal(MVN_LOC, scale_tril=MVN_TRIL)
        d.log_prob(d.rsample())

    def dirichlet():
        d = ns.Dirichlet(CONC)
        d.log_prob(d.rsample())

    def categorical():
        d = ns.Categorical(logits=LOGITS)
        d.log_prob(d.sample())

    return {
        "Normal": normal,
        "MultivariateNormal(10)": mvn,
        "Dirichlet": dirichlet,
        "Categorical": categorical,
    }


def best_time(fn, number):
    fn()
    return min(timeit.repeat(fn, number=number, repeat=3)) / number


def main():
    torch.set_num_threads(1)
    namespaces = {"torch": torch.distributions, "ember": edist}
    if pdist is not None:
        namespaces["pyro"] = pdist
    for validate in (True, False):
        ember.enable_validation(validate)
        print(f"\nvalidation {'on' if validate else 'off'} (batch {BATCH}, microseconds per call)")
        print(
            f"{'distribution':<24}"
            + "".join(f"{k:>10}" for k in namespaces)
            + f"{'ember/torch':>13}"
        )
        loads = {k: workloads(ns) for k, ns in namespaces.items()}
        for name in loads["torch"]:
            number = 200 if "Multivariate" not in name else 50
            # interleave the namespaces so drifting load affects them alike
            times = {k: [] for k in namespaces}
            for _ in range(7):
                for k in namespaces:
                    times[k].append(best_time(loads[k][name], number))
            t = {k: min(v) for k, v in times.items()}
            ratio = t["ember"] / t["torch"]
            print(
                f"{name:<24}"
                + "".join(f"{1e6 * t[k]:>10.1f}" for k in namespaces)
                + f"{ratio:>13.3f}"
            )
    ember.enable_validation(True)


if __name__ == "__main__":
    main()
