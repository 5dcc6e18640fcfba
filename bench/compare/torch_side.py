#!/usr/bin/env python3
"""PyTorch's half of the side-by-side comparison with stoch (bench/compare/run; stoch's half: stoch_side.cpp).

The same networks, data shapes, optimiser and timing as stoch_side.cpp; PyTorch computes every expert unit
(dense), as a framework without conditional computation does. One process runs every case once on the thread
count given, and prints one line per case:

    RESULT torch <case> <threads> <seconds> <density>

seconds: mnist_* one training epoch (50,000 examples, 1,562 batches of 32); wide_* the median time of one call.
density: the fraction of open gates (mean over the epoch, or over the timed batches).

Cases (the networks: docs/benchmarks.md#against-pytorch):
  mnist_st, mnist_nr   the paper's network (Sec. 5, App. A), straight-through gates or the noisy rectifier
  wide_eval1, wide_eval64, wide_sbn64   784 -> [gated 4096, k = 16] -> [gated 4096, k = 16] -> 10: forward in
                       evaluation at batch 1 and 64, and one SBN training step at batch 64
  wide_eval1v          the batch-1 forward with the example as a vector (torch.addmv instead of nn.Linear's
                       matrix product: PyTorch's faster form on this machine, see affine())

Inputs are random MNIST-shaped data (uniform pixels in [0, 1), uniform labels): the times do not depend on the
values, only on the shapes and on the gates' density, which is set the same way on both sides.
"""

import argparse
import ctypes
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

PIXELS, CLASSES = 784, 10


def configure_threads(threads):
    """torch.set_num_threads sets ATen's OpenMP threads; Debian's torch multiplies with OpenBLAS (pthread),
    whose pool has its own count: set both."""
    torch.set_num_threads(threads)
    try:
        openblas = ctypes.CDLL("libopenblas.so.0")
        openblas.openblas_set_num_threads(threads)
        openblas.openblas_get_corename.restype = ctypes.c_char_p
        return "OpenBLAS core %s, %d threads" % (openblas.openblas_get_corename().decode(),
                                                 openblas.openblas_get_num_threads())
    except OSError:
        return "no libopenblas.so.0 loaded"


# ---- the paper's MNIST network: gater 784 -> 400 tanh -> 2000 gates, expert 784 -> 2000, output 2000 -> 10 ----

class MnistNet(nn.Module):
    def __init__(self, gate):
        super().__init__()
        self.gate = gate
        self.hidden = nn.Linear(PIXELS, 400)
        self.gates = nn.Linear(400, 2000)
        self.expert = nn.Linear(PIXELS, 2000)
        self.output = nn.Linear(2000, CLASSES)
        with torch.no_grad():
            # About 10 % open gates at the start (the paper's target density), as stoch_side.cpp: sigm(a) = 0.1
            # for straight-through, P(a + z > 0) = 0.1 with z ~ N(0, 1) for the noisy rectifier.
            self.gates.bias.fill_(-2.2 if gate == "st" else -1.3)
        # Noisy rectifier: App. A.1's adaptive L1 penalty on h (target 10 %, band 0.01, factor 1.01), as the
        # example mnist_gated and stoch_side.cpp.
        self.l1_lambda = 1e-3

    def forward(self, x):
        a = self.gates(torch.tanh(self.hidden(x)))
        if self.gate == "st":
            # h = 1[u < sigm(a)]; backward dL/da = dL/dh (Eq. 13 without the sigmoid's derivative).
            h_sample = (torch.rand_like(a) < torch.sigmoid(a)).to(a.dtype)
            h = a + (h_sample - a).detach()
        else:
            h = torch.relu(a + torch.randn_like(a))  # Sec. 2.1, z ~ N(0, 1)
        return self.output(h * self.expert(x)), h


def mnist_epoch(gate, threads, x_all, y_all, batch=32):
    torch.manual_seed(1)
    net = MnistNet(gate)
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    n = x_all.shape[0]
    order = torch.randperm(n)
    batches = n // batch
    density = 0.0
    start = time.perf_counter()
    for b in range(batches):
        idx = order[b * batch:(b + 1) * batch]
        x, y = x_all[idx], y_all[idx]
        logits, h = net(x)
        loss = F.cross_entropy(logits, y)
        open_fraction = (h.detach() != 0).float().mean().item()
        density += open_fraction
        if gate == "nr":
            loss = loss + net.l1_lambda * h.sum() / batch
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        sgd.step()
        if gate == "nr":
            if open_fraction > 0.11:
                net.l1_lambda *= 1.01
            elif open_fraction < 0.09:
                net.l1_lambda /= 1.01
    return time.perf_counter() - start, density / batches


# ---- the wide network: 784 -> [gated 4096, k = 16] -> relu -> [gated 4096, k = 16] -> relu -> 10 ----

UNITS, BLOCK, BOTTLENECK, TARGET = 4096, 16, 256, 0.1


def affine(layer, x):
    """nn.Linear, or for one example given as a vector, torch.addmv: Debian's OpenBLAS 0.3.21 computes the
    (1 x in) (in x out) product of nn.Linear at batch 1 with its sgemm, 3-5x slower than its sgemv
    (docs/performance-notes.md#dense-products-eigen-openblas-and-blis), so PyTorch's fastest batch-1 forward
    passes a vector."""
    return torch.addmv(layer.bias, layer.weight, x) if x.dim() == 1 else layer(x)


class BlockGatedLayer(nn.Module):
    """y = h_block ⊙ (W x + b), the gater in -> 256 tanh -> 256 SBN gates, each repeated over 16 consecutive
    expert units. PyTorch computes the whole expert and multiplies by the mask."""

    def __init__(self, inputs):
        super().__init__()
        self.hidden = nn.Linear(inputs, BOTTLENECK)
        self.gates = nn.Linear(BOTTLENECK, UNITS // BLOCK)
        self.expert = nn.Linear(inputs, UNITS)
        with torch.no_grad():
            self.gates.bias.fill_(math.log(TARGET / (1 - TARGET)))  # sigm(a) about 0.1
        self.threshold = 0.5  # evaluation: h = 1[sigm(a) > t], calibrated to 10 % open
        # SBN's minimum-variance baseline (Eq. 10) as stoch's default: two moving averages per gate.
        self.register_buffer("numerator", torch.zeros(UNITS // BLOCK))
        self.register_buffer("denominator", torch.zeros(UNITS // BLOCK))
        self.saved = None

    def forward(self, x):
        a = affine(self.gates, torch.tanh(affine(self.hidden, x)))
        p = torch.sigmoid(a)
        if self.training:
            h = (torch.rand_like(p) < p).to(p.dtype)
            self.saved = (a, p, h)
        else:
            h = (p > self.threshold).to(p.dtype)
        self.density = (h != 0).float().mean().item()
        return torch.relu(h.repeat_interleave(BLOCK, dim=-1) * affine(self.expert, x))

    def sbn_surrogate(self, example_loss):
        """A term whose gradient on a is SBN's estimate (h - p)(L_b - Lbar) / B (Theorem 1, Corollary 1); the
        expert and the layers above learn from the mean loss as usual. Updates the baseline afterwards."""
        a, p, h = self.saved
        loss = example_loss.detach()[:, None]
        baseline = torch.where(self.denominator > 0, self.numerator / self.denominator.clamp(min=1e-30),
                               torch.zeros_like(self.numerator))
        weight = (h - p) ** 2
        surrogate = (((h - p) * (loss - baseline[None, :])).detach() * a).sum() / a.shape[0]
        with torch.no_grad():
            self.numerator.mul_(0.99).add_(0.01 * (weight * loss).mean(0))
            self.denominator.mul_(0.99).add_(0.01 * weight.mean(0))
        return surrogate


class WideNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = BlockGatedLayer(PIXELS)
        self.layer2 = BlockGatedLayer(UNITS)
        self.output = nn.Linear(UNITS, CLASSES)

    def forward(self, x):
        return affine(self.output, self.layer2(self.layer1(x)))


def calibrate(net, x):
    """Thresholds so that 10 % of the gates open in evaluation, as stoch_side.cpp (App. A.3's calibration)."""
    with torch.inference_mode():
        for layer in (net.layer1, net.layer2):
            layer.threshold = 2.0  # nothing open while measuring the layer above's input
        h1 = net.layer1
        p1 = torch.sigmoid(h1.gates(torch.tanh(h1.hidden(x))))
        h1.threshold = torch.quantile(p1.flatten(), 1 - TARGET).item()
        y1 = h1(x)
        h2 = net.layer2
        p2 = torch.sigmoid(h2.gates(torch.tanh(h2.hidden(y1))))
        h2.threshold = torch.quantile(p2.flatten(), 1 - TARGET).item()


def median_call(fn, min_seconds, min_calls):
    """Calls fn until both minimums are reached (after 3 warm-up calls); returns the median call time."""
    for _ in range(3):
        fn()
    times = []
    total = 0.0
    while total < min_seconds or len(times) < min_calls:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        total += elapsed
    return statistics.median(times)


def wide_cases(threads, cases, min_seconds):
    torch.manual_seed(2)
    net = WideNet()
    gen = torch.Generator().manual_seed(3)
    x64 = torch.rand(64, PIXELS, generator=gen)
    y64 = torch.randint(0, CLASSES, (64,), generator=gen)
    net.eval()
    calibrate(net, x64)
    results = []
    # Batch 1 cycles through the 64 examples: each call gets another example, as in a stream of requests.
    inputs = {"wide_eval1": [x64[i:i + 1].contiguous() for i in range(64)],
              "wide_eval1v": [x64[i].contiguous() for i in range(64)], "wide_eval64": [x64]}
    for name, xs in inputs.items():
        if name not in cases:
            continue
        calls = [0]

        def forward():
            net(xs[calls[0] % len(xs)])
            calls[0] += 1

        with torch.inference_mode():
            seconds = median_call(forward, min_seconds, 20)
            net(x64)
        results.append((name, seconds, (net.layer1.density + net.layer2.density) / 2))
    if "wide_sbn64" in cases:
        net.train()
        sgd = torch.optim.SGD(net.parameters(), lr=0.01)

        def step():
            example_loss = F.cross_entropy(net(x64), y64, reduction="none")
            loss = example_loss.mean() + net.layer1.sbn_surrogate(example_loss) + \
                net.layer2.sbn_surrogate(example_loss)
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            sgd.step()

        seconds = median_call(step, min_seconds, 10)
        results.append(("wide_sbn64", seconds, (net.layer1.density + net.layer2.density) / 2))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", default="mnist_st,mnist_nr,wide_eval1,wide_eval1v,wide_eval64,wide_sbn64")
    parser.add_argument("--examples", type=int, default=50000, help="examples of the MNIST epochs (tests)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds per wide case")
    parser.add_argument("--config", action="store_true", help="print torch.__config__ and exit")
    args = parser.parse_args()
    blas = configure_threads(args.threads)
    if args.config:
        print("torch %s; %s" % (torch.__version__, blas))
        print(torch.__config__.show())
        print(torch.__config__.parallel_info())
        return 0
    cases = args.cases.split(",")
    print("# torch %s, %d threads (torch.get_num_threads() = %d), %s" %
          (torch.__version__, args.threads, torch.get_num_threads(), blas), flush=True)
    results = []
    mnist = [c for c in cases if c.startswith("mnist_")]
    if mnist:
        gen = torch.Generator().manual_seed(4)
        x_all = torch.rand(args.examples, PIXELS, generator=gen)
        y_all = torch.randint(0, CLASSES, (args.examples,), generator=gen)
        for case in mnist:
            seconds, density = mnist_epoch(case[len("mnist_"):], args.threads, x_all, y_all)
            results.append((case, seconds, density))
    results += wide_cases(args.threads, cases, args.min_seconds)
    for case, seconds, density in results:
        print("RESULT torch %s %d %.6g %.4f" % (case, args.threads, seconds, density), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
