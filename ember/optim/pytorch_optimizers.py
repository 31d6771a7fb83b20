"""ember wrappers of every optimizer and learning-rate scheduler in ``torch.optim``.

The wrapper of ``torch.optim.<Name>`` is ``ember.optim.<Name>``: a
:class:`~ember.optim.PyroOptim` subclass built with that torch class, taking
``(optim_args, clip_args=None)``. Scheduler wrappers are
:class:`~ember.optim.PyroLRScheduler` subclasses taking
``({"optimizer": ..., "optim_args": ..., <scheduler args>}, clip_args=None)``.
The lists are generated from the installed torch, so new torch optimizers are
wrapped too.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.optim.lr_scheduler as _torch_sched

from ember.optim.lr_scheduler import PyroLRScheduler
from ember.optim.optim import AdagradRMSProp, ClippedAdam, DCTAdam, OptimArgs, PyroOptim

__all__: List[str] = []


def _optimizer_wrapper(torch_class: type, name: str) -> type:
    def __init__(self, optim_args: OptimArgs, clip_args: OptimArgs | None = None):
        PyroOptim.__init__(self, torch_class, optim_args, clip_args)

    full = f"{torch_class.__module__}.{torch_class.__qualname__}"
    doc = (
        f"{name}(optim_args, clip_args=None): :class:`~ember.optim.PyroOptim` over "
        f"``{full}``.\n\n"
        "    :param optim_args: the torch optimizer's arguments, as a dict or a callable of\n"
        "        ``(module_name, param_name)`` returning one.\n"
        "    :param clip_args: optional gradient clipping (``clip_norm``, ``clip_value``).\n\n"
        "    Example::\n\n"
        f"        >>> from ember.optim import {name}\n"
        f"        >>> {name}({{'lr': 0.01}})\n"
        f"        {name}({{'lr': 0.01}})\n"
    )
    return type(
        name,
        (PyroOptim,),
        {
            "__init__": __init__,
            "__doc__": doc,
            "__module__": __name__,
            "torch_optimizer": torch_class,
        },
    )


# Docstring examples of the schedulers that need arguments beyond an optimizer: the extra
# entries of optim_args and how the wrapper's repr shows them.
_SCHEDULER_EXAMPLES = {
    "LRScheduler": (
        ", 'scheduler': torch.optim.lr_scheduler.StepLR, 'step_size': 2",
        "{'step_size': 2}",
    ),
    "ChainedScheduler": (
        ", 'schedulers': [{'scheduler': torch.optim.lr_scheduler.StepLR, 'step_size': 2}]",
        "{'schedulers': [{'scheduler': <class 'torch.optim.lr_scheduler.StepLR'>, "
        "'step_size': 2}]}",
    ),
    "SequentialLR": (
        ", 'schedulers': [{'scheduler': torch.optim.lr_scheduler.StepLR, 'step_size': 2}], "
        "'milestones': []",
        "{'schedulers': [{'scheduler': <class 'torch.optim.lr_scheduler.StepLR'>, "
        "'step_size': 2}], 'milestones': []}",
    ),
}


def _scheduler_wrapper(torch_class: type, name: str) -> type:
    def __init__(self, optim_args: Dict[str, Any], clip_args: OptimArgs | None = None):
        PyroLRScheduler.__init__(self, torch_class, optim_args, clip_args)

    full = f"{torch_class.__module__}.{torch_class.__qualname__}"
    example = _SCHEDULER_EXAMPLES.get(name, ("", "{}"))
    doc = (
        f"{name}(optim_args, clip_args=None): :class:`~ember.optim.PyroLRScheduler` over "
        f"``{full}``.\n\n"
        "    :param optim_args: a dict with ``optimizer`` (a torch optimizer class),\n"
        "        ``optim_args`` (its arguments) and the scheduler's own arguments.\n"
        "    :param clip_args: optional gradient clipping (``clip_norm``, ``clip_value``).\n\n"
        "    Example::\n\n"
        "        >>> import torch\n"
        f"        >>> from ember.optim import {name}\n"
        f"        >>> {name}({{'optimizer': torch.optim.SGD, 'optim_args': {{'lr': 0.1}}"
        f"{example[0]}}})\n"
        f"        {name}(optimizer=SGD, optim_args={{'lr': 0.1}}, scheduler_args={example[1]})\n"
    )
    return type(
        name,
        (PyroLRScheduler,),
        {
            "__init__": __init__,
            "__doc__": doc,
            "__module__": __name__,
            "torch_scheduler": torch_class,
        },
    )


def _generate() -> None:
    namespace = globals()
    for name, obj in sorted(vars(torch.optim).items()):
        if (
            isinstance(obj, type)
            and issubclass(obj, torch.optim.Optimizer)
            and obj is not torch.optim.Optimizer
            and not name.startswith("_")
        ):
            namespace[name] = _optimizer_wrapper(obj, name)
            __all__.append(name)
    base = getattr(_torch_sched, "LRScheduler", None) or _torch_sched._LRScheduler
    for name, obj in sorted(vars(_torch_sched).items()):
        if (
            isinstance(obj, type)
            and (issubclass(obj, base) or name == "ReduceLROnPlateau")
            and not name.startswith("_")
            and name not in namespace
        ):
            namespace[name] = _scheduler_wrapper(obj, name)
            __all__.append(name)


_generate()


# Pyro's own optimizers live with PyroOptim (``ember.optim.optim``, as in Pyro).
__all__ += ["AdagradRMSProp", "ClippedAdam", "DCTAdam"]
