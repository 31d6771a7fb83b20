"""PyroLRScheduler: a torch learning-rate scheduler over a PyroOptim's groups.

Each group of parameters (one torch optimizer) gets its own scheduler, built
when the group is created. :meth:`PyroLRScheduler.step` advances all of them;
call it when the schedule should move on (e.g. once per epoch), separately
from the optimization steps that SVI takes.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from ember.optim.optim import OptimArgs, OptimizerGroup, PyroOptim

__all__ = ["PyroLRScheduler"]


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
        self.pt_scheduler_constructor = scheduler_constructor
        self.pt_scheduler_args = kwargs
        super().__init__(optimizer, inner_args, clip_args)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(optimizer={self.pt_optim_constructor.__name__}, "
            f"optim_args={self.pt_optim_args!r}, scheduler_args={self.pt_scheduler_args!r})"
        )

    def _group_created(self, group: OptimizerGroup) -> None:
        try:
            group.scheduler = self.pt_scheduler_constructor(
                group.optimizer, **self.pt_scheduler_args
            )
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
