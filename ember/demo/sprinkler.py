"""Exact and sampled posteriors of a small discrete model: the sprinkler network.

A classic Bayesian network: it may rain; the sprinkler is less likely to be
on when it rains; the grass gets wet from either. Given that the grass is
wet, how likely is it that it rained? ``Search`` enumerates every execution
of the program and gives the exact posterior; ``Importance`` samples from the
prior and reweights. Both are compared with a brute-force sum over the eight
joint assignments written out by hand.
"""

from __future__ import annotations

import itertools
import math
from typing import Dict

import torch

import ember
import ember.distributions as dist
from ember.demo.common import (
    Check,
    DemoConfig,
    DemoResult,
    Timer,
    format_table,
    pyplot,
    save_figure,
    section,
)
from ember.infer import EmpiricalMarginal, Importance, Search

__all__ = ["model", "brute_force_posterior", "run", "P_RAIN", "P_SPRINKLER", "P_WET"]

P_RAIN = 0.2
#: P(sprinkler on | rain), indexed by rain (0/1)
P_SPRINKLER = (0.4, 0.01)
#: P(grass wet | sprinkler, rain), indexed [sprinkler][rain]
P_WET = ((0.0, 0.8), (0.9, 0.99))


def model(wet: torch.Tensor = None) -> Dict[str, torch.Tensor]:
    """Rain -> sprinkler -> wet grass, with ``wet`` observed when given."""
    rain = ember.sample("rain", dist.Bernoulli(torch.tensor(P_RAIN)))
    r = int(rain.item())
    sprinkler = ember.sample("sprinkler", dist.Bernoulli(torch.tensor(P_SPRINKLER[r])))
    s = int(sprinkler.item())
    ember.sample("wet", dist.Bernoulli(torch.tensor(P_WET[s][r])), obs=wet)
    return {"rain": rain, "sprinkler": sprinkler}


def brute_force_posterior() -> Dict[str, float]:
    """P(rain | wet) and P(sprinkler on | wet), summing the joint table by hand."""
    total = rain = sprinkler = 0.0
    for r, s in itertools.product((0, 1), (0, 1)):
        p = (P_RAIN if r else 1 - P_RAIN) * (P_SPRINKLER[r] if s else 1 - P_SPRINKLER[r])
        p *= P_WET[s][r]
        total += p
        rain += p * r
        sprinkler += p * s
    return {"rain": rain / total, "sprinkler": sprinkler / total, "evidence": total}


def run(config: DemoConfig) -> DemoResult:
    """Run Search and Importance, print the table against the exact values, check."""
    num_samples = config.steps(5000, 1000)
    section(
        "Sprinkler network: exact posterior by Search, sampled by Importance",
        [
            "model: rain ~ Bernoulli(0.2); sprinkler | rain; wet grass | sprinkler, rain "
            "(observed: wet)",
            f"inference: Search (systematic enumeration of executions) and Importance "
            f"({num_samples} prior samples, reweighted)",
        ],
    )
    wet = torch.tensor(1.0)
    exact = brute_force_posterior()
    ember.set_rng_seed(config.seed)
    with Timer() as t_search:
        search = Search(model).run(wet)
        search_marg = {k: EmpiricalMarginal(search, sites=k) for k in ("rain", "sprinkler")}
        search_p = {k: float(m.mean) for k, m in search_marg.items()}
    with Timer() as t_imp:
        importance = Importance(model, guide=None, num_samples=num_samples).run(wet)
        imp_p = {
            k: float(EmpiricalMarginal(importance, sites=k).mean) for k in ("rain", "sprinkler")
        }
        ess = float(importance.get_ESS())
    print(f"   wall time: Search {t_search.seconds:.2f} s, Importance {t_imp.seconds:.2f} s")
    print("   posterior given wet grass:")
    rows = [
        ["brute-force sum (exact)", exact["rain"], exact["sprinkler"], "", ""],
        ["Search", search_p["rain"], search_p["sprinkler"], "", t_search.seconds],
        ["Importance", imp_p["rain"], imp_p["sprinkler"], round(ess), t_imp.seconds],
    ]
    print(format_table(["method", "P(rain)", "P(sprinkler)", "ESS", "seconds"], rows, indent=5))
    # standard error of a self-normalized importance estimate of a probability
    se = math.sqrt(exact["rain"] * (1 - exact["rain"]) / max(ess, 1.0))
    checks = [
        Check(
            f"Search gives the exact posterior: |{search_p['rain']:.6f} - {exact['rain']:.6f}| "
            "< 1e-6 for P(rain), likewise for P(sprinkler)",
            abs(search_p["rain"] - exact["rain"]) < 1e-6
            and abs(search_p["sprinkler"] - exact["sprinkler"]) < 1e-6,
        ),
        Check(
            f"Importance P(rain) {imp_p['rain']:.4f} within 4 standard errors ({4 * se:.4f}) "
            f"of the exact {exact['rain']:.4f}",
            abs(imp_p["rain"] - exact["rain"]) < 4 * se,
        ),
    ]
    result = DemoResult("sprinkler", t_search.seconds + t_imp.seconds, checks)
    plt = pyplot()
    if plt is not None and config.out_dir is not None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        labels = ["P(rain | wet)", "P(sprinkler | wet)"]
        xs = torch.arange(2, dtype=torch.float32)
        for i, (name, values) in enumerate(
            [("exact", exact), ("Search", search_p), ("Importance", imp_p)]
        ):
            ax.bar(
                xs + (i - 1) * 0.27, [values["rain"], values["sprinkler"]], width=0.27, label=name
            )
        ax.set_xticks(xs.tolist())
        ax.set_xticklabels(labels)
        ax.set_ylim(0, 1)
        ax.set_title("Sprinkler network: posterior given wet grass")
        ax.legend(fontsize=8)
        save_figure(fig, config, "sprinkler.png", result.figures)
    return result
