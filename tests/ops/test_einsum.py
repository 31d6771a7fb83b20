import pytest
import torch

import ember.ops.einsum as einsum_module
from ember.ops.einsum import log_einsum

EQUATIONS = [
    ("ab,bc->ac", [(3, 4), (4, 5)]),
    ("ab,bc,cd,a->d", [(3, 4), (4, 5), (5, 2), (3,)]),
    ("ab,ab->a", [(3, 4), (3, 4)]),
    ("abc,bd,ce->ade", [(2, 3, 4), (3, 5), (4, 2)]),
    ("ab->", [(3, 4)]),
    ("ab->ba", [(3, 4)]),
    ("a,b,c->abc", [(2,), (3,), (4,)]),
    ("ab,bc,ca->", [(2, 3), (3, 4), (4, 2)]),
]


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "shifted"])
@pytest.mark.parametrize("equation,shapes", EQUATIONS)
def test_log_einsum_matches_einsum(monkeypatch, equation, shapes, exact):
    monkeypatch.setattr(einsum_module, "EXACT_PAIR_NUMEL", 1 << 30 if exact else 0)
    torch.manual_seed(0)
    xs = [torch.randn(s, dtype=torch.float64) for s in shapes]
    expected = torch.einsum(equation, *[x.exp() for x in xs]).log()
    actual = log_einsum(equation, *xs)
    assert actual.shape == expected.shape
    assert torch.allclose(actual, expected, atol=1e-10)


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "shifted"])
def test_log_einsum_is_stable_for_large_values(monkeypatch, exact):
    monkeypatch.setattr(einsum_module, "EXACT_PAIR_NUMEL", 1 << 30 if exact else 0)
    torch.manual_seed(1)
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    expected = (a.exp() @ b.exp()).log()
    actual = log_einsum("ij,jk->ik", a - 2000.0, b + 1500.0)
    assert torch.isfinite(actual).all()
    assert torch.allclose(actual, expected - 500.0, atol=1e-9)


def test_exact_pairs_survive_misaligned_maxima():
    a = torch.tensor([0.0, -1000.0], dtype=torch.float64)
    b = torch.tensor([-1000.0, 0.0], dtype=torch.float64)
    out = log_einsum("i,i->", a, b)
    assert torch.allclose(out, torch.tensor(2.0, dtype=torch.float64).log() - 1000.0)


def test_log_einsum_broadcasts_size_one_dims():
    torch.manual_seed(2)
    a, b = torch.randn(3, 1), torch.randn(4, 5)
    expected = torch.einsum("ij,jk->ik", a.exp().expand(3, 4), b.exp()).log()
    assert torch.allclose(log_einsum("ij,jk->ik", a, b), expected, atol=1e-5)


def test_log_einsum_gradient_is_softmax_weighted():
    a = torch.randn(4, requires_grad=True, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    log_einsum("i,i->", a, b).backward()
    assert torch.allclose(a.grad, torch.softmax(a.detach() + b, 0))


@pytest.mark.parametrize(
    "equation,shapes,match",
    [
        ("ab,bc", [(2, 3), (3, 4)], "explicit output"),
        ("ab,bc->ac", [(2, 3)], "names 2 operands"),
        ("abc->a", [(2, 3)], "one letter per dim"),
        ("aa->a", [(2, 2)], "repeated"),
        ("ab,bc->ac", [(2, 3), (4, 5)], "size 3"),
        ("ab->c", [(2, 3)], "appears in no operand"),
    ],
)
def test_log_einsum_rejects_bad_equations(equation, shapes, match):
    with pytest.raises(ValueError, match=match):
        log_einsum(equation, *[torch.zeros(s) for s in shapes])


def test_cached_steps_follow_the_operand_shapes():
    torch.manual_seed(3)
    for shapes in [[(3, 1), (4, 5)], [(3, 4), (4, 5)], [(3, 4), (1, 5)], [(3, 4), (4, 5)]]:
        a, b = (torch.randn(s, dtype=torch.float64) for s in shapes)
        n = max(shapes[0][1], shapes[1][0])
        expected = torch.einsum("ij,jk->ik", a.exp().expand(3, n), b.exp().expand(n, 5)).log()
        actual = log_einsum("ij,jk->ik", a, b)
        assert actual.shape == (3, 5)
        assert torch.allclose(actual, expected, atol=1e-10)
