"""Hamiltonian Monte Carlo with a fixed trajectory length, step-size and mass-matrix
adaptation.

The kernel keeps the position as one flat vector of unconstrained values (sites in the
order of the mass-matrix blocks); the potential energy is evaluated on a dict view of
that vector, so a leapfrog step costs one potential evaluation and one backward pass
and nothing else.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.fx
from torch.func import grad_and_value
from torch.fx.experimental.proxy_tensor import make_fx

from ember.infer.autoguide.initialization import init_to_uniform
from ember.infer.mcmc.adaptation import WarmupAdapter, mass_matrix_blocks
from ember.infer.mcmc.mcmc_kernel import MCMCKernel
from ember.infer.mcmc.util import initialize_model
from ember.util import validation_enabled

__all__ = ["HMC", "FlatLayout", "record_potential_grad", "trace_flat_potential"]


class FlatLayout:
    """Packs a dict of tensors into one flat vector and back (as views).

    :param names: the site names, in the order of the flat vector.
    :param shapes: each site's shape.
    """

    def __init__(self, names: List[str], shapes: Dict[str, torch.Size]):
        self.names = list(names)
        self.shapes = {n: torch.Size(shapes[n]) for n in self.names}
        self.sizes = [int(math.prod(self.shapes[n])) for n in self.names]
        self.size = sum(self.sizes)

    def pack(self, values: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate ``values`` (in layout order) into a flat vector (trailing dims)."""
        if not self.names:
            return torch.zeros(0)
        parts = []
        for n, size in zip(self.names, self.sizes):
            v = values[n]
            batch = v.shape[: v.dim() - len(self.shapes[n])]
            parts.append(v.reshape(batch + (size,)))
        return torch.cat(parts, dim=-1)

    def unpack(self, flat: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Split a flat vector (trailing dim) into a dict of views with the sites' shapes."""
        out = {}
        pos = 0
        batch = flat.shape[:-1]
        for n, size in zip(self.names, self.sizes):
            out[n] = flat[..., pos : pos + size].reshape(batch + self.shapes[n])
            pos += size
        return out


def _grad_and_value(fn, z):
    z = z.detach().requires_grad_(True)
    pe = fn(z)
    (grad,) = torch.autograd.grad(pe, [z], allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(z)
    return grad.detach(), pe.detach()


def _agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True))


def trace_flat_potential(fn: Callable, z0: torch.Tensor, num_checks: int = 3) -> Optional[Callable]:
    """Record the tensor operations of ``fn`` (a potential of a flat vector) once with
    ``torch.jit.trace`` and return the recorded function, or ``None`` when recording is
    not exact.

    The recording replays the model's arithmetic without its Python (handlers, sites,
    distribution construction), which is what makes a leapfrog step cheap. It is only
    used if it agrees with ``fn`` in value and gradient at ``z0`` and at ``num_checks``
    random points around it: a model whose operations depend on the values (Python
    branches on a latent value) records one path only, and is caught here.
    """
    try:
        with validation_enabled(False), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(fn, (z0.detach(),), check_trace=False)
            points = [z0.detach()] + [
                z0.detach() + 0.5 * torch.randn_like(z0) for _ in range(num_checks)
            ]
            for z in points:
                g_direct, pe_direct = _grad_and_value(fn, z)
                g_traced, pe_traced = _grad_and_value(traced, z)
                if not (_agree(pe_direct, pe_traced) and _agree(g_direct, g_traced)):
                    return None
    except Exception:  # anything the tracer cannot record: evaluate the model directly
        return None
    return traced


#: Substrings of the names of random operations: a recorded gradient graph holding one is
#: not folded into constants (a potential must not draw; the checks then reject it).
_RANDOM_OPS = ("rand", "normal", "bernoulli", "multinomial", "poisson", "exponential", "uniform")


def _fold_constants(gm, example: torch.Tensor) -> None:
    """Replace the nodes of ``gm`` that do not depend on its input by their values."""
    graph = gm.graph
    for node in graph.nodes:
        # constants that require grad (a model's ember.param values) are constants here:
        # the replay must neither build an autograd graph nor return one
        if node.op == "get_attr":
            value = getattr(gm, node.target, None)
            if isinstance(value, torch.Tensor) and value.requires_grad:
                if node.target in gm._parameters:
                    del gm._parameters[node.target]
                setattr(gm, node.target, value.detach())
    dependent = set()
    for node in graph.nodes:
        if node.op == "placeholder" or any(a in dependent for a in node.all_input_nodes):
            dependent.add(node)
        elif node.op == "call_function" and any(r in str(node.target) for r in _RANDOM_OPS):
            return
    values = {}

    class _Capture(torch.fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            values[node] = out
            return out

    _Capture(gm).run(example)
    values = {n: (v.detach() if isinstance(v, torch.Tensor) else v) for n, v in values.items()}
    names = {}  # one buffer per tensor object (a traced module must not share them)
    for node in list(graph.nodes):
        if node.op != "call_function" or node in dependent:
            continue
        value = values.get(node)
        if not isinstance(value, torch.Tensor):
            continue
        name = names.get(id(value))
        if name is None:
            name = names[id(value)] = f"_folded_{len(names)}"
            gm.register_buffer(name, value)
        with graph.inserting_before(node):
            const = graph.get_attr(name)
        node.replace_all_uses_with(const)
    graph.eliminate_dead_code()
    gm.recompile()


def record_potential_grad(
    fn: Callable, z0: torch.Tensor, batched: bool = False, num_checks: int = 3
) -> Optional[Callable]:
    """Record ``z -> (gradient, potential)`` of a potential of a flat vector as one graph
    of tensor operations, the backward pass written out, and return it (``None`` when
    recording fails or is not exact).

    The forward and backward operations are captured together
    (``torch.func.grad_and_value`` under ``make_fx``), operations that do not depend on
    ``z`` are folded into constants, and the result is replayed with ``torch.jit.trace``:
    a leapfrog step then costs one replay, with no model Python and no autograd engine.
    With ``batched=True``, ``fn`` maps ``(C, D)`` positions to ``(C,)`` potentials and the
    gradient is each row's. The recording is used only if it agrees with ``fn`` (value
    and gradient) at ``z0`` and at ``num_checks`` random points around it.

    Example::

        >>> f = lambda z: 0.5 * (z**2).sum()
        >>> grad_fn = record_potential_grad(f, torch.ones(3))
        >>> grad_fn(torch.tensor([1.0, 2.0, 3.0]))
        (tensor([1., 2., 3.]), tensor(7.))
    """
    if batched:

        def summed(z):
            pe = fn(z)
            return pe.sum(), pe

        def grad_value(z):
            grad, (_, pe) = grad_and_value(summed, has_aux=True)(z)
            return grad, pe

    else:
        # (a plain function: make_fx reads the signature, which a bound method would skew)
        grad_value = grad_and_value(lambda z: fn(z))
    z0 = z0.detach()
    try:
        with validation_enabled(False), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = make_fx(grad_value)(z0)
            _fold_constants(gm, z0)
            recorded = torch.jit.trace(gm, (z0,), check_trace=False)
            points = [z0] + [z0 + 0.5 * torch.randn_like(z0) for _ in range(num_checks)]
            for z in points:
                if batched:
                    g_direct, pe_direct = _grad_and_value(lambda x: fn(x).sum(), z)
                    pe_direct = fn(z).detach()
                else:
                    g_direct, pe_direct = _grad_and_value(fn, z)
                g_rec, pe_rec = recorded(z)
                if not (_agree(pe_direct, pe_rec) and _agree(g_direct, g_rec)):
                    return None
    except Exception:  # anything that cannot be recorded: the caller uses autograd
        return None
    return recorded


def _is_singular_error(err: Exception) -> bool:
    message = str(err)
    return (
        "singular" in message
        or "not positive-definite" in message
        or (isinstance(err, ValueError) and "Expected parameter" in message)
    )


class HMC(MCMCKernel):
    """Hamiltonian Monte Carlo.

    :param model: a model (its continuous latent sites are sampled, enumerable discrete
        sites are summed out), or
    :param potential_fn: a function of a dict of unconstrained values returning the
        potential energy (then ``MCMC``'s ``initial_params`` must be given).
    :param float step_size: the initial leapfrog step size.
    :param float trajectory_length: the length of a trajectory (``num_steps`` is then
        ``trajectory_length / step_size``); default ``2 * pi``.
    :param int num_steps: a fixed number of leapfrog steps per trajectory.
    :param bool adapt_step_size: adapt the step size during warm-up (dual averaging).
    :param bool adapt_mass_matrix: adapt the mass matrix during warm-up.
    :param full_mass: ``False`` (diagonal), ``True`` (dense) or a list of tuples of site
        names, each a dense block (the other sites share a diagonal block).
    :param dict transforms: site name to transform to the unconstrained space.
    :param int max_plate_nesting: the plate dims the model uses.
    :param bool jit_compile: record the potential's tensor operations once and replay
        them at every leapfrog step instead of running the model: its forward and
        backward pass together (:func:`record_potential_grad`), or else the forward pass
        alone, differentiated by autograd (:func:`trace_flat_potential`). ``None``
        (default): do so for a model when a recording is exact (checked at setup), else
        run the model; ``True``: also for a given ``potential_fn``; ``False``: never.
    :param float target_accept_prob: the acceptance probability step-size adaptation
        aims at.
    :param init_strategy: how initial values are chosen.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.mcmc import MCMC
        >>> def model():
        ...     ember.sample("x", dist.Normal(1.0, 2.0))
        >>> ember.set_rng_seed(0)
        >>> mcmc = MCMC(HMC(model, num_steps=4), num_samples=50, warmup_steps=50,
        ...             disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["x"].shape
        torch.Size([50])
    """

    def __init__(
        self,
        model: Optional[Callable] = None,
        potential_fn: Optional[Callable] = None,
        step_size: float = 1,
        trajectory_length: Optional[float] = None,
        num_steps: Optional[int] = None,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        full_mass=False,
        transforms: Optional[dict] = None,
        max_plate_nesting: Optional[int] = None,
        jit_compile: Optional[bool] = None,
        jit_options: Optional[dict] = None,
        ignore_jit_warnings: bool = False,
        target_accept_prob: float = 0.8,
        init_strategy: Callable = init_to_uniform,
        *,
        min_stepsize: float = 1e-10,
        max_stepsize: float = 1e10,
    ):
        if not ((model is None) ^ (potential_fn is None)):
            raise ValueError("Only one of model or potential_fn must be specified.")
        if not 0 < target_accept_prob < 1:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob}")
        if step_size is not None and step_size <= 0:
            raise ValueError(f"step_size must be positive, got {step_size}")
        self.model = model
        self.transforms = transforms
        self._max_plate_nesting = max_plate_nesting
        self._jit_compile = jit_compile
        self._jit_options = jit_options
        self._ignore_jit_warnings = ignore_jit_warnings
        self._init_strategy = init_strategy
        self.potential_fn = potential_fn
        if trajectory_length is not None:
            self.trajectory_length = trajectory_length
        elif num_steps is not None:
            self.trajectory_length = (1 if step_size is None else step_size) * num_steps
        else:
            self.trajectory_length = 2 * math.pi
        self._fixed_num_steps = num_steps
        self.full_mass = full_mass
        self.min_stepsize = min_stepsize
        self.max_stepsize = max_stepsize
        self._adapter = WarmupAdapter(
            step_size,
            adapt_step_size=adapt_step_size,
            adapt_mass_matrix=adapt_mass_matrix,
            target_accept_prob=target_accept_prob,
            dense_mass=full_mass,
        )
        self._max_sliced_energy = 1000.0  # an energy error beyond this is a divergence
        self._direction_threshold = math.log(0.8)
        self._initial_params = None
        self._layout: Optional[FlatLayout] = None
        self._traced_potential = None
        self._grad_fn = None
        self._mm_version = -1
        self._reset()

    # ----------------------------------------------------------------- state
    def _reset(self) -> None:
        self._t = 0
        self._accept_cnt = 0
        self._mean_accept_prob = 0.0
        self._divergences: List[int] = []
        self._warmup_steps = None
        self._cached: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None

    @property
    def step_size(self) -> float:
        """The current leapfrog step size."""
        return self._adapter.step_size

    @step_size.setter
    def step_size(self, value: float) -> None:
        self._adapter.step_size = value

    @property
    def num_steps(self) -> int:
        """The number of leapfrog steps of a trajectory."""
        if self._fixed_num_steps is not None:
            return self._fixed_num_steps
        return max(1, int(self.trajectory_length / self.step_size))

    @property
    def mass_matrix_adapter(self):
        """The (block) mass matrix and its adaptation."""
        return self._adapter.mass_matrix_adapter

    @mass_matrix_adapter.setter
    def mass_matrix_adapter(self, value) -> None:
        self._adapter.mass_matrix_adapter = value

    @property
    def inverse_mass_matrix(self) -> Dict[tuple, torch.Tensor]:
        """Each mass-matrix block's inverse (a vector for a diagonal block)."""
        return self._adapter.mass_matrix_adapter.inverse_mass_matrix

    @property
    def initial_params(self):
        """The unconstrained values the chain starts from."""
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params) -> None:
        self._initial_params = params

    def _cache(self, z: Dict[str, torch.Tensor], potential_energy, z_grads) -> None:
        """Remember the potential energy and gradient at ``z`` (dicts of tensors)."""
        layout = self._layout
        self._cached = (layout.pack(z), potential_energy, layout.pack(z_grads))

    def clear_cache(self) -> None:
        """Forget the cached position, so the next sample starts from its argument."""
        self._cached = None

    # ------------------------------------------------------------- potential
    def potential_flat(self, z: torch.Tensor) -> torch.Tensor:
        """The potential energy at the flat unconstrained vector ``z``."""
        if self._traced_potential is not None:
            return self._traced_potential(z)
        return self.potential_fn(self._layout.unpack(z))

    def _direct_potential(self, z: torch.Tensor) -> torch.Tensor:
        return self.potential_fn(self._layout.unpack(z))

    def _build_potential(self, z0: torch.Tensor) -> None:
        self._traced_potential = None
        self._grad_fn = None
        wanted = self._jit_compile
        if wanted is None:
            wanted = self.model is not None
        if wanted and z0.numel() > 0:
            self._grad_fn = record_potential_grad(self._direct_potential, z0)
            if self._grad_fn is None:
                self._traced_potential = trace_flat_potential(self._direct_potential, z0)

    def potential_grad_flat(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(gradient, potential energy)`` at the flat vector ``z``; a potential that
        cannot be evaluated (singular matrix, invalid parameter) gives ``nan`` energy."""
        if self._grad_fn is not None:
            try:
                return self._grad_fn(z.detach())
            except (ValueError, RuntimeError) as err:
                if _is_singular_error(err):
                    return torch.zeros_like(z), z.new_tensor(float("nan"))
                raise
        z = z.detach().requires_grad_(True)
        try:
            with torch.enable_grad():
                pe = self.potential_flat(z)
        except (ValueError, RuntimeError) as err:
            if _is_singular_error(err):
                return torch.zeros_like(z), z.new_tensor(float("nan"))
            raise
        if not isinstance(pe, torch.Tensor):
            pe = z.new_tensor(float(pe))
        if pe.requires_grad:
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(pe, [z], allow_unused=True)
            if grad is None:
                grad = torch.zeros_like(z)
        else:
            grad = torch.zeros_like(z)
        return grad.detach(), pe.detach()

    # ---------------------------------------------------------- mass matrix
    def _refresh_mass(self) -> None:
        adapter = self.mass_matrix_adapter
        if adapter.version == self._mm_version:
            return
        self._mm_version = adapter.version
        blocks = list(adapter.inverse_mass_matrix.items())
        if all(inv.dim() == 1 for _, inv in blocks):
            self._inv_mass = torch.cat([inv for _, inv in blocks])
            self._mass_sqrt = torch.cat([adapter.mass_matrix_sqrt[k] for k, _ in blocks])
            self._dense = False
        else:
            self._inv_mass = torch.block_diag(
                *[inv if inv.dim() == 2 else torch.diag(inv) for _, inv in blocks]
            )
            self._mass_sqrt = torch.block_diag(
                *[
                    adapter.mass_matrix_sqrt[k]
                    if inv.dim() == 2
                    else torch.diag(adapter.mass_matrix_sqrt[k])
                    for k, inv in blocks
                ]
            )
            self._dense = True

    def kinetic_grad_flat(self, r: torch.Tensor) -> torch.Tensor:
        """``M^-1 r`` for a flat momentum."""
        if self._dense:
            return r @ self._inv_mass.transpose(-1, -2)
        return self._inv_mass * r

    def kinetic_energy_flat(self, r: torch.Tensor) -> torch.Tensor:
        """``r^T M^-1 r / 2`` for a flat momentum."""
        return 0.5 * (r * self.kinetic_grad_flat(r)).sum(-1)

    def sample_momentum(self, like: torch.Tensor) -> torch.Tensor:
        """A momentum drawn from ``N(0, M)``, shaped like the position ``like``."""
        u = torch.randn_like(like)
        if self._dense:
            return u @ self._mass_sqrt.transpose(-1, -2)
        return self._mass_sqrt * u

    def leapfrog(self, z, r, grad, step_size):
        """One leapfrog step: ``(z, r, grad, potential_energy)`` after it."""
        r = r - (0.5 * step_size) * grad
        z = z + step_size * self.kinetic_grad_flat(r)
        grad, pe = self.potential_grad_flat(z)
        r = r - (0.5 * step_size) * grad
        return z, r, grad, pe

    # ----------------------------------------------------------------- setup
    def _find_reasonable_step_size(self, z: Dict[str, torch.Tensor]) -> float:
        step_size = self.step_size
        if self._layout is None or self._layout.size == 0:
            return step_size
        self._refresh_mass()
        z_flat = self._layout.pack(z).detach()
        grad, pe = self.potential_grad_flat(z_flat)
        r = self.sample_momentum(z_flat)
        energy_current = float(self.kinetic_energy_flat(r) + pe)

        def direction_at(eps):
            _, r_new, _, pe_new = self.leapfrog(z_flat, r, grad, eps)
            delta = float(self.kinetic_energy_flat(r_new) + pe_new) - energy_current
            return 1 if self._direction_threshold < -delta else -1

        direction = direction_at(step_size)
        scale = 2.0**direction
        for _ in range(100):
            new_step_size = step_size * scale
            if not (self.min_stepsize < new_step_size < self.max_stepsize):
                break
            step_size = new_step_size
            if direction_at(step_size) != direction:
                break
        return min(max(step_size, self.min_stepsize), self.max_stepsize)

    def _initialize_model_properties(self, model_args, model_kwargs) -> None:
        init_params, potential_fn, transforms, trace = initialize_model(
            self.model,
            model_args,
            model_kwargs,
            transforms=self.transforms,
            max_plate_nesting=self._max_plate_nesting,
            jit_compile=self._jit_compile,
            jit_options=self._jit_options,
            skip_jit_warnings=self._ignore_jit_warnings,
            init_strategy=self._init_strategy,
            initial_params=self._initial_params,
        )
        if not init_params:
            raise ValueError(
                f"{type(self).__name__} needs a model with at least one continuous latent "
                "sample site; this model has none. Hint: for a model whose latent sites are "
                "all discrete use TraceEnum_ELBO / infer_discrete or Predictive"
            )
        self.potential_fn = potential_fn
        self.transforms = transforms
        self._initial_params = init_params
        self._prototype_trace = trace

    def setup(self, warmup_steps: int, *args, **kwargs) -> None:
        """Build the potential (from the model and its arguments), the mass matrix and the
        warm-up schedule."""
        self._reset()
        self._warmup_steps = warmup_steps
        self._initial_params_given = self._initial_params is not None
        if self.model is not None:
            self._initialize_model_properties(args, kwargs)
        if self.transforms is None:
            self.transforms = {}
        params = self._initial_params or {}
        shapes = {n: v.shape for n, v in params.items()}
        blocks = mass_matrix_blocks(shapes, self.full_mass)
        names = [n for block in blocks for n in block]
        self._layout = FlatLayout(names, shapes)
        options = {}
        if params:
            first = next(iter(params.values()))
            options = {"dtype": first.dtype, "device": first.device}
        self._adapter.configure(
            warmup_steps,
            mass_matrix_shape=blocks,
            find_reasonable_step_size_fn=self._find_reasonable_step_size,
            options=options,
        )
        self._mm_version = -1
        self._traced_potential = None
        if params:
            self._build_potential(self._layout.pack(params))
            self._refresh_mass()
            if self._adapter.adapt_step_size:
                self._adapter.reset_step_size_adaptation(params)

    def cleanup(self) -> None:
        self._cached = None
        self._traced_potential = None  # not picklable; rebuilt by setup
        self._grad_fn = None
        if self.model is not None and not getattr(self, "_initial_params_given", True):
            self._initial_params = None  # the next chain draws its own initial values

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_traced_potential"] = None
        state["_grad_fn"] = None
        return state

    # ---------------------------------------------------------------- sample
    def _current(self, params):
        if self._cached is not None:
            return self._cached
        z = self._layout.pack({n: params[n] for n in self._layout.names}).detach()
        grad, pe = self.potential_grad_flat(z)
        return z, pe, grad

    def _record(self, accept_prob: float, accepted, diverging: bool, z_flat, grad):
        # ``accepted``: 1/0 for a Metropolis step; NUTS passes its mean acceptance probability
        self._t += 1
        if self._t > self._warmup_steps:
            n = self._t - self._warmup_steps
            self._accept_cnt += float(accepted)
            if diverging:
                self._divergences.append(n - 1)
        else:
            n = self._t
            self._adapter.step(
                self._t - 1,
                self._layout.unpack(z_flat),
                accept_prob,
                self._layout.unpack(grad),
            )
            self._refresh_mass()
        self._mean_accept_prob += (accept_prob - self._mean_accept_prob) / n

    def end_warmup(self) -> None:
        self._mean_accept_prob = 0.0

    def sample(self, params: dict) -> dict:
        if not params or self._layout is None or self._layout.size == 0:
            self._t += 1
            return params
        z, pe, grad = self._current(params)
        r = self.sample_momentum(z)
        energy_current = self.kinetic_energy_flat(r) + pe
        z_new, r_new, grad_new = z, r, grad
        pe_new = pe
        step_size = self.step_size
        for _ in range(self.num_steps):
            z_new, r_new, grad_new, pe_new = self.leapfrog(z_new, r_new, grad_new, step_size)
        energy_new = self.kinetic_energy_flat(r_new) + pe_new
        delta = float(energy_new - energy_current)
        if math.isnan(delta):
            delta = math.inf
        diverging = delta > self._max_sliced_energy
        accept_prob = 1.0 if delta <= 0 else math.exp(-delta)
        accepted = float(torch.rand(())) < accept_prob
        if accepted:
            z, pe, grad = z_new, pe_new, grad_new
        self._cached = (z, pe, grad)
        self._record(accept_prob, accepted, diverging, z, grad)
        return self._layout.unpack(z)

    # ----------------------------------------------------------- reporting
    def logging(self) -> OrderedDict:
        return OrderedDict(
            [
                ("step size", f"{self.step_size:.2e}"),
                ("acc. prob", f"{self._mean_accept_prob:.3f}"),
            ]
        )

    def diagnostics(self) -> dict:
        num_samples = max(self._t - (self._warmup_steps or 0), 1)
        return {
            "divergences": list(self._divergences),
            "acceptance rate": self._accept_cnt / num_samples,
        }
