"""Random matchings of ``2 N`` sources to ``N`` destinations, two sources per destination."""

from __future__ import annotations

from ember.distributions.one_one_matching import MatchingDistribution

__all__ = ["OneTwoMatching"]


class OneTwoMatching(MatchingDistribution):
    """A random matching of ``2 N`` sources to ``N`` destinations in which every source
    has one destination and every destination exactly two sources, with
    ``log p(v) = sum_s logits[s, v[s]] - log Z``.

    Values are long tensors of shape ``(2 N,)`` holding each source's destination (for
    example the parents of the nodes of a binary tree). ``log Z`` is computed exactly by a
    dynamic program over how many sources each destination has so far (``3**N`` states),
    or, with ``bp_iters``, approximated by the Bethe free energy. Sampling is exact;
    :meth:`mode` is the maximum-weight matching.

    :param torch.Tensor logits: ``(2 N, N)`` edge logits (sources by destinations).
    :param int bp_iters: Sinkhorn iterations of the Bethe approximation of ``log Z``;
        None (default) for the exact value.

    Example::

        >>> import torch, ember.distributions as dist
        >>> d = dist.OneTwoMatching(torch.zeros(4, 2))
        >>> d.enumerate_support()
        tensor([[0, 0, 1, 1],
                [0, 1, 0, 1],
                [0, 1, 1, 0],
                [1, 0, 0, 1],
                [1, 0, 1, 0],
                [1, 1, 0, 0]])
        >>> d.log_prob(torch.tensor([0, 1, 1, 0])).exp()
        tensor(0.1667)
    """

    capacity = 2
