import math

from ember.ops.dual_averaging import DualAveraging


def test_first_steps_closed_form():
    da = DualAveraging(prox_center=1.0, t0=10, kappa=0.75, gamma=0.05)
    da.step(0.2)
    x1, avg1 = da.get_state()
    g_avg = 0.2 / 11
    assert math.isclose(x1, 1.0 - 1.0 / 0.05 * g_avg)
    assert math.isclose(avg1, x1)  # the first weight is 1
    da.step(-0.1)
    x2, avg2 = da.get_state()
    g_avg = (1 - 1 / 12) * g_avg - 0.1 / 12
    assert math.isclose(x2, 1.0 - math.sqrt(2) / 0.05 * g_avg)
    w = 2**-0.75
    assert math.isclose(avg2, (1 - w) * x1 + w * x2)


def test_finds_root_of_monotone_statistic():
    # statistic g(x) = tanh(x - 0.7) is increasing; dual averaging drives its mean to 0
    da = DualAveraging()
    for _ in range(3000):
        x, _ = da.get_state()
        da.step(math.tanh(x - 0.7))
    assert abs(da.get_state()[1] - 0.7) < 0.05
    da.reset()
    assert da.get_state() == (0.0, 0.0)
