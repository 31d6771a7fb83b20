"""Reordering of the dimensions of the input, a volume-preserving bijection."""

from __future__ import annotations

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from ember.distributions.transforms.torch_transform import without_caches
from ember.nn.auto_reg_nn import check_permutation


class PermuteTransform(Transform):
    """``y = x[..., permutation]``: reorders the entries of dimension ``dim`` (default ``-1``).

    Between autoregressive flows this changes which variables each layer
    conditions on. ``|det J| = 1``, so ``log_abs_det_jacobian`` is zero
    (one value per event, ``event_dim = -dim``).

    Example::

        >>> import torch, ember.distributions as dist
        >>> t = dist.PermuteTransform(torch.tensor([2, 0, 1]))
        >>> t(torch.tensor([10.0, 11.0, 12.0]))
        tensor([12., 10., 11.])
        >>> t.inv(torch.tensor([12.0, 10.0, 11.0]))
        tensor([10., 11., 12.])
    """

    bijective = True
    volume_preserving = True

    def __init__(self, permutation: torch.Tensor, *, dim: int = -1, cache_size: int = 1) -> None:
        if not isinstance(dim, int) or dim >= 0:
            raise ValueError(f"PermuteTransform: dim must be a negative int, got {dim!r}")
        perm = torch.as_tensor(permutation)
        if perm.dim() != 1:
            raise ValueError(
                f"PermuteTransform: permutation must be 1-D, got shape {tuple(perm.shape)}"
            )
        self.permutation = check_permutation(perm, perm.numel(), "PermuteTransform")
        self.inv_permutation = torch.argsort(self.permutation)
        self.dim = dim
        super().__init__(cache_size=cache_size)

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, -self.dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, -self.dim)

    def __eq__(self, other):
        return isinstance(other, PermuteTransform) and (
            self.dim == other.dim and torch.equal(self.permutation, other.permutation)
        )

    def __hash__(self):
        return object.__hash__(self)

    def __getstate__(self):
        return without_caches(super().__getstate__())

    def with_cache(self, cache_size: int = 1) -> PermuteTransform:
        if self._cache_size == cache_size:
            return self
        return PermuteTransform(self.permutation, dim=self.dim, cache_size=cache_size)

    def _index(self, x, index):
        if x.dim() < -self.dim or x.shape[self.dim] != index.numel():
            raise ValueError(
                f"PermuteTransform: input of shape {tuple(x.shape)} has no dim {self.dim} of "
                f"size {index.numel()} (the permutation's length)"
            )
        return x.index_select(self.dim, index.to(x.device))

    def _call(self, x):
        return self._index(x, self.permutation)

    def _inverse(self, y):
        return self._index(y, self.inv_permutation)

    def log_abs_det_jacobian(self, x, y):
        """Zeros of shape ``x.shape[:dim]``: a permutation preserves volume."""
        return x.new_zeros(x.shape[: x.dim() + self.dim])


def permute(
    input_dim, permutation: torch.Tensor | None = None, *, dim: int = -1
) -> PermuteTransform:
    """A :class:`PermuteTransform`, by default with a random permutation of ``input_dim`` entries.

    ``input_dim`` is the size of the permuted dim, or the whole event shape (a
    tuple of ``-dim`` sizes, needed when ``dim < -1``), from which the size at
    ``dim`` is taken.

    Example::

        >>> import torch
        >>> from ember.distributions.transforms import permute
        >>> permute(4)(torch.arange(4.0)).sort().values
        tensor([0., 1., 2., 3.])
        >>> permute((3, 2), dim=-2)(torch.zeros(3, 2)).shape
        torch.Size([3, 2])
    """
    if dim < -1 or not isinstance(input_dim, int):
        if isinstance(input_dim, int) or len(input_dim) != -dim:
            raise ValueError(
                f"permute: with dim={dim}, input_dim must be the event shape, a tuple of "
                f"{-dim} sizes, got {input_dim!r}"
            )
        input_dim = int(input_dim[dim])
    if permutation is None:
        permutation = torch.randperm(input_dim)
    elif torch.as_tensor(permutation).numel() != input_dim:
        raise ValueError(
            f"permute: permutation has {torch.as_tensor(permutation).numel()} entries but "
            f"input_dim={input_dim}"
        )
    return PermuteTransform(permutation, dim=dim)
