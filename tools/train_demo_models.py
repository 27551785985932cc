#!/usr/bin/env python3
"""Train the demo models on colored MNIST and export them to ONNX.

The data is what shiftscope itself generates: the script runs
`shiftscope datasets export colored-mnist/<variant>[/train] --out <npz>`, so the
models see exactly the pixels the demo records (procedural digits unless MNIST
IDX files are installed; the provenance file says which).

Writes into assets/models/ (or --out):

  demo-cnn.onnx   the Deephys colored-MNIST tutorial's network: conv 3->10 k5,
                  max-pool 2, ReLU; conv 10->20 k5, dropout, max-pool 2, ReLU;
                  fc 320->50, ReLU; fc 50->10.
  demo-vit.onnx   a small vision transformer: 7x7 patches (16 tokens) plus a
                  learned CLS token and position embedding, 4 pre-norm blocks
                  (width 64, 4 heads, MLP 128), a LayerNorm and a linear head on
                  the CLS token.
  <model>.provenance.ron  script, seed, data, epochs, library versions and the
                  accuracy on every colored-mnist variant (test split).

Both take "image" float32 [batch, 3, 28, 28] in [0, 1] (no normalisation) and
give "logits" [batch, 10]; the class names are in the model metadata
("class_names"). Trained on colored-mnist/id (train split) only: the colour of
a digit gives its class away there, so the models learn the colour shortcut and
fail on the permuted colours, as in the Deephys paper.

Needs: pip install torch onnx numpy. Run from the repository root:
    python3 tools/train_demo_models.py            # builds shiftscope if needed
    python3 tools/train_demo_models.py --epochs 1 --out /tmp/models
"""

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "tools/train_demo_models.py"
VARIANTS = ["id", "permuted", "arbitrary", "drifted", "grey", "random"]


# ----------------------------------------------------------------------------- models


class DemoCnn(nn.Module):
    """The Deephys colored-MNIST tutorial's CNN (logits out, no log-softmax)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads
        qkv = self.qkv(x).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        weights = (q @ k.transpose(-2, -1)) * (d // h) ** -0.5
        weights = weights.softmax(dim=-1)
        x = (weights @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class DemoVit(nn.Module):
    """A small ViT for 28x28 images: 7x7 patches, CLS token, 4 blocks."""

    def __init__(self, patch=7, dim=64, depth=4, heads=4, hidden=128, classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        tokens = (28 // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


MODELS = {
    "demo-cnn": (DemoCnn, "the Deephys colored-MNIST tutorial's CNN", 1e-3),
    "demo-vit": (DemoVit, "a small vision transformer (7x7 patches, CLS token, 4 blocks)", 1e-3),
}


# ----------------------------------------------------------------------------- data


def shiftscope_binary(given):
    if given:
        return Path(given)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    binary = target / "release" / "shiftscope"
    if not binary.exists():
        print("building shiftscope (cargo build --release) ...", flush=True)
        subprocess.run(["cargo", "build", "--release"], cwd=REPO_ROOT, check=True)
    return binary


def export(binary, name, folder):
    """Runs `shiftscope datasets export`; returns (images NCHW float32, labels, line)."""
    out = Path(folder) / (name.replace("/", "_") + ".npz")
    result = subprocess.run(
        [str(binary), "datasets", "export", name, "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    with np.load(out) as data:
        images = data["images"].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        labels = data["labels"].astype(np.int64)
        classes = [str(c) for c in data["classes"]]
    # "wrote <path>: <what>": keep what was exported, not the temporary path.
    what = result.stdout.strip().split(": ", 1)[-1]
    return images, labels, classes, f"{name}: {what}"


# ----------------------------------------------------------------------------- training


def accuracy(model, images, labels, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i : i + batch])
            correct += (model(x).argmax(1).numpy() == labels[i : i + batch]).sum()
    return float(correct) / len(images)


def train(model, images, labels, epochs, lr, seed, batch=128):
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        start, total = time.time(), 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        print(
            f"  epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )


def export_onnx(model, path, classes):
    import onnx

    model.eval()
    kwargs = dict(
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 28, 28),), str(path), **kwargs)
    proto = onnx.load(str(path))
    rename_tensors(proto, FRIENDLY_NAMES)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "class_names", json.dumps(classes)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


# The exporter names tensors after nodes ("/Relu_2_output_0"); the demo's layers get the
# names people use for them. The post-ReLU tensor carries the layer's name (Deephys' "fc1").
FRIENDLY_NAMES = {
    "/conv1/Conv": "conv1_pre",
    "/MaxPool": "conv1_pool",
    "/Relu": "conv1",
    "/conv2/Conv": "conv2_pre",
    "/MaxPool_1": "conv2_pool",
    "/Relu_1": "conv2",
    "/Flatten": "flatten",
    "/fc1/Gemm": "fc1_pre",
    "/Relu_2": "fc1",
    "/patch_embed/Conv": "patch_embed",
    "/norm/LayerNormalization": "final_norm",
    "/Gather_1": "cls",
}


def rename_tensors(proto, friendly):
    """Gives every node output a readable name: a friendly one from `friendly` (by node name),
    else the exporter's scope path with dots ("/blocks.0/fc1/MatMul" -> "blocks.0.fc1.MatMul");
    each block's residual output ("/blocks.N/Add_2") becomes "blocks.N", its GELU output
    ("/blocks.N/Mul_1") "blocks.N.mlp_gelu"."""
    graph = proto.graph
    keep = {o.name for o in graph.output} | {i.name for i in graph.input}
    renames = {}
    for node in graph.node:
        for k, out in enumerate(node.output):
            if out in keep or not out:
                continue
            base = node.name
            if base in friendly:
                new = friendly[base]
            elif base.startswith("/blocks.") and base.endswith("/Add_2"):
                new = base[1:].rsplit("/", 1)[0]
            elif base.startswith("/blocks.") and base.endswith("/Mul_1"):
                new = base[1:].rsplit("/", 1)[0] + ".mlp_gelu"
            else:
                new = base.lstrip("/").replace("/", ".")
            if k:
                new += f"_{k}"
            renames[out] = new
    assert len(set(renames.values())) == len(renames), "tensor names must stay unique"
    for node in graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
        node.input[:] = [renames.get(n, n) for n in node.input]
    for info in graph.value_info:
        info.name = renames.get(info.name, info.name)


def ron_string(text):
    return json.dumps(text)  # RON strings use the same escapes as JSON for this text


def write_provenance(path, name, what, args, data_line, epochs, accuracies):
    lines = [
        "// Made by tools/train_demo_models.py; re-run it to reproduce (CPU, seeded).",
        "(",
        f"    model: {ron_string(name)},",
        f"    description: {ron_string(what)},",
        f"    script: {ron_string(SCRIPT)},",
        f"    seed: {args.seed},",
        f"    data: {ron_string(data_line)},",
        f"    epochs: {epochs},",
        f"    torch: {ron_string(torch.__version__)},",
        "    accuracy: {",
    ]
    for variant, acc in accuracies.items():
        lines.append(f"        {ron_string('colored-mnist/' + variant)}: {acc:.4f},")
    lines += ["    },", ")", ""]
    path.write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shiftscope", help="the shiftscope binary (default: target/release)")
    parser.add_argument("--out", default=str(REPO_ROOT / "assets" / "models"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="demo-cnn,demo-vit")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(os.cpu_count() or 1)
    binary = shiftscope_binary(args.shiftscope)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as folder:
        print("exporting colored-mnist with shiftscope ...", flush=True)
        train_x, train_y, classes, data_line = export(binary, "colored-mnist/id/train", folder)
        tests = {v: export(binary, f"colored-mnist/{v}", folder)[:2] for v in VARIANTS}
        print(f"  {data_line}", flush=True)

        for name in args.models.split(","):
            make, what, lr = MODELS[name]
            torch.manual_seed(args.seed)
            model = make()
            print(f"training {name} ({what}) for {args.epochs} epochs ...", flush=True)
            train(model, train_x, train_y, args.epochs, lr, args.seed)
            accuracies = {v: accuracy(model, x, y) for v, (x, y) in tests.items()}
            print("  accuracy: " + ", ".join(f"{v} {a:.3f}" for v, a in accuracies.items()))
            path = out / f"{name}.onnx"
            export_onnx(model, path, classes)
            write_provenance(
                out / f"{name}.provenance.ron", name, what, args, data_line, args.epochs, accuracies
            )
            print(f"  wrote {path} and {name}.provenance.ron", flush=True)


if __name__ == "__main__":
    sys.exit(main())
