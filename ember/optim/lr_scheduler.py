"""PyroLRScheduler: a torch learning-rate scheduler over a PyroOptim's groups.

Each group of parameters (one torch optimizer) gets its own scheduler, built
when the group is created. :meth:`PyroLRScheduler.step` advances all of them;
call it when the schedule should move on (e.g. once per epoch), separately
from the optimization steps that SVI takes.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import torch.optim.lr_scheduler as torch_sched

from ember.optim.optim import OptimArgs, OptimizerGroup, PyroOptim

__all__ = ["PyroLRScheduler", "build_scheduler"]

_BASE = getattr(torch_sched, "LRScheduler", None) or torch_sched._LRScheduler
# torch schedulers built from other schedulers (their ``schedulers`` argument)
_COMPOSITE = tuple(
    getattr(torch_sched, name)
    for name in ("SequentialLR", "ChainedScheduler")
    if hasattr(torch_sched, name)
)


def build_scheduler(spec: Any, optimizer, owner: str = "PyroLRScheduler"):
    """Build one torch scheduler on ``optimizer`` from a specification.

    ``spec`` is a dict ``{"scheduler": <class>, **its arguments}``, where the
    class is a torch scheduler class or one of ember's scheduler wrappers (e.g.
    ``ember.optim.ExponentialLR``), or a callable ``optimizer -> scheduler``
    (e.g. ``functools.partial(torch.optim.lr_scheduler.ExponentialLR, gamma=0.9)``).
    This is how the inner schedulers of ``SequentialLR`` and
    ``ChainedScheduler`` are given: each group of parameters needs its own.

    Example::

        >>> import torch
        >>> from ember.optim.lr_scheduler import build_scheduler
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> sched = build_scheduler({"scheduler": torch.optim.lr_scheduler.StepLR,
        ...                          "step_size": 2}, opt)
        >>> type(sched).__name__, sched.step_size
        ('StepLR', 2)
    """
    if isinstance(spec, dict):
        if "scheduler" not in spec:
            raise ValueError(
                f"{owner}: an inner scheduler given as a dict needs a 'scheduler' entry, e.g. "
                "{'scheduler': torch.optim.lr_scheduler.ExponentialLR, 'gamma': 0.9}"
            )
        args = dict(spec)
        cls = args.pop("scheduler")
        cls = getattr(cls, "torch_scheduler", cls)
        return cls(optimizer, **args)
    if isinstance(spec, (_BASE, torch_sched.ReduceLROnPlateau)):
        raise TypeError(
            f"{owner}: inner schedulers must be specifications, not scheduler objects (each "
            "group of parameters gets its own optimizer, built later); give "
            "{'scheduler': ExponentialLR, 'gamma': 0.9} or a callable optimizer -> scheduler"
        )
    if not callable(spec):
        raise TypeError(
            f"{owner}: an inner scheduler must be a dict {{'scheduler': cls, **args}} or a "
            f"callable optimizer -> scheduler, got {type(spec).__name__}"
        )
    return getattr(spec, "torch_scheduler", spec)(optimizer)


class PyroLRScheduler(PyroOptim):
    """Wrap a ``torch.optim.lr_scheduler`` class around a dynamically built optimizer.

    :param scheduler_constructor: a torch learning-rate scheduler class
        (e.g. ``torch.optim.lr_scheduler.ExponentialLR``).
    :param optim_args: a dict with ``"optimizer"`` (a torch optimizer class, or
        one of ember's optimizer wrappers such as ``ember.optim.Adam``),
        ``"optim_args"`` (the optimizer's arguments: a dict or a callable of
        ``(module_name, param_name)``), and the scheduler's own arguments
        (e.g. ``"gamma"``).
    :param clip_args: gradient clipping, as for :class:`~ember.optim.PyroOptim`.

    A parameter that first appears after the schedule has advanced joins its
    group at the group's current learning rate.

    Schedulers of schedulers (``SequentialLR``, ``ChainedScheduler``) take
    their ``schedulers`` as specifications (see :func:`build_scheduler`), built
    anew for every group: e.g. ``{"optimizer": torch.optim.SGD, "optim_args":
    {"lr": 1.0}, "schedulers": [{"scheduler": ConstantLR, "factor": 0.5,
    "total_iters": 2}, {"scheduler": ExponentialLR, "gamma": 0.9}],
    "milestones": [2]}``. torch's abstract ``LRScheduler`` takes the concrete
    class to use as ``"scheduler"`` (e.g. a subclass of your own).

    Example::

        >>> import torch
        >>> from ember.optim import ExponentialLR
        >>> sched = ExponentialLR({"optimizer": torch.optim.SGD,
        ...                        "optim_args": {"lr": 1.0}, "gamma": 0.5})
        >>> x = torch.zeros(1, requires_grad=True)
        >>> for epoch in range(3):
        ...     x.sum().backward()
        ...     sched([x])
        ...     x.grad = None
        ...     sched.step()
        >>> x.detach()  # steps of 1.0, 0.5 and 0.25
        tensor([-1.7500])
    """

    def __init__(
        self,
        scheduler_constructor: Callable[..., Any],
        optim_args: Dict[str, Any],
        clip_args: OptimArgs | None = None,
    ):
        if not isinstance(optim_args, dict):
            raise TypeError(
                f"{type(self).__name__}: optim_args must be a dict with 'optimizer', "
                f"'optim_args' and the scheduler's arguments, got {type(optim_args).__name__}"
            )
        if "optimizer" not in optim_args:
            raise ValueError(
                f"{type(self).__name__}: optim_args needs an 'optimizer' entry, e.g. "
                "{'optimizer': torch.optim.SGD, 'optim_args': {'lr': 0.01}, 'gamma': 0.9}"
            )
        kwargs = dict(optim_args)
        optimizer = kwargs.pop("optimizer")
        inner_args = kwargs.pop("optim_args", {})
        # ember's optimizer wrappers name the torch class they wrap
        optimizer = getattr(optimizer, "torch_optimizer", optimizer)
        scheduler_constructor = getattr(
            scheduler_constructor, "torch_scheduler", scheduler_constructor
        )
        if scheduler_constructor is _BASE:
            concrete = kwargs.pop("scheduler", None)
            concrete = getattr(concrete, "torch_scheduler", concrete)
            if not (isinstance(concrete, type) and issubclass(concrete, _BASE)):
                raise ValueError(
                    f"{type(self).__name__}: torch's LRScheduler is the abstract base of the "
                    "schedulers; name the concrete subclass to use as optim_args['scheduler'] "
                    f"(got {concrete!r}), or use a wrapper such as ember.optim.ExponentialLR"
                )
            scheduler_constructor = concrete
        if isinstance(scheduler_constructor, type) and issubclass(
            scheduler_constructor, _COMPOSITE
        ):
            inner = kwargs.get("schedulers")
            if not isinstance(inner, (list, tuple)) or not inner:
                raise ValueError(
                    f"{type(self).__name__}: {scheduler_constructor.__name__} needs "
                    "'schedulers', a non-empty list of specifications such as "
                    "[{'scheduler': ember.optim.ExponentialLR, 'gamma': 0.9}, ...]"
                )
            for spec in inner:
                if isinstance(spec, (_BASE, torch_sched.ReduceLROnPlateau)) or not (
                    isinstance(spec, dict) or callable(spec)
                ):
                    build_scheduler(spec, None, type(self).__name__)  # raises the TypeError
        self.pt_scheduler_constructor = scheduler_constructor
        self.pt_scheduler_args = kwargs
        super().__init__(optimizer, inner_args, clip_args)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(optimizer={self.pt_optim_constructor.__name__}, "
            f"optim_args={self.pt_optim_args!r}, scheduler_args={self.pt_scheduler_args!r})"
        )

    def _group_created(self, group: OptimizerGroup) -> None:
        ctor, args = self.pt_scheduler_constructor, self.pt_scheduler_args
        try:
            if isinstance(ctor, type) and issubclass(ctor, _COMPOSITE):
                args = dict(args)
                args["schedulers"] = [
                    build_scheduler(spec, group.optimizer, type(self).__name__)
                    for spec in args["schedulers"]
                ]
                if issubclass(ctor, torch_sched.ChainedScheduler):
                    group.scheduler = ctor(optimizer=group.optimizer, **args)
                else:
                    group.scheduler = ctor(group.optimizer, **args)
            else:
                group.scheduler = ctor(group.optimizer, **args)
        except (TypeError, ValueError) as e:
            raise type(e)(
                f"{type(self).__name__}: could not build "
                f"{getattr(self.pt_scheduler_constructor, '__name__', 'the scheduler')} with "
                f"arguments {self.pt_scheduler_args!r}: {e}"
            ) from e

    def step(self, *args, **kwargs) -> None:
        """Advance every group's schedule by one step.

        Arguments are passed to each torch scheduler's ``step`` (e.g. the
        validation loss for ``ReduceLROnPlateau``).
        """
        for group in self._groups.values():
            group.scheduler.step(*args, **kwargs)

    def get_last_lr(self) -> Dict[str, float]:
        """The current learning rate of every parameter, keyed by parameter name."""
        return {
            name: entry.group.optimizer.param_groups[0]["lr"]
            for name, entry in self._by_name.items()
        }
