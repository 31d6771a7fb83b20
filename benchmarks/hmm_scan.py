"""Benchmark: HMM log-likelihoods by the parallel scan of ember.distributions.hmm
against a sequential forward loop, for T = 10 ... 10,000 steps.

The scan contracts the chain pairwise in log2(T) rounds, each one batched
tensor operation; the forward loop does T small steps. Both compute the same
number (checked). Prints milliseconds per log_prob (and gradient) and the
number of sequential rounds of each.

Run: ``.venv/bin/python benchmarks/hmm_scan.py``
"""

from __future__ import annotations

import math

import _timing  # benchmarks/_timing.py (this script's folder is on sys.path)
import torch

import ember.distributions as dist

torch.set_num_threads(1)
S, H = 8, 2  # discrete states; Gaussian hidden dim


def discrete(T):
    torch.manual_seed(0)
    init = torch.randn(S)
    trans = torch.randn(S, S, requires_grad=True)
    obs = dist.Normal(torch.randn(S), 1.0)
    x = torch.randn(T)

    def scan():
        hmm = dist.DiscreteHMM(init, trans, obs, duration=T)
        lp = hmm.log_prob(x)
        (grad,) = torch.autograd.grad(lp, [trans])
        return lp

    def forward_loop():
        log_trans = trans.log_softmax(-1)
        obs_lp = obs.log_prob(x.unsqueeze(-1))  # (T, S)
        alpha = init.log_softmax(-1)
        for t in range(T):
            alpha = (alpha.unsqueeze(-1) + log_trans).logsumexp(-2) + obs_lp[t]
        lp = alpha.logsumexp(-1)
        (grad,) = torch.autograd.grad(lp, [trans])
        return lp

    return scan, forward_loop


def gaussian(T):
    torch.manual_seed(0)
    A = (0.5 * torch.randn(H, H)).requires_grad_()
    x = torch.randn(T, 1)
    Q, R, Hm = 0.3 * torch.eye(H), 0.5 * torch.eye(1), torch.ones(H, 1)

    def scan():
        hmm = dist.GaussianHMM(
            dist.MultivariateNormal(torch.zeros(H), torch.eye(H)),
            A,
            dist.MultivariateNormal(torch.zeros(H), Q),
            Hm,
            dist.MultivariateNormal(torch.zeros(1), R),
            duration=T,
        )
        lp = hmm.log_prob(x)
        (grad,) = torch.autograd.grad(lp, [A])
        return lp

    def forward_loop():  # the Kalman filter
        m, P = torch.zeros(H), torch.eye(H)
        lp = 0.0
        for t in range(T):
            m, P = m @ A, A.T @ P @ A + Q
            Sm = Hm.T @ P @ Hm + R
            lp = lp + torch.distributions.MultivariateNormal(m @ Hm, Sm).log_prob(x[t])
            K = P @ Hm @ torch.linalg.inv(Sm)
            m, P = m + (x[t] - m @ Hm) @ K.T, P - K @ Sm @ K.T
        (grad,) = torch.autograd.grad(lp, [A])
        return lp

    return scan, forward_loop


def main():
    print("ms per log_prob + gradient (CPU time, best of 3); rounds: sequential steps")
    header = f"{'model':<10}{'T':>7}{'scan ms':>10}{'loop ms':>10}{'loop/scan':>11}"
    print(header + f"{'scan rounds':>13}{'loop rounds':>13}")
    for name, build in (("discrete", discrete), ("gaussian", gaussian)):
        for T in (10, 100, 1000, 10_000):
            scan, loop = build(T)
            assert torch.allclose(scan(), loop(), rtol=1e-3, atol=1e-3 * T)
            number = max(1, 2000 // T)
            t = _timing.interleaved({"scan": scan, "loop": loop}, number, rounds=3)
            print(
                f"{name:<10}{T:>7}{t['scan'] * 1e3:>10.2f}{t['loop'] * 1e3:>10.2f}"
                f"{t['loop'] / t['scan']:>10.1f}x{math.ceil(math.log2(T)):>13}{T:>13}",
                flush=True,
            )


if __name__ == "__main__":
    main()
