#!/usr/bin/env python3
"""The reference a PyTorch user has for input gradients: a torch.autograd.grad loop.

Each step runs a batch forward and back for a logit objective, sum(w * logits) with w one
class per image, and takes d(objective)/d(image) with torch.autograd.grad (eval mode, CPU,
`--threads` intra-op threads). Weights are random (seed 0): speed does not depend on them.
With --export PATH it first writes the same model (same weights) as ONNX with the legacy
exporter at opset 17 and a dynamic batch, so the benchmark runs the very same network.

Prints one line a benchmark can parse:

    pytorch-autograd steps_per_s=<float> images_per_s=<float> peak_rss_kib=<int>

Architectures: demo-cnn (tools/bench_pytorch_hooks.py's DemoCnn, 3x28x28) and resnet18
(torchvision, 3x224x224).

Called by `cargo bench -p shiftscope-onnx --bench gradient` with --serve (one timed run
per 'run' line on stdin, taking turns with its own runs); standalone:
    python3 tools/bench_pytorch_autograd.py --arch resnet18 --batch 8 --threads 2
"""

import argparse
import contextlib
import io
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pytorch_hooks import build  # noqa: E402


def export(model, size, path):
    x = torch.zeros(2, 3, size, size)
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, opset_version=17,
            input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--export", type=Path, help="write the model as ONNX here first")
    parser.add_argument("--serve", action="store_true",
                        help="after the warm-up print a 'ready' line, then time one run per 'run' line on stdin")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, size, _ = build(args.arch)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if args.export:
        export(model, size, args.export)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, size, size, generator=g) * 4 - 2
    with torch.no_grad():
        classes = model(x[:1]).shape[1]
    w = torch.zeros(args.batch, classes)
    w[torch.arange(args.batch), torch.arange(args.batch) % classes] = 1.0

    def step():
        xi = x.clone().requires_grad_(True)
        objective = (model(xi) * w).sum()
        (grad,) = torch.autograd.grad(objective, xi)
        return grad

    def timed():
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        return args.steps / (time.perf_counter() - started)

    for _ in range(3):
        step()
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if args.serve:
        print(f"ready peak_rss_kib={peak()}", flush=True)
        for line in sys.stdin:
            if line.strip() == "run":
                rate = timed()
                print(f"steps_per_s={rate:.3f} images_per_s={rate * args.batch:.2f} peak_rss_kib={peak()}",
                      flush=True)
        return
    rate = max(timed() for _ in range(3))
    print(f"pytorch-autograd steps_per_s={rate:.3f} images_per_s={rate * args.batch:.2f} peak_rss_kib={peak()}")


if __name__ == "__main__":
    main()
