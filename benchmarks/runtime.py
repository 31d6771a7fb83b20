"""Runtime overhead: ember vs pyro-ppl (when installed), validation on for both.

Measures
  1. trace(model).get_trace() of a model with 10 sample sites inside a plate;
  2. the per-site cost of ``sample`` under 0, 1 and 3 handlers.

Prints microseconds per call and the pyro/ember ratio, for the total time and
for the runtime overhead (total minus the same distribution work done bare).
Each figure is the best of several chunks of calls, ember and pyro timed in
turns so that load changes on a shared machine hit both alike.
Run:
    .venv/bin/python benchmarks/runtime.py
"""

from __future__ import annotations

import _timing  # benchmarks/_timing.py (this script's folder is on sys.path)
import torch

import ember
import ember.distributions as edist

try:
    import pyro
    import pyro.distributions as pdist
except ImportError:  # benchmark-only comparison
    pyro = None

N_SITES = 10
PLATE = 100


def make_plate_model(lib, dist, prebuilt=False):
    loc = torch.zeros(PLATE)
    fixed = dist.Normal(loc, 1.0)

    def model():
        with lib.plate("data", PLATE):
            for i in range(N_SITES):
                lib.sample(f"x{i}", fixed if prebuilt else dist.Normal(loc, 1.0))

    def bare():
        for _ in range(N_SITES):
            (fixed if prebuilt else dist.Normal(loc, 1.0)).rsample()

    return model, bare


def make_site_fn(lib, dist, n_sites=100):
    d = dist.Normal(torch.tensor(0.0), torch.tensor(1.0))
    names = [f"s{i}" for i in range(n_sites)]

    def fn():
        for name in names:
            lib.sample(name, d)

    def bare():
        for _ in names:
            d.rsample()

    return fn, bare, n_sites


def with_handlers(lib, fn, k):
    if k == 0:
        return fn
    if k == 1:
        return lib.poutine.trace(fn)
    # three handlers: trace(scale(block(hide=[]))(fn))
    return lib.poutine.trace(lib.poutine.scale(lib.poutine.block(fn, hide=[]), scale=2.0))


def benchmarks(lib, dist):
    """{benchmark: (callable, bare callable, calls per site, number, repeat)} for ``lib``."""
    lib.enable_validation(True)
    out = {}
    for prebuilt in (False, True):
        model, bare = make_plate_model(lib, dist, prebuilt)
        label = "trace plate model" + (" (prebuilt dists)" if prebuilt else "")
        out[label] = (lib.poutine.trace(model).get_trace, bare, 1, 50, 15)
    for k in (0, 1, 3):
        fn, bare, n = make_site_fn(lib, dist)
        out[f"sample, {k} handler(s), per site"] = (with_handlers(lib, fn, k), bare, n, 20, 21)
    return out


def run(libs):
    """{lib name: {benchmark: (total seconds per call, seconds outside the distributions)}}.

    Every measurement alternates between the libraries (see ``_timing.interleaved``).
    """
    built = {name: benchmarks(lib, dist) for name, (lib, dist) in libs.items()}
    results = {name: {} for name in libs}
    for key in built[next(iter(built))]:
        fns = {}
        for name in libs:
            fn, bare, _, number, repeat = built[name][key]
            fns[(name, "fn")] = fn
            fns[(name, "bare")] = bare
        best = _timing.interleaved(fns, number, rounds=repeat)
        for name in libs:
            n = built[name][key][2]
            t, t_bare = best[(name, "fn")] / n, best[(name, "bare")] / n
            results[name][key] = (t, t - t_bare)
    return results


def main():
    torch.set_num_threads(1)
    print(f"model: {N_SITES} Normal sample sites inside plate(size={PLATE}); validation on")
    libs = {"ember": (ember, edist)}
    if pyro is not None:
        libs["pyro"] = (pyro, pdist)
    res = run(libs)
    ember_res, pyro_res = res["ember"], res.get("pyro")
    if pyro is None:
        print("pyro-ppl is absent: showing ember only (pip install pyro-ppl==1.9.2 to compare)")
    head = f"{'benchmark (us per call)':40s} {'ember':>9s} {'pyro':>9s} {'ratio':>7s}"
    print(head + f" | {'overhead: ember':>15s} {'pyro':>9s} {'ratio':>7s}")
    for key, (t, o) in ember_res.items():
        line = f"{key:40s} {t * 1e6:9.2f}"
        if pyro_res is None:
            print(line + f" | {o * 1e6:15.2f}")
            continue
        tp, op = pyro_res[key]
        line += f" {tp * 1e6:9.2f} {tp / t:6.2f}x"
        ratio = f"{op / o:6.2f}x" if o > 0 else "   n/a"
        print(line + f" | {o * 1e6:15.2f} {op * 1e6:9.2f} {ratio}")
    print("ratio = pyro time / ember time; overhead = time minus the same distribution work")
    print("(construction + rsample) done without any ember/pyro primitive.")


if __name__ == "__main__":
    main()
