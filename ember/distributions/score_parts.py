"""ScoreParts: the three ingredients of an ELBO gradient estimator at one site."""

from __future__ import annotations

from typing import NamedTuple, Union

import torch

from ember.distributions.util import scale_and_mask


class ScoreParts(NamedTuple):
    """``log_prob``, ``score_function`` and ``entropy_term`` of one sample site.

    For a reparameterized site ``score_function`` is 0 and ``entropy_term`` is the
    log-density; for a non-reparameterized site it is the other way round. An
    estimator builds its surrogate loss from them.

    Example::

        >>> import torch
        >>> from ember.distributions.score_parts import ScoreParts
        >>> parts = ScoreParts(torch.tensor([1.0, 2.0]), 0, torch.tensor([1.0, 2.0]))
        >>> parts.scale_and_mask(2.0, torch.tensor([True, False])).log_prob
        tensor([2., 0.])
    """

    log_prob: Union[torch.Tensor, float]
    score_function: Union[torch.Tensor, float]
    entropy_term: Union[torch.Tensor, float]

    def scale_and_mask(self, scale=1.0, mask=None) -> ScoreParts:
        """Scale ``log_prob`` and ``entropy_term``; mask all three.

        The score function is masked but never scaled: it multiplies a scaled
        downstream cost, and scaling it too would count the scale twice.
        """
        return ScoreParts(
            scale_and_mask(self.log_prob, scale, mask),
            scale_and_mask(self.score_function, 1.0, mask),
            scale_and_mask(self.entropy_term, scale, mask),
        )
