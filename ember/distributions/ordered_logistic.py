"""OrderedLogistic: a categorical distribution over ordered outcomes from cutpoints."""

from __future__ import annotations

import torch

from ember.distributions import constraints
from ember.distributions.torch import Categorical

__all__ = ["OrderedLogistic"]


class OrderedLogistic(Categorical):
    """Ordinal regression: ``P(y <= k) = sigmoid(cutpoints[k] - predictor)``.

    With ``K`` increasing ``cutpoints`` there are ``K + 1`` categories
    ``0 .. K``; ``P(y = k)`` is the difference of consecutive cumulative
    probabilities. ``predictor`` (any shape) shifts the cutpoints per entry; the batch
    shape is ``broadcast(predictor.shape, cutpoints.shape[:-1])``.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.OrderedLogistic(torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 1.0]))
        >>> d.probs
        tensor([[0.2689, 0.4621, 0.2689],
                [0.1192, 0.3808, 0.5000]])
        >>> d.log_prob(torch.tensor([1, 2]))
        tensor([-0.7719, -0.6931])
    """

    arg_constraints = {
        "predictor": constraints.real,
        "cutpoints": constraints.ordered_vector,
    }

    def __init__(self, predictor, cutpoints, validate_args=None):
        if not isinstance(predictor, torch.Tensor) or not isinstance(cutpoints, torch.Tensor):
            raise TypeError(
                "OrderedLogistic: predictor and cutpoints must be tensors, got "
                f"{type(predictor).__name__} and {type(cutpoints).__name__}"
            )
        if cutpoints.dim() < 1:
            raise ValueError(
                "OrderedLogistic: cutpoints needs a rightmost dim of cutpoints (one fewer "
                f"than the number of categories), got shape {tuple(cutpoints.shape)}"
            )
        cumulative = torch.sigmoid(cutpoints - predictor.unsqueeze(-1))
        self.predictor = predictor.expand(cumulative.shape[:-1])
        self.cutpoints = cutpoints.expand(cumulative.shape)
        zero = cumulative.new_zeros(cumulative.shape[:-1] + (1,))
        one = cumulative.new_ones(cumulative.shape[:-1] + (1,))
        probs = torch.cat([cumulative, one], -1) - torch.cat([zero, cumulative], -1)
        super().__init__(probs=probs, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self.__new__(type(self)) if _instance is None else _instance
        new.predictor = self.predictor.expand(batch_shape)
        new.cutpoints = self.cutpoints.expand(batch_shape + self.cutpoints.shape[-1:])
        return super().expand(batch_shape, _instance=new)
