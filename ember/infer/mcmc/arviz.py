"""Export MCMC results to ArviZ (an optional dependency: ``pip install ember[arviz]``).

:func:`to_arviz` needs from the MCMC object:

* ``mcmc.get_samples(group_by_chain=True)``: ``{site: tensor (num_chains, num_draws, ...)}``
  (required), which becomes the ``posterior`` group;
* for the ``sample_stats`` group, the first of

  - ``mcmc.sample_stats``: a dict (or a method returning one) of per-draw statistics
    shaped ``(num_chains, num_draws)``, under ArviZ's names (``"diverging"``,
    ``"step_size"``, ``"acceptance_rate"``, ``"tree_depth"``, ``"energy"``, ``"lp"``,
    ``"n_steps"``); ``"accept_prob"`` and ``"num_steps"`` are renamed to ArviZ's names;
  - otherwise what Pyro's MCMC exposes: ``mcmc.diagnostics()["divergences"]``
    (``{chain: [indices of divergent draws]}``) gives ``"diverging"``, and a scalar
    ``mcmc.kernel.step_size`` (the adapted step size) gives a constant ``"step_size"``;

* for the ``observed_data`` group, the ``observed_data`` argument, else
  ``mcmc.observed_data`` (a dict), else the observed sites found by running the
  model once: ``mcmc.model`` or ``mcmc.kernel.model`` with ``mcmc.model_args`` and
  ``mcmc.model_kwargs`` (when those exist).

Any group whose source is missing is left out.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

from ember import poutine
from ember.poutine.subsample_messenger import site_is_subsample

__all__ = ["to_arviz"]

_ARVIZ_HINT = (
    "to_arviz needs the optional package arviz: install it with "
    "`pip install ember[arviz]` (or `pip install arviz`)"
)

_RENAMES = {"accept_prob": "acceptance_rate", "num_steps": "n_steps"}


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _posterior(mcmc) -> Dict[str, np.ndarray]:
    if not hasattr(mcmc, "get_samples"):
        raise TypeError(
            f"to_arviz expects an MCMC object with get_samples(group_by_chain=True), "
            f"got {type(mcmc).__name__}"
        )
    samples = mcmc.get_samples(group_by_chain=True)
    if not samples:
        raise ValueError("to_arviz: the MCMC object has no samples; call mcmc.run(...) first")
    out = {}
    for name, value in samples.items():
        if value.dim() < 2:
            raise ValueError(
                f"to_arviz: samples of site {name!r} have shape {tuple(value.shape)}; "
                "get_samples(group_by_chain=True) must give (num_chains, num_draws, ...)"
            )
        out[name] = _numpy(value)
    return out


def _sample_stats(mcmc, num_chains: int, num_draws: int) -> Dict[str, np.ndarray]:
    given = getattr(mcmc, "sample_stats", None)
    if callable(given):
        given = given()
    if given:
        return {_RENAMES.get(k, k): _numpy(v) for k, v in given.items()}
    out = {}
    diagnostics = mcmc.diagnostics() if callable(getattr(mcmc, "diagnostics", None)) else {}
    divergences = diagnostics.get("divergences") if isinstance(diagnostics, dict) else None
    if isinstance(divergences, dict) and len(divergences) == num_chains:
        diverging = np.zeros((num_chains, num_draws), dtype=bool)
        for chain, idx in enumerate(divergences.values()):
            diverging[chain, _numpy(idx).astype(int).reshape(-1)] = True
        out["diverging"] = diverging
    step_size = getattr(getattr(mcmc, "kernel", None), "step_size", None)
    if isinstance(step_size, (int, float)) or (
        isinstance(step_size, torch.Tensor) and step_size.numel() == 1
    ):
        out["step_size"] = np.full((num_chains, num_draws), float(step_size))
    return out


def _observed(mcmc) -> Dict[str, np.ndarray]:
    given = getattr(mcmc, "observed_data", None)
    if given is not None:
        return {k: _numpy(v) for k, v in given.items()}
    model = getattr(mcmc, "model", None) or getattr(getattr(mcmc, "kernel", None), "model", None)
    if model is None or not callable(model):
        return {}
    args = getattr(mcmc, "model_args", None) or ()
    kwargs = getattr(mcmc, "model_kwargs", None) or {}
    with torch.random.fork_rng(), torch.no_grad(), poutine.block():
        trace = poutine.trace(model).get_trace(*args, **kwargs)
    return {
        name: _numpy(site["value"])
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and site["is_observed"]
        and not site_is_subsample(site)
        and not site["infer"].get("_deterministic", False)
    }


def to_arviz(
    mcmc,
    observed_data: Optional[Dict[str, torch.Tensor]] = None,
    coords: Optional[dict] = None,
    dims: Optional[dict] = None,
):
    """Build an ArviZ ``InferenceData`` from an MCMC run: ``posterior`` (draws by chain),
    ``sample_stats`` (divergences, step sizes, ...) and ``observed_data``. See the
    module docstring for what the MCMC object must provide.

    :param mcmc: a finished MCMC run.
    :param dict observed_data: observed values to store (found from the model when
        omitted).
    :param dict coords: ArviZ coordinates, passed through.
    :param dict dims: ArviZ dims of each variable, passed through.
    :return: ``arviz.InferenceData`` (with ArviZ >= 1.0, its ``DataTree`` equivalent).
    :raises ImportError: with an install hint when arviz is not installed.
    """
    try:
        import arviz  # optional dependency, only needed for this export
    except ImportError as e:
        raise ImportError(_ARVIZ_HINT) from e
    posterior = _posterior(mcmc)
    first = next(iter(posterior.values()))
    sample_stats = _sample_stats(mcmc, first.shape[0], first.shape[1])
    if observed_data is not None:
        observed = {k: _numpy(v) for k, v in observed_data.items()}
    else:
        observed = _observed(mcmc)
    groups = {"posterior": posterior}
    if sample_stats:
        groups["sample_stats"] = sample_stats
    if observed:
        groups["observed_data"] = observed
    if int(arviz.__version__.split(".")[0]) >= 1:
        return arviz.from_dict(groups, coords=coords, dims=dims)
    return arviz.from_dict(**groups, coords=coords, dims=dims)
