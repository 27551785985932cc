#!/usr/bin/env python3
"""The reference a PyTorch user has for recording: forward hooks + numpy export.

Runs a model in PyTorch (CPU, eval mode, no grad) over random input batches, with
forward hooks on the same layers shiftscope records by default, pools each hooked
output the way shiftscope does (spatial mean of conv maps, dense layers as they
are), copies it to numpy and writes it into one memory-mapped .npy file per layer
(np.lib.format.open_memmap, as a store holds them), plus the logits. Prints one
line a benchmark can parse:

    pytorch-hooks images_per_s=<float> layers=<int> neurons=<int> flops_per_image=<int>

flops_per_image is PyTorch's own count (torch.utils.flop_counter: 2 per multiply-add of
the convolutions and matrix products) for one image; the benchmark divides the CPU's
measured multiply-add peak by it to show how close each side runs to the machine's limit.

Architectures (weights are random: throughput does not depend on them):
  demo-cnn   the Deephys colored-MNIST CNN of tools/train_demo_models.py, written
             with nn.ReLU modules so that hooks see the three ReLU outputs that
             shiftscope records (conv1, conv2, fc1) plus the logits; 3x28x28.
  resnet18   torchvision resnet18: a hook on every nn.ReLU call (17: the stem's and
             two per BasicBlock), a pre-hook on fc (the flattened 512 features) and
             the logits: the 19 layers shiftscope selects on the exported graph;
             3x224x224.

Called by `cargo bench -p shiftscope-tests --bench extract` with --serve (one timed run per
line it sends, taking turns with its own runs); standalone:
    python3 tools/bench_pytorch_hooks.py --arch resnet18 --images 256 --batch 32 --threads 2
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn


class HookableDemoCnn(nn.Module):
    """tools/train_demo_models.py's DemoCnn with ReLU modules instead of F.relu."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(0.5)
        self.pool2 = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.fc1 = nn.Linear(320, 50)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = self.relu1(self.pool1(self.conv1(x)))
        x = self.relu2(self.pool2(self.conv2_drop(self.conv2(x))))
        x = torch.flatten(x, 1)
        x = self.relu3(self.fc1(x))
        return self.fc2(x)


def build(arch):
    """The model, its input size, and the modules to hook: (module, pre_hook)."""
    if arch == "demo-cnn":
        model = HookableDemoCnn()
        hooks = [(model.relu1, False), (model.relu2, False), (model.relu3, False)]
        return model, 28, hooks
    if arch == "resnet18":
        import torchvision

        model = torchvision.models.resnet18(weights=None)
        hooks = [(m, False) for m in model.modules() if isinstance(m, nn.ReLU)]
        hooks.append((model.fc, True))
        return model, 224, hooks
    sys.exit(f"unknown --arch {arch!r}: demo-cnn or resnet18")


def pool(t):
    return t.mean(dim=(2, 3)) if t.dim() == 4 else t


def flops_per_image(model, size):
    """PyTorch's count of floating-point operations for one image, 0 where unavailable."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return 0
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return int(counter.get_total_flops())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", required=True)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the warm-up print a 'ready' line, then time one run per 'run' line on stdin",
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model, size, hooked = build(args.arch)
    model.eval()
    flops = flops_per_image(model, size)
    inputs = torch.empty(args.images, 3, size, size).uniform_(-2.0, 2.0)

    captured = []

    def forward_hook(_module, _inputs, output):
        captured.append(pool(output).numpy())

    def pre_hook(_module, inputs):
        captured.append(pool(inputs[0]).numpy())

    for module, pre in hooked:
        if pre:
            module.register_forward_pre_hook(pre_hook)
        else:
            module.register_forward_hook(forward_hook)

    def run(folder):
        files = None
        with torch.no_grad():
            for start in range(0, args.images, args.batch):
                captured.clear()
                batch = inputs[start : start + args.batch]
                logits = model(batch).numpy()
                outputs = captured + [logits]
                if files is None:
                    files = [
                        np.lib.format.open_memmap(
                            os.path.join(folder, f"layer{i}.npy"),
                            mode="w+",
                            dtype=np.float32,
                            shape=(args.images, out.shape[1]),
                        )
                        for i, out in enumerate(outputs)
                    ]
                for file, out in zip(files, outputs):
                    file[start : start + len(out)] = out
        for file in files:
            file.flush()
        return files

    def timed(folder):
        started = time.perf_counter()
        files = run(folder)
        rate = args.images / (time.perf_counter() - started)
        del files
        return rate

    with tempfile.TemporaryDirectory() as folder:
        files = run(folder)  # warm-up
        layers = len(files)
        neurons = sum(f.shape[1] for f in files)
        del files
        if args.serve:
            # One timed run per "run" line on stdin, so that a benchmark can take turns with
            # its own runs: a slow spell of a shared machine then falls on both sides.
            print(f"ready layers={layers} neurons={neurons} flops_per_image={flops}", flush=True)
            for line in sys.stdin:
                if line.strip() != "run":
                    break
                print(f"images_per_s={timed(folder):.1f}", flush=True)
            return
        best = max(timed(folder) for _ in range(args.repeats))
    print(
        f"pytorch-hooks images_per_s={best:.1f} layers={layers} neurons={neurons}"
        f" flops_per_image={flops}"
    )


if __name__ == "__main__":
    main()
