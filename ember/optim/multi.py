"""Optimizers that take a loss tensor and differentiate it themselves (possibly
to higher order), rather than consuming ``.grad`` fields filled by ``backward``."""

from typing import Dict, List

import torch

from ember.ops.newton import newton_step
from ember.optim.optim import PyroOptim

__all__ = [
    "MixedMultiOptimizer",
    "MultiOptimizer",
    "Newton",
    "PyroMultiOptimizer",
    "TorchMultiOptimizer",
]


class MultiOptimizer:
    """Base class of optimizers whose :meth:`step` receives the loss itself.

    Subclasses implement :meth:`get_step` (differentiable updated values) or
    override :meth:`step` (in-place update). ``params`` maps parameter names to
    unconstrained leaf tensors, e.g. those of a param store.

    Example::

        >>> x = torch.zeros(3, 1, requires_grad=True)
        >>> Newton().step(((x - 2.0) ** 2).sum(), {"x": x})
        >>> x.detach().flatten().tolist()
        [2.0, 2.0, 2.0]
    """

    def step(self, loss: torch.Tensor, params: Dict) -> None:
        """Update every tensor in ``params`` in place (detached) from ``loss``."""
        updated = self.get_step(loss, params)
        with torch.no_grad():
            for name, value in params.items():
                value.copy_(updated[name].detach())

    def get_step(self, loss: torch.Tensor, params: Dict) -> Dict:
        """Return a dict of updated values; the updates keep their autograd history."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement get_step(loss, params) or override step"
        )


class PyroMultiOptimizer(MultiOptimizer):
    """Use a :class:`~ember.optim.optim.PyroOptim` through the :class:`MultiOptimizer`
    interface: gradients are computed with :func:`torch.autograd.grad` and handed
    to the wrapped optimizer.

    Example::

        >>> from ember.optim import SGD
        >>> x = torch.tensor([1.0], requires_grad=True)
        >>> PyroMultiOptimizer(SGD({"lr": 0.25})).step((x**2).sum(), {"x": x})
        >>> x.tolist()  # 1 - 0.25 * 2
        [0.5]
    """

    def __init__(self, optim: PyroOptim) -> None:
        if not isinstance(optim, PyroOptim):
            raise TypeError(
                f"Expected a PyroOptim object but got a {type(optim).__name__}; "
                "wrap torch optimizers with TorchMultiOptimizer"
            )
        self.optim = optim

    def step(self, loss: torch.Tensor, params: Dict) -> None:
        values = list(params.values())
        grads = torch.autograd.grad(loss, values, create_graph=True)
        for value, g in zip(values, grads):
            value.grad = g
        self.optim(values)


class TorchMultiOptimizer(PyroMultiOptimizer):
    """Use a ``torch.optim.Optimizer`` class through the :class:`MultiOptimizer`
    interface.

    Example::

        >>> x = torch.tensor([1.0], requires_grad=True)
        >>> TorchMultiOptimizer(torch.optim.SGD, {"lr": 0.5}).step((x**2).sum(), {"x": x})
        >>> x.tolist()
        [0.0]
    """

    def __init__(self, optim_constructor, optim_args: Dict):
        super().__init__(PyroOptim(optim_constructor, optim_args))


class MixedMultiOptimizer(MultiOptimizer):
    """Route disjoint groups of parameters to different optimizers.

    :param list parts: ``(names, optim)`` pairs; ``optim`` is a
        :class:`MultiOptimizer` or a :class:`~ember.optim.optim.PyroOptim`.
    :raises ValueError: if a name appears in more than one part.

    Example::

        >>> from ember.optim import SGD
        >>> a = torch.zeros(1, requires_grad=True)
        >>> b = torch.zeros(1, 1, requires_grad=True)
        >>> opt = MixedMultiOptimizer([(["a"], SGD({"lr": 0.5})), (["b"], Newton())])
        >>> opt.step(((a - 1) ** 2).sum() + ((b - 3) ** 2).sum(), {"a": a, "b": b})
        >>> a.tolist(), b.tolist()
        ([1.0], [[3.0]])
    """

    def __init__(self, parts: List) -> None:
        owner: Dict = {}
        self.parts = []
        for names, optim in parts:
            if isinstance(optim, PyroOptim):
                optim = PyroMultiOptimizer(optim)
            elif not isinstance(optim, MultiOptimizer):
                raise TypeError(
                    f"each part needs a MultiOptimizer or PyroOptim, got {type(optim).__name__}"
                )
            for name in names:
                if name in owner:
                    raise ValueError(
                        f"Attempted to optimize parameter '{name}' by two different "
                        f"optimizers: {owner[name]} vs {optim}"
                    )
                owner[name] = optim
            self.parts.append((names, optim))

    def step(self, loss: torch.Tensor, params: Dict):
        # Every part differentiates the same loss, so the graph must be retained
        # until all parts have read it; optimizers here use create_graph=True.
        for names, optim in self.parts:
            optim.step(loss, {name: params[name] for name in names})

    def get_step(self, loss: torch.Tensor, params: Dict) -> Dict:
        updated: Dict = {}
        for names, optim in self.parts:
            updated.update(optim.get_step(loss, {name: params[name] for name in names}))
        return updated


class Newton(MultiOptimizer):
    """Newton updates of batched 1-, 2- or 3-dimensional parameters
    (see :func:`~ember.ops.newton.newton_step`).

    :param dict trust_radii: parameter name -> trust-region radius; names not
        listed take the plain Newton step.

    Example::

        >>> x = torch.zeros(2, requires_grad=True)
        >>> Newton().get_step(((x - 1.0) ** 2).sum(), {"x": x})["x"].tolist()
        [1.0, 1.0]
    """

    def __init__(self, trust_radii: Dict = None):
        self.trust_radii = {} if trust_radii is None else dict(trust_radii)

    def get_step(self, loss: torch.Tensor, params: Dict):
        updated = {}
        for name, value in params.items():
            updated[name], _ = newton_step(loss, value, self.trust_radii.get(name))
        return updated
