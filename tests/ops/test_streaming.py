"""Streaming statistics against the same statistics of the stacked samples."""

import pytest
import torch

from ember.ops.streaming import (
    CountMeanStats,
    CountMeanVarianceStats,
    CountStats,
    StackStats,
    StatsOfDict,
)


def stream(stats, samples):
    for s in samples:
        stats.update(s)
    return stats


def test_mean_variance_exact():
    xs = torch.randn(17, 3, 2, dtype=torch.double)
    got = stream(CountMeanVarianceStats(), xs).get()
    assert got["count"] == 17
    torch.testing.assert_close(got["mean"], xs.mean(0))
    torch.testing.assert_close(got["variance"], xs.var(0))
    got = stream(CountMeanStats(), xs).get()
    torch.testing.assert_close(got["mean"], xs.mean(0))


@pytest.mark.parametrize("split", [0, 1, 6, 17])
@pytest.mark.parametrize("make", [CountStats, CountMeanStats, CountMeanVarianceStats, StackStats])
def test_merge_equals_single_stream(make, split):
    xs = torch.randn(17, 4, dtype=torch.double)
    whole = stream(make(), xs).get()
    merged = stream(make(), xs[:split]).merge(stream(make(), xs[split:]))
    assert type(merged) is make
    got = merged.get()
    assert got.keys() == whole.keys()
    for key in whole:
        if key == "count":
            assert got[key] == whole[key] == 17
        else:
            torch.testing.assert_close(got[key], whole[key])


def test_stats_of_dict_keys_and_defaults():
    stats = StatsOfDict({"a": CountMeanVarianceStats}, default=CountMeanStats)
    left = stream(StatsOfDict({"a": CountMeanVarianceStats}, default=CountMeanStats), [])
    data = [{"a": torch.tensor(float(i)), "b": torch.tensor([i, 2.0 * i])} for i in range(5)]
    stream(stats, data)
    stream(left, data[:2])
    right = stream(StatsOfDict({"a": CountMeanVarianceStats}, default=CountMeanStats), data[2:])
    for got in (stats.get(), left.merge(right).get()):
        assert got["a"]["count"] == 5
        torch.testing.assert_close(got["a"]["mean"], torch.tensor(2.0))
        torch.testing.assert_close(got["a"]["variance"], torch.tensor(2.5))
        torch.testing.assert_close(got["b"]["mean"], torch.tensor([2.0, 4.0]))


def test_empty_and_errors():
    assert CountMeanVarianceStats().get() == {"count": 0}
    assert StackStats().get() == {"count": 0}
    with pytest.raises(TypeError, match="cannot merge CountStats with StackStats"):
        CountStats().merge(StackStats())
    s = stream(CountMeanVarianceStats(), [torch.zeros(2)])
    with pytest.raises(ValueError, match=r"shape \(3,\) differs"):
        s.update(torch.zeros(3))
    with pytest.raises(TypeError, match="expects a torch.Tensor"):
        CountMeanStats().update(1.0)
