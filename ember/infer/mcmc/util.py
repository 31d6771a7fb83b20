"""Turning a model into what a Hamiltonian sampler needs: a potential energy over the
unconstrained values of the continuous latent sites, the transforms to and from those
values, and initial values chosen by an init strategy.

Discrete latent sites that can be enumerated are summed out of the potential exactly,
through the enumeration factor layer (:mod:`ember.infer.enum_factors`).
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from ember import poutine
from ember.distributions import biject_to
from ember.infer.autoguide.initialization import InitMessenger, init_to_uniform
from ember.infer.enum import config_enumerate
from ember.infer.enum_factors import model_log_factors
from ember.infer.mcmc.summary import diagnostics, print_summary, select_samples, summary
from ember.infer.util import guess_max_plate_nesting, vectorize
from ember.ops.contract import contract_to_scalar
from ember.ops.integrator import potential_grad
from ember.poutine.condition_messenger import ConditionMessenger
from ember.poutine.subsample_messenger import site_is_subsample
from ember.poutine.trace_messenger import trace_run

__all__ = [
    "ChainBatchedPotential",
    "PotentialFn",
    "TraceEinsumEvaluator",
    "TraceTreeEvaluator",
    "select_samples",
    "diagnostics",
    "initialize_model",
    "print_summary",
    "summary",
]


class PotentialFn:
    """The potential energy (negative log joint density, Jacobians included) of a model
    as a function of a dict of unconstrained latent values.

    :param model: the model (already wrapped for enumeration if it has enumerated sites).
    :param tuple model_args: its positional arguments.
    :param dict model_kwargs: its keyword arguments.
    :param dict transforms: site name to the transform from the site's support to the
        unconstrained space.
    :param int max_plate_nesting: the plate dims the model uses (for enumeration).
    :param bool has_enumerable_sites: sum enumerated discrete sites out exactly.

    Instances are picklable when the model is, so that chains can run in processes.
    """

    def __init__(
        self,
        model,
        model_args,
        model_kwargs,
        transforms,
        max_plate_nesting,
        has_enumerable_sites=False,
    ):
        self.model = model
        self.model_args = model_args
        self.model_kwargs = model_kwargs
        self.transforms = transforms
        self.max_plate_nesting = max_plate_nesting
        self.has_enumerable_sites = has_enumerable_sites

    def __getstate__(self):
        # an inverse transform refers to its forward transform weakly, which pickling
        # drops: keep the forward (constraining) transforms and rebuild the inverses
        state = self.__dict__.copy()
        state["transforms"] = {n: t.inv for n, t in self.transforms.items()}
        state["_pickled_forward"] = True
        return state

    def __setstate__(self, state):
        if state.pop("_pickled_forward", False):
            state["transforms"] = {n: t.inv for n, t in state["transforms"].items()}
        self.__dict__.update(state)

    def constrain(self, params: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The constrained values of unconstrained ``params``."""
        return {
            name: (self.transforms[name].inv(v) if name in self.transforms else v)
            for name, v in params.items()
        }

    def log_joint(self, trace) -> torch.Tensor:
        """The model's log joint density in ``trace``, enumerated sites summed out."""
        if not self.has_enumerable_sites:
            return trace.log_prob_sum()
        mf = model_log_factors(trace, self.max_plate_nesting)
        return contract_to_scalar(mf.factors, mf.var_ordinals)

    def __call__(self, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        constrained = self.constrain(params)
        trace = trace_run(
            self.model, self.model_args, self.model_kwargs, None, ConditionMessenger(constrained)
        )
        potential = -self.log_joint(trace)
        for name, t in self.transforms.items():
            if name in params:
                potential = (
                    potential + t.log_abs_det_jacobian(constrained[name], params[name]).sum()
                )
        if not isinstance(potential, torch.Tensor):
            potential = torch.as_tensor(potential, dtype=torch.get_default_dtype())
        return potential


#: The name of the plate that holds the chains of a chain-batched potential.
CHAINS_PLATE = "_mcmc_chains"


class ChainBatchedPotential:
    """The potential energies of ``num_chains`` chains from one run of the model.

    The model runs inside a plate of size ``num_chains`` (named :data:`CHAINS_PLATE`) at
    a batch dim left of every plate and batch dim the model uses, so each latent value
    carries a leading chain dim; the log densities are then summed per chain.

    :param PotentialFn potential_fn: the single-chain potential (model, arguments,
        transforms); it must not sum enumerated sites out.
    :param prototype_trace: a trace of the model (site shapes).
    :param int num_chains: the number of chains.

    Calling it with a dict of unconstrained values of shape ``(num_chains,) + site_shape``
    returns the ``(num_chains,)`` potential energies. The result is only right for
    models written to broadcast over extra batch dims on the left (as vectorized
    particles need); callers compare it against :class:`PotentialFn` chain by chain
    before relying on it.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     ember.sample("x", dist.Normal(0.0, 1.0))
        >>> _, potential_fn, _, trace = initialize_model(model)
        >>> batched = ChainBatchedPotential(potential_fn, trace, 3)
        >>> batched({"x": torch.tensor([0.0, 1.0, 2.0])}) - potential_fn({"x": torch.tensor(0.0)})
        tensor([0.0000, 0.5000, 2.0000])
    """

    def __init__(self, potential_fn: PotentialFn, prototype_trace, num_chains: int):
        if potential_fn.has_enumerable_sites:
            raise ValueError(
                "ChainBatchedPotential cannot batch a model with enumerated sites; "
                "evaluate the chains one by one"
            )
        self.potential_fn = potential_fn
        self.num_chains = num_chains
        nesting = potential_fn.max_plate_nesting or 0
        batch_dims = {}
        for name, site in prototype_trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            batch_dims[name] = len(site["fn"].batch_shape)
            nesting = max(nesting, batch_dims[name])
        self.chain_dim = -nesting - 1
        self._value_shapes = {}
        for name in potential_fn.transforms:
            site = prototype_trace.nodes.get(name)
            if site is None:
                continue
            pad = nesting - batch_dims[name]
            self._value_shapes[name] = (num_chains,) + (1,) * pad + tuple(site["value"].shape)
        self._model = vectorize(potential_fn.model, num_chains, self.chain_dim, CHAINS_PLATE)

    def _per_chain(self, x) -> torch.Tensor:
        # sum a log density over every dim but the chain dim
        c = self.num_chains
        if not isinstance(x, torch.Tensor) or x.dim() < -self.chain_dim:
            return torch.as_tensor(x).sum().expand(c)
        idx = x.dim() + self.chain_dim
        others = [d for d in range(x.dim()) if d != idx]
        out = x.sum(others) if others else x
        return out.expand(c)

    def __call__(self, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        pf = self.potential_fn
        c = self.num_chains
        constrained = pf.constrain(params)
        cond = {
            name: (v.reshape(self._value_shapes[name]) if name in self._value_shapes else v)
            for name, v in constrained.items()
        }
        trace = trace_run(
            self._model, pf.model_args, pf.model_kwargs, None, ConditionMessenger(cond)
        )
        trace.compute_log_prob()
        log_joint = None
        for site in trace.nodes.values():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            lp = self._per_chain(site["log_prob"])
            log_joint = lp if log_joint is None else log_joint + lp
        potential = -log_joint if log_joint is not None else None
        for name, t in pf.transforms.items():
            if name in params:
                jac = t.log_abs_det_jacobian(constrained[name], params[name])
                jac = jac.reshape(c, -1).sum(-1)
                potential = jac if potential is None else potential + jac
        if potential is None:
            return torch.zeros(c)
        return potential


def _site_log_prob_report(trace) -> str:
    bad = []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        try:
            lp = site["fn"].log_prob(site["value"])
        except (ValueError, RuntimeError) as err:
            bad.append(f"{name} (log_prob raised: {err})")
            continue
        if not bool(torch.isfinite(lp).all()):
            bad.append(f"{name} (log_prob {'nan' if bool(torch.isnan(lp).any()) else 'inf'})")
    return ", ".join(bad) if bad else "none individually; the sum or a gradient is not finite"


def initialize_model(
    model: Callable,
    model_args: tuple = (),
    model_kwargs: Optional[dict] = None,
    transforms: Optional[dict] = None,
    max_plate_nesting: Optional[int] = None,
    jit_compile: bool = False,
    jit_options: Optional[dict] = None,
    skip_jit_warnings: bool = False,
    num_chains: int = 1,
    init_strategy: Callable = init_to_uniform,
    initial_params: Optional[Dict[str, torch.Tensor]] = None,
):
    """Prepare ``model`` for HMC/NUTS.

    :param model: a model with at least one continuous latent site.
    :param dict transforms: site name to a transform from the site's support to the
        real space (default: ``biject_to(support).inv`` for every continuous latent site).
    :param int max_plate_nesting: the plate dims the model uses (default: guessed by
        running the model once).
    :param bool jit_compile: accepted for compatibility; the potential is evaluated
        directly (see :class:`PotentialFn`).
    :param int num_chains: the number of initial points (stacked along a leading dim
        when more than one).
    :param init_strategy: an init strategy of :mod:`ember.infer.autoguide.initialization`.
    :param dict initial_params: unconstrained initial values (skips the search).
    :returns: ``(initial_params, potential_fn, transforms, prototype_trace)``.

    Discrete latent sites with enumerable support are summed out of the potential
    (enumerated in parallel); a discrete latent site that cannot be enumerated is an
    error, as is a model with no continuous latent site.

    Example::

        >>> import ember, ember.distributions as dist
        >>> def model():
        ...     ember.sample("s", dist.LogNormal(0.0, 1.0))
        >>> params, potential_fn, transforms, _ = initialize_model(model)
        >>> # in log space the log-normal is a standard normal: 0.5 ** 2 / 2 + log(2 pi) / 2
        >>> round(float(potential_fn({"s": torch.tensor(0.5)})), 4)
        1.0439
    """
    model_kwargs = {} if model_kwargs is None else model_kwargs
    if transforms is None:
        automatic_transforms = True
        transforms = {}
    else:
        automatic_transforms = False
        transforms = dict(transforms)
    if max_plate_nesting is None:
        max_plate_nesting = guess_max_plate_nesting(model, None, model_args, model_kwargs)
    with poutine.block():
        plain_trace = trace_run(model, model_args, model_kwargs)
    has_enumerable_sites = False
    latent_shapes = {}
    for name, site in plain_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        fn = site["fn"]
        if site_is_subsample(site):
            size = getattr(fn, "size", None)
            sub = getattr(fn, "subsample_size", None)
            if size is not None and sub is not None and sub < size:
                raise RuntimeError(
                    f"HMC/NUTS does not support models with subsample sites: plate {name!r} "
                    f"subsamples {sub} of {size} elements; use the full plate"
                )
            continue
        if fn.support.is_discrete:
            if not fn.has_enumerate_support:
                raise ValueError(
                    f"site {name!r} is a discrete latent site ({type(fn).__name__}) that "
                    "cannot be enumerated; HMC/NUTS sum discrete sites out by enumeration, "
                    "which needs a finite support (e.g. Categorical, Bernoulli). Hint: "
                    "observe it, or marginalize it by hand"
                )
            has_enumerable_sites = True
            continue
        latent_shapes[name] = site
    if has_enumerable_sites:
        model = poutine.enum(config_enumerate(model), first_available_dim=-1 - max_plate_nesting)
    if latent_shapes:
        # the prototype: initial values of the continuous sites, enumerated sites as supports
        with poutine.block():
            plain_trace = trace_run(InitMessenger(init_strategy)(model), model_args, model_kwargs)
    sample_names = [n for n, s in plain_trace.nodes.items() if s["type"] == "sample"]
    if not latent_shapes and has_enumerable_sites and not (transforms and not automatic_transforms):
        raise ValueError(
            "HMC/NUTS need a model with at least one continuous latent sample site; "
            f"found sample sites {sample_names},"
            " none of which is latent and continuous. Hint: use Predictive or Importance for "
            "models without continuous latent variables"
        )
    for name, site in latent_shapes.items():
        if automatic_transforms:
            transforms[name] = biject_to(site["fn"].support).inv
    potential_fn = PotentialFn(
        model, model_args, model_kwargs, transforms, max_plate_nesting, has_enumerable_sites
    )
    if initial_params is None and not latent_shapes:  # a model with nothing to sample
        initial_params = {}
    if initial_params is None:
        initial_params = _find_valid_initial_params(
            model,
            model_args,
            model_kwargs,
            transforms,
            potential_fn,
            list(latent_shapes),
            num_chains,
            init_strategy,
            plain_trace,
        )
    return initial_params, potential_fn, transforms, plain_trace


def _find_valid_initial_params(
    model,
    model_args,
    model_kwargs,
    transforms,
    potential_fn,
    names,
    num_chains,
    init_strategy,
    trace,
    max_tries=100,
):
    found = []
    init_model = InitMessenger(init_strategy)(model)
    last_trace = trace
    for _ in range(num_chains * max_tries):
        if trace is None:
            with poutine.block():
                trace = trace_run(init_model, model_args, model_kwargs)
        last_trace = trace
        params = {n: transforms[n](trace.nodes[n]["value"].detach()) for n in names}
        grads, pe = potential_grad(potential_fn, params)
        if bool(torch.isfinite(pe)) and all(bool(torch.isfinite(g).all()) for g in grads.values()):
            found.append(params)
            if len(found) == num_chains:
                if num_chains == 1:
                    return found[0]
                return {n: torch.stack([p[n] for p in found]) for n in names}
        trace = None
    raise ValueError(
        "Model specification seems incorrect - cannot find valid initial params: the "
        f"potential energy or its gradient is not finite at {max_tries * num_chains} initial "
        f"points. Sites with a non-finite log density at the last point: "
        f"{_site_log_prob_report(last_trace)}. Hint: check the distributions' parameters, "
        "or pass init_strategy / initial_params"
    )


class TraceEinsumEvaluator:
    """The log joint density of a model trace with its enumerated sites summed out.

    :param model_trace: a trace of the model run under enumeration (its structure).
    :param bool has_enumerable_sites: whether there are enumerated sites to sum out.
    :param int max_plate_nesting: the plate dims the model uses.

    :meth:`log_prob` takes a trace of the same structure and returns the scalar log
    density; the summation is the plated contraction of the enumeration factor layer.
    """

    def __init__(
        self,
        model_trace,
        has_enumerable_sites: bool = False,
        max_plate_nesting: Optional[int] = None,
    ):
        self.has_enumerable_sites = has_enumerable_sites
        if max_plate_nesting is None:
            max_plate_nesting = 0
        self.max_plate_nesting = max_plate_nesting

    def log_prob(self, model_trace) -> torch.Tensor:
        """The scalar log density of ``model_trace``, enumerated sites summed out."""
        if not self.has_enumerable_sites:
            return model_trace.log_prob_sum()
        mf = model_log_factors(model_trace, self.max_plate_nesting)
        return contract_to_scalar(mf.factors, mf.var_ordinals)


class TraceTreeEvaluator(TraceEinsumEvaluator):
    """Same as :class:`TraceEinsumEvaluator` (Pyro's tree-structured evaluator gives the
    same numbers; here both are the one plated contraction)."""
