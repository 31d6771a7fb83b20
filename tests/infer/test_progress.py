"""Tests for ember.infer.progress.progress_loop (terminal bar and plain-line modes)."""

import io
import re

import pytest
import torch

from ember.infer.progress import progress_loop


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _counter(values):
    it = iter(values)
    return lambda: next(it)


def test_plain_lines_when_not_a_terminal(capsys):
    losses = [float(10 - i) for i in range(20)]
    history = progress_loop(_counter(losses), 20, desc="fit")
    out = capsys.readouterr().out
    assert history == losses
    lines = out.strip().splitlines()
    # default: a line every tenth of the steps
    assert len(lines) == 10
    assert all(re.fullmatch(r"fit: step \d+/20  loss \S+  elapsed \d+\.\ds", ln) for ln in lines)
    assert lines[-1].startswith("fit: step 20/20")
    assert "\r" not in out  # no bar control characters in a log file


def test_running_loss_is_smoothed(capsys):
    progress_loop(_counter([1.0, 2.0, 3.0]), 3, log_every=1)
    values = [float(m) for m in re.findall(r"loss (\S+)", capsys.readouterr().out)]
    expected, run = [], None
    for x in [1.0, 2.0, 3.0]:
        run = x if run is None else 0.9 * run + 0.1 * x
        expected.append(run)
    assert values == pytest.approx(expected, rel=1e-3)


def test_log_every_and_last_step(capsys):
    progress_loop(_counter(range(7)), 7, log_every=3)
    steps = re.findall(r"step (\d+)/7", capsys.readouterr().out)
    assert steps == ["3", "6", "7"]


def test_progress_bar_on_a_terminal(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr("sys.stdout", term)
    history = progress_loop(_counter([torch.tensor(5.0), torch.tensor(4.0)]), 2, desc="bar")
    out = term.getvalue()
    assert history == [5.0, 4.0]
    assert "bar:" in out and "2/2" in out and "loss=" in out
    assert "step 2/2" not in out  # the bar replaces the plain lines


def test_disable_shows_nothing(capsys):
    assert progress_loop(_counter([1.0, 2.0]), 2, disable=True) == [1.0, 2.0]
    assert capsys.readouterr().out == ""


def test_disable_false_forces_the_bar(capsys):
    progress_loop(_counter([1.0]), 1, disable=False, desc="forced")
    assert "forced:" in capsys.readouterr().out


def test_zero_steps(capsys):
    assert progress_loop(_counter([]), 0) == []


def test_bad_input():
    with pytest.raises(ValueError, match="num_steps"):
        progress_loop(lambda: 1.0, -1)
    with pytest.raises(TypeError, match="callable"):
        progress_loop(3.0, 2)
    with pytest.raises(ValueError, match="log_every"):
        progress_loop(lambda: 1.0, 2, log_every=0)
    with pytest.raises(TypeError, match="str at step 1"):
        progress_loop(lambda: "x", 2, disable=True)
    with pytest.raises(ValueError, match="shape"):
        progress_loop(lambda: torch.ones(2), 2, disable=True)


def _svi():
    import ember
    import ember.distributions as dist
    from ember.infer import SVI, Trace_ELBO
    from ember.optim import Adam

    data = torch.tensor([0.5, 1.5, 2.0])

    def model(x):
        mu = ember.sample("mu", dist.Normal(0.0, 3.0))
        with ember.plate("data", len(x)):
            ember.sample("obs", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        loc = ember.param("loc", torch.tensor(0.0))
        ember.sample("mu", dist.Normal(loc, 0.5))

    ember.clear_param_store()
    ember.set_rng_seed(3)
    return SVI(model, guide, Adam({"lr": 0.05}), Trace_ELBO()), data


def test_svi_run_is_a_loop_of_steps_with_plain_lines(capsys):
    import ember

    svi, data = _svi()
    history = svi.run(20, data)  # output is captured, not a terminal: plain lines
    loc_after_run = ember.param("loc").item()
    out = capsys.readouterr().out
    assert re.search(r"^svi: step 20/20  loss \S+  elapsed", out, re.M)
    assert "\r" not in out

    svi, data = _svi()  # same seed: the same draws, so the same losses and parameters
    manual = [svi.step(data) for _ in range(20)]
    assert history == manual
    assert ember.param("loc").item() == loc_after_run


def test_svi_run_bar_on_a_terminal(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr("sys.stdout", term)
    svi, data = _svi()
    history = svi.run(3, data)
    assert len(history) == 3
    assert "svi:" in term.getvalue() and "3/3" in term.getvalue()
    assert "step 3/3" not in term.getvalue()
