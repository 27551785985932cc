#!/usr/bin/env python3
"""Check shiftscope's input gradients against PyTorch autograd.

Exports torchvision models with random weights (seed 0, eval mode) with both torch
exporters (the legacy one at opset 17 and the default dynamo one), computes, for an
objective sum(w * layer) over a middle layer (pooled as shiftscope records it: conv maps by
their spatial mean) and over the logits, d(objective)/d(image) with the ONNX adapter's
backward graph (the `gradient` example binary) and with torch.autograd.grad on the same
images and weights, and prints the relative error max|shiftscope - torch| / max|torch| per
model, exporter and objective. A model with an op the backward rules do not cover yet is
reported with the adapter's error. Exit 1 when a computed gradient is off by more than 1e-4.

  pip install torch torchvision onnx onnxscript
  cargo build --release -j 2 -p shiftscope-onnx --example gradient
  python3 tools/compare_gradients.py [--gradient PATH] [--models resnet18,mobilenet_v3_small]
"""

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision

REPO_ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
# The middle layer of each model: a module whose output shiftscope records as a layer
# (the block output, answered to by the layer's alias).
MIDDLE = {
    "resnet18": "layer2.0",
    "resnet50": "layer3.1",
    "mobilenet_v3_small": "features.6",
    "efficientnet_b0": "features.4",
    "densenet121": "features.denseblock2",
    "convnext_tiny": "features.3",
    "vit_b_16": "encoder.layers.encoder_layer_5",
    # Swin-T's stages are channels-last [B, H, W, C]: the logits only.
    "swin_t": None,
    "demo_cnn": "conv2",
    "demo_vit": "blocks.1",
}


def build(name):
    """The model with random weights (seed 0) and its input side."""
    torch.manual_seed(0)
    if name.startswith("demo_"):
        sys.path.insert(0, str(REPO_ROOT / "tools"))
        import train_demo_models

        cls = train_demo_models.DemoCnn if name == "demo_cnn" else train_demo_models.DemoVit
        return cls().eval(), 28
    model = getattr(torchvision.models, name)().eval()
    if name.startswith("vit"):
        # torchvision zero-initialises the ViT head: logits would not depend on the image.
        # nn.Linear's own initialisation instead.
        model.heads.head.reset_parameters()
    return model, 224


def export(model, x, path, exporter):
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}})
        else:
            torch.onnx.export(model, (x[:1],), str(path))


def torch_gradient(model, x, module, w):
    x = x.clone().requires_grad_(True)
    captured = {}
    handle = None
    if module is not None:
        handle = dict(model.named_modules())[module].register_forward_hook(
            lambda _m, _i, out: captured.__setitem__("a", out))
    logits = model(x)
    if handle is not None:
        handle.remove()
        a = captured["a"]
        # Pooled as shiftscope records: conv maps by their spatial mean, tokens by theirs.
        a = a.mean(dim=(2, 3)) if a.dim() == 4 else a.mean(dim=1) if a.dim() == 3 else a
    else:
        a = logits
    objective = (a * w).sum()
    (g,) = torch.autograd.grad(objective, x)
    return g.detach().numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO_ROOT / "target"))
    parser.add_argument("--gradient", type=Path,
                        default=Path(target) / "release" / "examples" / "gradient")
    parser.add_argument("--models", default="resnet18,mobilenet_v3_small")
    parser.add_argument("--seed", type=int, default=1, help="seed of the images")
    args = parser.parse_args()
    if not args.gradient.is_file():
        sys.stderr.write(f"no gradient binary at {args.gradient}; build it with\n"
                         "  cargo build --release -j 2 -p shiftscope-onnx --example gradient\n")
        return 2
    torch.set_num_threads(2)
    failed = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models.split(","):
            model, side = build(name)
            for exporter in ("legacy", "dynamo"):
                n = 2 if exporter == "legacy" else 1
                x = torch.randn(n, 3, side, side, generator=torch.Generator().manual_seed(args.seed))
                path = tmp / f"{name}-{exporter}.onnx"
                export(model, x, path, exporter)
                for layer in [m for m in (MIDDLE[name], "logits") if m]:
                    with torch.no_grad():
                        captured = {}
                        module = None if layer == "logits" else layer
                        if module:
                            h = dict(model.named_modules())[module].register_forward_hook(
                                lambda _m, _i, out: captured.__setitem__("a", out))
                        logits = model(x)
                        if module:
                            h.remove()
                        a = captured["a"] if module else logits
                        width = a.shape[-1] if a.dim() == 3 else a.shape[1]
                    w = torch.randn(n, width)
                    want = torch_gradient(model, x, module, w)
                    x.numpy().astype("<f4").tofile(tmp / "x.f32")
                    w.numpy().astype("<f4").tofile(tmp / "w.f32")
                    out = tmp / "g.f32"
                    done = subprocess.run(
                        [str(args.gradient), str(path), str(tmp / "x.f32"), str(n), "3", str(side),
                         str(side), layer, str(tmp / "w.f32"), str(out)],
                        capture_output=True, text=True, cwd=tmp)
                    if done.returncode != 0:
                        message = (done.stderr.strip().splitlines() or ["?"])[-1]
                        rows.append((name, exporter, layer, "-", f"not computed: {message[:150]}"))
                        continue
                    got = np.fromfile(out, dtype="<f4").reshape(want.shape)
                    scale = max(float(np.abs(want).max()), 1e-30)
                    diff = np.abs(got - want) / scale
                    rel = float(diff.max())
                    ok = rel <= TOLERANCE
                    failed |= not ok
                    off = int((diff > TOLERANCE).sum())
                    status = "PASS" if ok else f"FAIL ({off} of {diff.size} elements off)"
                    rows.append((name, exporter, layer, f"{rel:.1e}", status))
    print("| model | exporter | objective layer | rel. error vs autograd | status |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
