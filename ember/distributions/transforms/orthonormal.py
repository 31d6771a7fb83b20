"""The shared base of volume-preserving linear maps of a series along one dim."""

from __future__ import annotations

from torch.distributions import constraints
from torch.distributions.transforms import Transform


class OrthonormalAlongDim(Transform):
    """Base class of bijections that map the series along the (negative) dim ``dim``
    by an orthonormal (or unit-determinant) linear map: ``log|det J| = 0``, the event
    has ``-dim`` dims, and shapes are unchanged.

    A subclass sets its options as attributes, names them in ``options`` (they
    decide equality, hashing and :meth:`with_cache`), calls ``super().__init__(dim,
    cache_size)`` and implements ``_call``/``_inverse``.
    """

    bijective = True
    options: tuple = ()

    def __init__(self, dim: int = -1, cache_size: int = 0) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim >= 0:
            raise ValueError(f"{type(self).__name__}: dim must be a negative int, got {dim!r}")
        self.dim = dim
        super().__init__(cache_size=cache_size)

    def _key(self) -> tuple:
        return (self.dim,) + tuple(getattr(self, name) for name in self.options)

    def __hash__(self):
        return hash((type(self),) + self._key())

    def __eq__(self, other):
        return type(self) is type(other) and self._key() == other._key()

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, -self.dim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, -self.dim)

    def check_input(self, x) -> None:
        """Raise a ValueError unless ``x`` has the dim the transform acts on."""
        if x.dim() < -self.dim:
            raise ValueError(
                f"{type(self).__name__}: input of shape {tuple(x.shape)} has no dim {self.dim}"
            )

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[: x.dim() + self.dim])

    def with_cache(self, cache_size: int = 1):
        if self._cache_size == cache_size:
            return self
        options = {name: getattr(self, name) for name in self.options}
        return type(self)(self.dim, cache_size=cache_size, **options)

    def forward_shape(self, shape):
        if len(shape) < -self.dim:
            raise ValueError(
                f"{type(self).__name__}: shape {tuple(shape)} has fewer than {-self.dim} dims"
            )
        return shape

    def inverse_shape(self, shape):
        return self.forward_shape(shape)
