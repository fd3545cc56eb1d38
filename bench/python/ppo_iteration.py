"""Issue 23: one PPO iteration on CartPole written plainly in PyTorch-Python, the baseline of
bench/rl_ppo_bench.cpp (BM_PpoIteration). Same configuration as stablelearn's PpoOptions defaults:
8 copies x 128 steps, GAE (0.99, 0.95), 4 epochs x 4 minibatches of 256, clipped surrogate (0.2),
clipped value loss (0.2), entropy 0.01, value 0.5, grad-norm clip 0.5, Adam 2.5e-4 (eps 1e-5),
separate 64-64 tanh actor and critic with orthogonal init. CartPole is the classic-control
dynamics in plain Python, one copy at a time, auto-reset at the step (as gym's vector env).

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/python/ppo_iteration.py [iterations]

Prints the median wall-clock and CPU milliseconds per iteration (after 2 warm-up iterations), one thread.
"""
import math
import random
import statistics
import sys
import time

import torch
import torch.nn as nn

torch.set_num_threads(1)
torch.manual_seed(1)


class CartPole:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.reset()

    def reset(self):
        self.s = [self.rng.uniform(-0.05, 0.05) for _ in range(4)]
        self.t = 0
        return list(self.s)

    def step(self, a):
        x, xd, th, thd = self.s
        f = 10.0 if a == 1 else -10.0
        c, sn = math.cos(th), math.sin(th)
        temp = (f + 0.05 * thd * thd * sn) / 1.1
        thacc = (9.8 * sn - c * temp) / (0.5 * (4.0 / 3.0 - 0.1 * c * c / 1.1))
        xacc = temp - 0.05 * thacc * c / 1.1
        self.s = [x + 0.02 * xd, xd + 0.02 * xacc, th + 0.02 * thd, thd + 0.02 * thacc]
        self.t += 1
        term = abs(self.s[0]) > 2.4 or abs(self.s[2]) > 12 * 2 * math.pi / 360
        trunc = self.t >= 500
        return list(self.s), 1.0, term, trunc


def layer(i, o, gain):
    l = nn.Linear(i, o)
    nn.init.orthogonal_(l.weight, gain)
    nn.init.constant_(l.bias, 0.0)
    return l


N, T, EPOCHS, MB, D, A = 8, 128, 4, 4, 4, 2
actor = nn.Sequential(layer(D, 64, 2 ** 0.5), nn.Tanh(), layer(64, 64, 2 ** 0.5), nn.Tanh(), layer(64, A, 0.01))
critic = nn.Sequential(layer(D, 64, 2 ** 0.5), nn.Tanh(), layer(64, 64, 2 ** 0.5), nn.Tanh(), layer(64, 1, 1.0))
params = list(actor.parameters()) + list(critic.parameters())
opt = torch.optim.Adam(params, lr=2.5e-4, eps=1e-5)
envs = [CartPole(i) for i in range(N)]
obs = [e.reset() for e in envs]


def iteration():
    global obs
    b_obs = torch.zeros(T, N, D)
    b_next = torch.zeros(T, N, D)
    b_act = torch.zeros(T, N, dtype=torch.long)
    b_logp = torch.zeros(T, N)
    b_val = torch.zeros(T, N)
    b_rew = torch.zeros(T, N)
    b_term = torch.zeros(T, N)
    b_done = torch.zeros(T, N)
    for t in range(T):
        x = torch.tensor(obs)
        b_obs[t] = x
        with torch.no_grad():
            dist = torch.distributions.Categorical(logits=actor(x))
            a = dist.sample()
            b_logp[t] = dist.log_prob(a)
            b_val[t] = critic(x).squeeze(-1)
        b_act[t] = a
        acts = a.tolist()
        nxt, final, rew, term, done = [], [], [], [], []
        for i, e in enumerate(envs):
            o, r, te, tr = e.step(acts[i])
            final.append(o)
            if te or tr:
                o = e.reset()
            nxt.append(o)
            rew.append(r)
            term.append(float(te))
            done.append(float(te or tr))
        obs = nxt
        b_next[t] = torch.tensor(final)
        b_rew[t] = torch.tensor(rew)
        b_term[t] = torch.tensor(term)
        b_done[t] = torch.tensor(done)
    with torch.no_grad():
        nv = critic(b_next.view(-1, D)).view(T, N)
        delta = b_rew + 0.99 * (1 - b_term) * nv - b_val
        adv = torch.zeros(T, N)
        last = torch.zeros(N)
        for t in reversed(range(T)):
            last = delta[t] + 0.99 * 0.95 * (1 - b_done[t]) * last
            adv[t] = last
        ret = adv + b_val
    fo, fa, fl, fadv, fret, fv = (b_obs.view(-1, D), b_act.view(-1), b_logp.view(-1), adv.view(-1), ret.view(-1),
                                  b_val.view(-1))
    B = N * T
    mb = B // MB
    for _ in range(EPOCHS):
        perm = torch.randperm(B)
        for m in range(MB):
            idx = perm[m * mb:(m + 1) * mb]
            x = fo[idx]
            logp_all = torch.log_softmax(actor(x), 1)
            new_logp = logp_all.gather(1, fa[idx].unsqueeze(1)).squeeze(1)
            entropy = -(logp_all.exp() * logp_all).sum(1).mean()
            log_ratio = new_logp - fl[idx]
            ratio = log_ratio.exp()
            a = fadv[idx]
            a = (a - a.mean()) / (a.std() + 1e-8)
            pg = torch.max(-a * ratio, -a * ratio.clamp(0.8, 1.2)).mean()
            v = critic(x).squeeze(-1)
            old = fv[idx]
            r = fret[idx]
            vc = old + (v - old).clamp(-0.2, 0.2)
            vl = 0.5 * torch.max((v - r) ** 2, (vc - r) ** 2).mean()
            loss = pg - 0.01 * entropy + 0.5 * vl
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()
            with torch.no_grad():
                pg.item(), vl.item(), entropy.item()
                ((ratio - 1) - log_ratio).mean().item()
                ((ratio - 1).abs() > 0.2).float().mean().item()


iters = int(sys.argv[1]) if len(sys.argv) > 1 else 20
times, cpu = [], []
for k in range(iters + 2):
    t0, c0 = time.perf_counter(), time.process_time()
    iteration()
    if k >= 2:
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
print(f"ppo_iteration_python median {1000 * statistics.median(times):.1f} ms wall-clock, "
      f"{1000 * statistics.median(cpu):.1f} ms CPU over {iters} iterations")
