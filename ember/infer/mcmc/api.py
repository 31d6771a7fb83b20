"""The MCMC driver: runs a kernel for warm-up and sampling on one or many chains, keeps
the draws (or streaming statistics of them) and reports summaries and diagnostics.

Chains run one after another in this process (``_UnarySampler``) or each in its own
worker process (``_MultiSampler``, used when ``num_chains > 1`` and there are enough
CPUs).
"""

from __future__ import annotations

import contextlib
import copy
import io
import queue as queue_module
import sys
import time
import traceback
import warnings
from functools import reduce
from typing import Callable, Dict, List, Optional

import torch
import torch.multiprocessing as mp

from ember.infer.mcmc.arviz import to_arviz
from ember.infer.mcmc.distributed import gather_chains
from ember.infer.mcmc.summary import (
    diagnostics,
    diagnostics_from_stats,
    print_summary,
    select_samples,
    summary,
)
from ember.infer.mcmc.vectorized import VectorizedChains
from ember.ops.streaming import CountMeanVarianceStats, StatsOfDict
from ember.util import validation_enabled

__all__ = ["MCMC", "StreamingMCMC"]


class _Progress:
    """Per-chain progress: a tqdm bar with the kernel's figures on a terminal, a plain
    line every tenth of the run otherwise."""

    def __init__(self, total: int, chain_id: int, num_chains: int, disable: bool):
        self.total = total
        self.disable = disable
        self.bar = None
        self.desc = "Warmup" if num_chains == 1 else f"Warmup [{chain_id}]"
        self.chain_id = chain_id
        self.num_chains = num_chains
        self._every = max(1, total // 10)
        self._last_postfix = 0.0
        if disable:
            return
        self.stream = sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        terminal = bool(isatty and isatty())
        if terminal:
            try:
                from tqdm.auto import tqdm  # optional dependency
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=self.desc, position=chain_id, dynamic_ncols=True)

    def update(self, i: int, stage: str, logging: Dict[str, str]) -> None:
        if self.disable:
            return
        label = stage if self.num_chains == 1 else f"{stage} [{self.chain_id}]"
        if self.bar is not None:
            self.bar.update(1)
            now = time.monotonic()
            if now - self._last_postfix > 0.1 or i + 1 == self.total:
                self.bar.set_description(label, refresh=False)
                self.bar.set_postfix(logging, refresh=False)
                self._last_postfix = now
        elif (i + 1) % self._every == 0 or i + 1 == self.total:
            figures = ", ".join(f"{k} {v}" for k, v in logging.items())
            print(f"{label}: {i + 1}/{self.total} {figures}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _kernel_logging(kernel) -> Dict[str, str]:
    logging = dict(kernel.logging() or {})
    diag = getattr(kernel, "_divergences", None)
    if diag is not None:
        logging["div."] = str(len(diag))
    return logging


def _run_chain(
    kernel,
    chain_id,
    num_chains,
    warmup_steps,
    num_samples,
    args,
    kwargs,
    initial_params,
    hook_fn,
    disable_progbar,
    on_sample,
    on_progress=None,
):
    """Set up ``kernel`` and run one chain, calling ``on_sample(params)`` per draw."""
    if initial_params is not None:
        kernel.initial_params = initial_params
    kernel.setup(warmup_steps, *args, **kwargs)
    params = kernel.initial_params
    if params is None:
        params = {}
    total = warmup_steps + num_samples
    progress = None
    if on_progress is None:
        progress = _Progress(total, chain_id, num_chains, disable_progbar)
    try:
        for i in range(total):
            stage, j = ("Warmup", i) if i < warmup_steps else ("Sample", i - warmup_steps)
            if i == warmup_steps:
                kernel.end_warmup()
            params = kernel.sample(params)
            if hook_fn is not None:
                hook_fn(kernel, params, stage, j)
            if i >= warmup_steps:
                on_sample(params)
            if progress is not None:
                progress.update(i, stage, _kernel_logging(kernel))
            elif on_progress is not None:
                on_progress(i, stage, _kernel_logging(kernel))
        if warmup_steps == total:
            kernel.end_warmup()
    finally:
        if progress is not None:
            progress.close()
    diag = kernel.diagnostics()
    kernel.cleanup()
    return diag


class _UnarySampler:
    """Runs the chains one after another in this process."""

    def __init__(
        self,
        kernel,
        num_samples,
        warmup_steps,
        num_chains,
        initial_params,
        hook_fn,
        disable_progbar,
    ):
        self.kernel = kernel
        self.num_samples = num_samples
        self.warmup_steps = warmup_steps
        self.num_chains = num_chains
        self.initial_params = initial_params
        self.hook_fn = hook_fn
        self.disable_progbar = disable_progbar

    def run(self, args, kwargs, on_sample: Callable[[int, dict], None]) -> List[dict]:
        diagnostics = []
        for chain_id in range(self.num_chains):
            init = None
            if self.initial_params is not None:
                init = self.initial_params
                if self.num_chains > 1:
                    init = {k: v[chain_id] for k, v in init.items()}
            diag = _run_chain(
                self.kernel, chain_id, self.num_chains, self.warmup_steps, self.num_samples,
                args, kwargs, init, self.hook_fn, self.disable_progbar,
                lambda params, c=chain_id: on_sample(c, params),
            )  # fmt: skip
            diagnostics.append(diag)
            self.transforms = self.kernel.transforms
        return diagnostics


def _worker(
    queue,
    kernel,
    chain_id,
    num_chains,
    warmup_steps,
    num_samples,
    args,
    kwargs,
    initial_params,
    hook_fn,
    save_params,
):
    try:
        torch.manual_seed(torch.initial_seed() + chain_id)
        draws: List[dict] = []

        def keep(params):
            draws.append(
                {
                    k: v.detach().clone()
                    for k, v in params.items()
                    if save_params is None or k in save_params
                }
            )

        def report(i, stage, logging):
            if (i + 1) % max(1, (warmup_steps + num_samples) // 50) == 0:
                queue.put(("progress", chain_id, i, stage, logging))

        diag = _run_chain(
            kernel, chain_id, num_chains, warmup_steps, num_samples, args, kwargs,
            initial_params, hook_fn, True, keep, report,
        )  # fmt: skip
        names = draws[0].keys() if draws else ()
        stacked = {n: torch.stack([d[n] for d in draws]) for n in names}
        # inverse transforms lose their forward transform when pickled: send the forward ones
        forward = {n: t.inv for n, t in (kernel.transforms or {}).items()}
        # serialized to bytes: torch would otherwise share the tensors through file
        # descriptors that disappear when this process exits
        buffer = io.BytesIO()
        torch.save((stacked, diag, forward), buffer)
        queue.put(("done", chain_id, buffer.getvalue()))
    except BaseException:  # sent to the parent, which raises it
        queue.put(("error", chain_id, traceback.format_exc()))


class _MultiSampler:
    """Runs each chain in its own worker process."""

    def __init__(
        self,
        kernel,
        num_samples,
        warmup_steps,
        num_chains,
        initial_params,
        hook_fn,
        disable_progbar,
        mp_context,
    ):
        self.kernel = kernel
        self.num_samples = num_samples
        self.warmup_steps = warmup_steps
        self.num_chains = num_chains
        self.initial_params = initial_params
        self.hook_fn = hook_fn
        self.disable_progbar = disable_progbar
        self.ctx = mp.get_context(mp_context) if mp_context else mp.get_context()

    def run(self, args, kwargs, on_chain, save_params=None) -> List[dict]:
        queue = self.ctx.Queue()
        workers = []
        for chain_id in range(self.num_chains):
            init = None
            if self.initial_params is not None:
                init = {k: v[chain_id] for k, v in self.initial_params.items()}
            proc = self.ctx.Process(
                target=_worker,
                args=(queue, self.kernel, chain_id, self.num_chains, self.warmup_steps,
                      self.num_samples, args, kwargs, init, self.hook_fn, save_params),
                daemon=True,
            )  # fmt: skip
            proc.start()
            workers.append(proc)
        total = self.warmup_steps + self.num_samples
        bars = [
            _Progress(total, c, self.num_chains, self.disable_progbar)
            for c in range(self.num_chains)
        ]
        done = {}
        position = [0] * self.num_chains
        try:
            while len(done) < self.num_chains:
                try:
                    msg = queue.get(timeout=1.0)
                except queue_module.Empty:
                    dead = [c for c, p in enumerate(workers) if c not in done
                            and not p.is_alive() and p.exitcode not in (None, 0)]  # fmt: skip
                    if dead:
                        raise RuntimeError(
                            f"MCMC worker process of chain {dead[0]} exited with code "
                            f"{workers[dead[0]].exitcode} before sending its draws (could the "
                            "kernel or model not be pickled / imported by the worker?)"
                        ) from None
                    continue
                kind, chain_id = msg[0], msg[1]
                if kind == "progress":
                    _, _, i, stage, logging = msg
                    bar = bars[chain_id]
                    while position[chain_id] <= i:
                        if bar.bar is not None:
                            bar.bar.update(1)
                        position[chain_id] += 1
                    if bar.bar is not None:
                        bar.bar.set_postfix(logging, refresh=False)
                    elif not bar.disable:
                        figures = ", ".join(f"{k} {v}" for k, v in logging.items())
                        if (i + 1) % max(1, total // 10) < max(1, total // 50):
                            print(
                                f"{stage} [{chain_id}]: {i + 1}/{total} {figures}",
                                file=sys.stderr,
                                flush=True,
                            )
                elif kind == "done":
                    stacked, diag, forward = torch.load(io.BytesIO(msg[2]), weights_only=False)
                    done[chain_id] = (stacked, diag)
                    self.transforms = {n: f.inv for n, f in forward.items()}
                else:
                    raise RuntimeError(
                        f"MCMC chain {chain_id} failed in its worker process:\n{msg[2]}"
                    )
        finally:
            for bar in bars:
                bar.close()
            for proc in workers:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.terminate()
        for chain_id in range(self.num_chains):
            on_chain(chain_id, done[chain_id][0])
        return [done[c][1] for c in range(self.num_chains)]


class _VectorizedSampler:
    """Runs all chains together in this process (:class:`VectorizedChains`)."""

    def __init__(self, kernel, num_samples, warmup_steps, num_chains, initial_params,
                 hook_fn, disable_progbar):  # fmt: skip
        self.chains = VectorizedChains(kernel, num_chains)
        self.kernel = kernel
        self.num_samples = num_samples
        self.warmup_steps = warmup_steps
        self.num_chains = num_chains
        self.initial_params = initial_params
        self.hook_fn = hook_fn
        self.disable_progbar = disable_progbar

    def run(self, args, kwargs, on_chain, save_params=None) -> List[dict]:
        chains = self.chains
        chains.setup(self.warmup_steps, *args, initial_params=self.initial_params, **kwargs)
        layout = chains.layout
        total = self.warmup_steps + self.num_samples
        progress = _Progress(total, 0, 1, self.disable_progbar)
        draws = []
        warmup = self.warmup_steps
        try:
            for i in range(total):
                stage, j = ("Warmup", i) if i < warmup else ("Sample", i - warmup)
                if i == warmup:
                    chains.end_warmup()
                z = chains.sample()
                if self.hook_fn is not None:
                    self.hook_fn(self.kernel, layout.unpack(z), stage, j)
                if i >= self.warmup_steps:
                    draws.append(z.clone())  # (z is a view into the sampler's state)
                progress.update(i, stage, chains.logging())
            if self.warmup_steps == total:
                chains.end_warmup()
        finally:
            progress.close()
        self.transforms = self.kernel.transforms
        diagnostics = chains.diagnostics()
        chains.cleanup()
        if draws:
            stacked = layout.unpack(torch.stack(draws, dim=1))  # (chains, draws, ...)
        else:
            stacked = {
                n: torch.zeros((self.num_chains, 0) + layout.shapes[n]) for n in layout.names
            }
        kept = [n for n in stacked if save_params is None or n in save_params]
        for chain_id in range(self.num_chains):
            on_chain(chain_id, {n: stacked[n][chain_id] for n in kept})
        return diagnostics


def _validation(disable_validation):
    if disable_validation is None:
        return contextlib.nullcontext()
    return validation_enabled(not disable_validation)


def _available_cpus() -> int:
    return max(1, mp.cpu_count() - 1)


class _MCMCBase:
    def __init__(
        self,
        kernel,
        num_samples,
        warmup_steps,
        initial_params,
        num_chains,
        hook_fn,
        mp_context,
        disable_progbar,
        disable_validation,
        transforms,
        save_params,
        chain_method="parallel",
    ):
        if chain_method not in ("parallel", "sequential", "vectorized"):
            raise ValueError(
                f"chain_method must be 'parallel', 'sequential' or 'vectorized', got "
                f"{chain_method!r}"
            )
        self.chain_method = chain_method
        if num_samples is None or int(num_samples) < 0:
            raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}")
        if num_chains < 1:
            raise ValueError(f"num_chains must be at least 1, got {num_chains}")
        self.kernel = kernel
        self.num_samples = int(num_samples)
        self.warmup_steps = self.num_samples if warmup_steps is None else int(warmup_steps)
        self.num_chains = num_chains
        self.hook_fn = hook_fn
        self.disable_progbar = disable_progbar
        self.disable_validation = disable_validation
        self.transforms = transforms
        self.save_params = None if save_params is None else list(save_params)
        self._diagnostics: List[dict] = []
        self._args = ()
        self._kwargs = {}
        if initial_params is not None and num_chains > 1:
            for name, value in initial_params.items():
                if value.dim() == 0 or value.shape[0] != num_chains:
                    raise ValueError(
                        f"initial_params[{name!r}] has shape {tuple(value.shape)}; with "
                        f"num_chains={num_chains} each value needs a leading dim of size "
                        f"{num_chains} (one initial value per chain)"
                    )
        self.initial_params = initial_params
        parallel = False
        if chain_method == "vectorized":
            self.sampler = _VectorizedSampler(
                kernel, self.num_samples, self.warmup_steps, num_chains, initial_params,
                hook_fn, disable_progbar,
            )  # fmt: skip
            return
        if num_chains > 1 and chain_method == "parallel":
            available = _available_cpus()
            if num_chains > available:
                warnings.warn(
                    f"num_chains={num_chains} is more than available_cpu={available}. "
                    "Chains will be drawn sequentially.",
                    UserWarning,
                    stacklevel=3,
                )
            else:
                parallel = True
        if parallel:
            self.sampler = _MultiSampler(
                kernel, self.num_samples, self.warmup_steps, num_chains, initial_params,
                hook_fn, disable_progbar, mp_context,
            )  # fmt: skip
        else:
            self.sampler = _UnarySampler(
                kernel, self.num_samples, self.warmup_steps, num_chains, initial_params,
                hook_fn, disable_progbar,
            )  # fmt: skip

    def _keep(self, name: str) -> bool:
        return self.save_params is None or name in self.save_params

    def _constrain(self, params: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        transforms = self.transforms or {}
        return {
            name: (transforms[name].inv(v) if name in transforms else v)
            for name, v in params.items()
        }

    def _kernel_diagnostics(self) -> dict:
        out = {}
        for chain_id, diag in enumerate(self._diagnostics):
            for key, value in diag.items():
                out.setdefault(key, {})[f"chain {chain_id}"] = value
        return out


class MCMC(_MCMCBase):
    """Run an MCMC kernel and keep its draws.

    :param kernel: an :class:`~ember.infer.mcmc.mcmc_kernel.MCMCKernel` (HMC, NUTS,
        RandomWalkKernel, ...).
    :param int num_samples: draws per chain after warm-up.
    :param int warmup_steps: warm-up iterations per chain (default ``num_samples``).
    :param dict initial_params: unconstrained initial values (with a leading dim of size
        ``num_chains`` when there are several chains).
    :param int num_chains: the number of chains; more than one runs in worker processes
        when there are enough CPUs (one is kept free), sequentially otherwise (with a
        warning).
    :param hook_fn: called as ``hook_fn(kernel, params, stage, i)`` after every iteration.
    :param str mp_context: the multiprocessing start method for worker processes.
    :param bool disable_progbar: show no progress.
    :param bool disable_validation: run without distribution argument validation.
    :param dict transforms: site name to transform to the unconstrained space (default:
        the kernel's).
    :param list save_params: keep only these sites' draws.
    :param str chain_method: how several chains run: ``"parallel"`` (default, worker
        processes as described above), ``"sequential"`` (one after another in this
        process) or ``"vectorized"`` (HMC / NUTS only: all chains advance together in
        this process, every leapfrog step one batched evaluation of the potential and its
        gradient, each chain with its own step size and mass matrix; see
        :mod:`ember.infer.mcmc.vectorized`). The draws and diagnostics have the same
        format whatever the method; after a vectorized run ``kernel`` holds chain 0's
        adapted step size and mass matrix, and ``hook_fn`` receives every chain's
        (unconstrained) parameters at once, with a leading chain dim.

    Example::

        >>> import ember, ember.distributions as dist
        >>> from ember.infer.mcmc import NUTS
        >>> def model(y):
        ...     p = ember.sample("p", dist.Beta(1.0, 1.0))
        ...     ember.sample("y", dist.Binomial(10, p), obs=y)
        >>> ember.set_rng_seed(0)
        >>> mcmc = MCMC(NUTS(model), num_samples=200, warmup_steps=100, disable_progbar=True)
        >>> mcmc.run(torch.tensor(7.0))
        >>> abs(float(mcmc.get_samples()["p"].mean()) - 8 / 12) < 0.05  # Beta(8, 4) mean
        True
    """

    def __init__(
        self,
        kernel,
        num_samples: int,
        warmup_steps: Optional[int] = None,
        initial_params: Optional[dict] = None,
        num_chains: int = 1,
        hook_fn: Optional[Callable] = None,
        mp_context: Optional[str] = None,
        disable_progbar: bool = False,
        disable_validation: bool = True,
        transforms: Optional[dict] = None,
        save_params=None,
        chain_method: str = "parallel",
    ):
        super().__init__(kernel, num_samples, warmup_steps, initial_params, num_chains,
                         hook_fn, mp_context, disable_progbar, disable_validation, transforms,
                         save_params, chain_method)  # fmt: skip
        self._samples: Optional[Dict[str, torch.Tensor]] = None

    def run(self, *args, **kwargs) -> None:
        """Run every chain on the model given ``args`` and ``kwargs``."""
        self._args, self._kwargs = args, kwargs
        self.model_args, self.model_kwargs = args, kwargs  # read by to_arviz
        per_chain: List[Dict[str, List[torch.Tensor]]] = [{} for _ in range(self.num_chains)]
        stacked: Dict[int, Dict[str, torch.Tensor]] = {}

        def on_sample(chain_id, params):
            store = per_chain[chain_id]
            for name, value in params.items():
                if self._keep(name):
                    store.setdefault(name, []).append(value.detach())

        def on_chain(chain_id, draws):
            stacked[chain_id] = draws

        with _validation(self.disable_validation):
            if isinstance(self.sampler, (_MultiSampler, _VectorizedSampler)):
                self._diagnostics = self.sampler.run(args, kwargs, on_chain, self.save_params)
            else:
                self._diagnostics = self.sampler.run(args, kwargs, on_sample)
        if self.transforms is None:
            self.transforms = (
                getattr(self.sampler, "transforms", None)
                or getattr(self.kernel, "transforms", None)
                or {}
            )
        chains = []
        for chain_id in range(self.num_chains):
            if chain_id in stacked:
                chains.append(stacked[chain_id])
            else:
                chains.append({n: torch.stack(v) for n, v in per_chain[chain_id].items()})
        names = chains[0].keys() if chains else ()
        samples = {}
        for name in names:
            value = torch.stack([c[name] for c in chains])
            samples[name] = value
        # draws are kept unconstrained; constrain them once, in one batched call per site
        self._samples = self._constrain(samples)

    def get_samples(self, num_samples: Optional[int] = None, group_by_chain: bool = False):
        """The draws by site: ``(num_chains, num_samples, ...)`` with ``group_by_chain``,
        else the chains concatenated, ``(num_chains * num_samples, ...)``.

        :param int num_samples: draw this many (without replacement) instead of all.
        """
        if self._samples is None:
            raise RuntimeError("MCMC.get_samples: call run() first")
        samples = self._samples
        if num_samples is not None:
            samples = select_samples(samples, num_samples, group_by_chain)
            return samples
        if not group_by_chain:
            samples = {k: v.reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
        return samples

    def diagnostics(self) -> dict:
        """Effective sample size and split R-hat per site, and the kernel's per-chain
        diagnostics (e.g. ``divergences``, ``acceptance rate``) by ``"chain i"``."""
        out = diagnostics(self.get_samples(group_by_chain=True), group_by_chain=True)
        out.update(self._kernel_diagnostics())
        return out

    def summary(self, prob: float = 0.9) -> None:
        """Print mean, sd, median, the ``prob`` interval, n_eff and r_hat per site, and the
        number of divergences."""
        print_summary(self.get_samples(group_by_chain=True), prob=prob, group_by_chain=True)
        diag = self._kernel_diagnostics()
        if "divergences" in diag:
            total = sum(len(v) for v in diag["divergences"].values())
            print(f"Number of divergences: {total}")

    def summary_dict(self, prob: float = 0.9) -> dict:
        """:func:`~ember.infer.mcmc.summary.summary` of the draws, as a dict."""
        return summary(self.get_samples(group_by_chain=True), prob=prob, group_by_chain=True)

    def to_inference_data(self, **kwargs):
        """An ``arviz.InferenceData`` of the run (needs the optional arviz package)."""
        return to_arviz(self, **kwargs)

    def gather_chains(self, dst: Optional[int] = 0, group=None) -> None:
        """Bring the chains of every ``torch.distributed`` rank to rank ``dst``.

        A collective: call it on every rank after :meth:`run`. On rank ``dst`` (on every
        rank when ``dst`` is None) :meth:`get_samples`, :meth:`summary`,
        :meth:`diagnostics` (n_eff and r_hat across all chains) and
        :meth:`to_inference_data` then cover the chains of all ranks, ordered by rank;
        the other ranks keep their own chains. ``num_chains`` stays the number of
        chains this process runs. Seed the ranks differently first, e.g. with
        :func:`~ember.infer.mcmc.distributed.set_rank_seed` (``base_seed + rank``);
        see :mod:`ember.infer.mcmc.distributed`.

        :param dst: the receiving rank, or None for all ranks.
        :param group: the process group (default: the default group).
        :raises RuntimeError: without an initialized process group, or when a rank has
            no draws to send (every rank raises, none waits forever).
        """
        problem = None
        if self._samples is None:
            problem = "it has no draws (call run() on every rank before gather_chains)"
        elif self._samples is getattr(self, "_gathered_samples", None):
            # the draws of this run were gathered already: a second gather would
            # duplicate chains on the receiving rank
            problem = "its draws were gathered already (run() again to gather new draws)"
        result = gather_chains(
            self.get_samples(group_by_chain=True) if problem is None else None,
            self._diagnostics,
            dst=dst,
            group=group,
            problem=problem,
        )
        if result is not None:
            self._samples = result.samples
            self._diagnostics = result.diagnostics
        self._gathered_samples = self._samples


class StreamingMCMC(_MCMCBase):
    """MCMC that keeps streaming statistics of the draws instead of the draws.

    :param statistics: a :class:`~ember.ops.streaming.StreamingStats` over dicts of
        draws (default: count, mean and variance of every site); one copy per chain.

    Other arguments as :class:`MCMC` (chains run one after another).
    """

    def __init__(
        self,
        kernel,
        num_samples: int,
        warmup_steps: Optional[int] = None,
        initial_params: Optional[dict] = None,
        statistics=None,
        num_chains: int = 1,
        hook_fn: Optional[Callable] = None,
        disable_progbar: bool = False,
        disable_validation: bool = True,
        transforms: Optional[dict] = None,
        save_params=None,
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(kernel, num_samples, warmup_steps, initial_params, num_chains,
                             hook_fn, None, disable_progbar, disable_validation, transforms,
                             save_params)  # fmt: skip
        self.sampler = _UnarySampler(
            kernel, self.num_samples, self.warmup_steps, num_chains, initial_params, hook_fn,
            disable_progbar,
        )  # fmt: skip
        if statistics is None:
            statistics = StatsOfDict(default=CountMeanVarianceStats)
        self._statistics_prototype = statistics
        self._statistics: List = []

    def run(self, *args, **kwargs) -> None:
        """Run every chain, updating each chain's statistics with every constrained draw."""
        self._args, self._kwargs = args, kwargs
        self.model_args, self.model_kwargs = args, kwargs  # read by to_arviz
        self._statistics = [copy.deepcopy(self._statistics_prototype)
                            for _ in range(self.num_chains)]  # fmt: skip

        def on_sample(chain_id, params):
            if self.transforms is None:
                self.transforms = getattr(self.kernel, "transforms", None) or {}
            kept = {k: v.detach() for k, v in params.items() if self._keep(k)}
            self._statistics[chain_id].update(self._constrain(kept))

        with _validation(self.disable_validation):
            self._diagnostics = self.sampler.run(args, kwargs, on_sample)

    def get_statistics(self, group_by_chain: bool = True) -> dict:
        """The statistics: ``{(chain_id, site): stat}`` with ``group_by_chain``, else the
        chains' statistics merged, ``{site: stat}``."""
        if not self._statistics:
            raise RuntimeError("StreamingMCMC.get_statistics: call run() first")
        if group_by_chain:
            return {
                (chain_id, name): stat
                for chain_id, stats in enumerate(self._statistics)
                for name, stat in stats.get().items()
            }
        merged = reduce(lambda a, b: a.merge(b), self._statistics)
        return merged.get()

    def diagnostics(self) -> dict:
        """R-hat per site from the per-chain statistics, and the kernel's diagnostics."""
        out = diagnostics_from_stats(
            self.get_statistics(group_by_chain=True), self.num_samples, self.num_chains
        )
        out.update(self._kernel_diagnostics())
        return out
