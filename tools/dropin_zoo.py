#!/usr/bin/env python3
"""Drop-in zoo: does shiftscope's ONNX adapter take the ONNX files real users export?

Builds a zoo of torchvision-style models with random weights (seed 0, eval mode),
exports each the way people do (torch.onnx.export's legacy TorchScript exporter
and its default dynamo exporter, external-data files, a channels-last input,
dynamic height/width, a float16 conversion, a tuple-output "Hugging Face style"
model), then checks each with shiftscope, always from a fresh working directory
that is not the models' folder:

  * the ONNX adapter's `record` example binary records the default-selected
    layers and the logits of 2 random images (N=2: uniform pixels, ImageNet
    normalisation, float32 NCHW; the dynamo models have a fixed batch of 1 and
    the adapter runs them one image at a time), and records selector "all" on
    one image to count the candidate layers;
  * the same images go through the PyTorch model with forward hooks on every
    module, pooled as shiftscope pools (rank 4 [N,C,H,W]: mean over H,W; rank 3
    [N,T,D]: mean over T; rank 2 as is);
  * `shiftscope layers MODEL` (the CLI, given the model by a path relative to
    that other working directory) must succeed, then `shiftscope extract` of a
    small study of the model (6 + 6 built-in example-shift images, the default
    layers and the preprocessing the model's input size calls for) and
    `shiftscope verify` of its store.

Mapping a recorded layer to PyTorch: its name is read as a module path of the
PyTorch model (`dict(model.named_modules())`), a `_k` suffix meaning the module's
k-th call, 0-based (`layer1.0.relu_1`: the second call of `layer1.0.relu`; a
name that is itself a module path, like `encoder.layers.encoder_layer_3`, is
call 0). The layer's aliases are read the same way (the ONNX tensor names among
them are not), and each alias that maps is compared too. Layers that map to no
module call are skipped, not failed. When the module's output goes straight
into a BatchNorm, Dropout or Identity module that has no node in the ONNX graph
(an eval-mode BatchNorm folded into the preceding Conv, a dropped Dropout), the
recorded tensor is compared with that module's output instead (as
tools/compare_pytorch.py does; which modules own nodes comes from the dynamo
exporter's node metadata, `pkg.torch.onnx.name_scopes` or `namespace`, or the
legacy exporter's node-name scopes).

Errors: rel = max|shiftscope - pytorch| / max|pytorch|, over the pooled [N, C]
values. A row passes when the logits and every mapped default-selected layer
are within rel <= 1e-4 (1e-2 for the float16 model, whose reference is the
float32 PyTorch model), the shapes agree and `shiftscope layers` succeeds. The
script prints a Markdown table, one row per zoo entry, then notes on each
exported graph (input/output names and shapes, opset, external data). One
model failing never stops the others; exit 1 if any row fails, 2 on a setup
error (missing packages, no recorder binary, unknown --models).

Run from anywhere:

  pip install torch torchvision onnx onnxscript onnxconverter-common onnxruntime
  cargo build --release -j 2 -p shiftscope-onnx --example record
  python3 tools/dropin_zoo.py --quick        # about 25 s on 2 idle cores
  python3 tools/dropin_zoo.py                # the whole zoo, under a minute

The `shiftscope` CLI is looked for (debug, then release) under $CARGO_TARGET_DIR,
~/.cache/shiftscope/ci-target (where .ci/run builds) and <repo>/target; without one the CLI column is skipped with a note.

Options:
  --out DIR          keep the exported models, inputs and recordings in DIR
                     (default: a temporary directory, removed at the end)
  --models LIST      comma-separated zoo entries (ids, or a model name for all of
                     its rows); `--list` prints them
  --quick            skip the big ones (vit_b_16, inception_v3)
  --recorder PATH    the record example binary (default: release/examples/record
                     under $CARGO_TARGET_DIR, then <repo>/target)
  --shiftscope PATH  the shiftscope CLI binary
  --details          also print every default-selected layer's mapping and error
"""

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = 0
N = 2
TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2
QDQ_TOLERANCE = 1e-1
# Where .ci/run builds; $CARGO_TARGET_DIR and <repo>/target are searched too.
CI_TARGET = Path.home() / ".cache" / "shiftscope" / "ci-target"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

try:
    import numpy as np
    import onnx
    import torch
    import torchvision
    from torch import nn

    sys.dont_write_bytecode = True  # no __pycache__ left in tools/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from compare_pytorch import first_tensor, pool, unqualified
except ImportError as e:  # a setup error, not a model failure
    sys.stderr.write(
        f"missing a Python package ({e}); install them with\n"
        "  pip install torch torchvision onnx onnxscript onnxconverter-common onnxruntime\n"
    )
    sys.exit(2)


# --------------------------------------------------------------------------- the zoo


class ChannelsLast(nn.Module):
    """Takes [N, H, W, 3] images, as TensorFlow-minded pipelines hand them over."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model(image.permute(0, 3, 1, 2))


class HFStyleViT(nn.Module):
    """A Hugging Face-style classifier (like ViTForImageClassification with return_dict=False
    and a pooler): takes `pixel_values`, returns (pooler_output, logits), pooled features first."""

    def __init__(self):
        super().__init__()
        self.vit = torchvision.models.VisionTransformer(
            image_size=32,
            patch_size=8,
            num_layers=2,
            num_heads=2,
            hidden_dim=32,
            mlp_dim=64,
            num_classes=10,
        )
        self.vit.heads = nn.Identity()  # the backbone returns the class token's features
        self.pooler = nn.Sequential(nn.Linear(32, 32), nn.Tanh())
        self.classifier = nn.Linear(32, 10)

    def forward(self, pixel_values):
        features = self.vit(pixel_values)
        return self.pooler(features), self.classifier(features)


def resnet18():
    return torchvision.models.resnet18(weights=None)


def mobilenet_v3_small():
    return torchvision.models.mobilenet_v3_small(weights=None)


def vit_b_16():
    model = torchvision.models.vit_b_16(weights=None)
    model.heads.head.reset_parameters()  # zero-initialised by torchvision: logits all 0
    return model


def inception_v3():
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True)
    model.aux_logits = False
    model.AuxLogits = None
    return model


def channels_last_resnet18():
    return ChannelsLast(resnet18())


@dataclass
class Entry:
    id: str  # for --models
    model: str  # the table's model column
    variant: str  # the table's exporter / variant column
    build: object  # () -> nn.Module (called right after torch.manual_seed(SEED))
    export: str  # legacy | dynamo | external | fp16 | qdq
    opset: int = 17  # the legacy exporter's; the dynamo exporter's when set above 17
    size: int = 224
    big: bool = False
    channels_last: bool = False
    dynamic_hw: bool = False
    names: tuple = (("image",), ("logits",))  # legacy input and output names
    logits_index: object = None  # index of the logits in a tuple output
    tolerance: float = TOLERANCE


ZOO = [
    Entry("resnet18-legacy", "resnet18", "legacy (TorchScript), opset 17", resnet18, "legacy"),
    Entry("resnet18-dynamo", "resnet18", "dynamo (default export)", resnet18, "dynamo"),
    Entry(
        "resnet18-dynamo-opset21",
        "resnet18",
        "dynamo, opset_version=21",
        resnet18,
        "dynamo",
        opset=21,
    ),
    Entry(
        "mobilenet_v3_small-legacy",
        "mobilenet_v3_small",
        "legacy, opset 17",
        mobilenet_v3_small,
        "legacy",
    ),
    Entry(
        "mobilenet_v3_small-dynamo",
        "mobilenet_v3_small",
        "dynamo (default export)",
        mobilenet_v3_small,
        "dynamo",
    ),
    Entry("vit_b_16-legacy", "vit_b_16", "legacy, opset 17", vit_b_16, "legacy", big=True),
    Entry("vit_b_16-dynamo", "vit_b_16", "dynamo (default export)", vit_b_16, "dynamo", big=True),
    Entry(
        "resnet18-external-data",
        "resnet18",
        "legacy, re-saved with external data (one .data file)",
        resnet18,
        "external",
    ),
    Entry(
        "resnet18-channels-last",
        "resnet18",
        "legacy, channels-last input [N,224,224,3] (permute wrapper)",
        channels_last_resnet18,
        "legacy",
        channels_last=True,
    ),
    Entry(
        "resnet18-dynamic-hw",
        "resnet18",
        "legacy, dynamic batch, height and width",
        resnet18,
        "legacy",
        dynamic_hw=True,
    ),
    Entry(
        "resnet18-fp16",
        "resnet18",
        "legacy, float16 (onnxconverter-common, keep_io_types)",
        resnet18,
        "fp16",
        tolerance=FP16_TOLERANCE,
    ),
    Entry(
        "resnet18-int8-qdq",
        "resnet18",
        "legacy, int8 QDQ (onnxruntime quantize_static, 8 calibration images)",
        resnet18,
        "qdq",
        tolerance=QDQ_TOLERANCE,
    ),
    Entry(
        "inception_v3-legacy",
        "inception_v3",
        "legacy, opset 17, 299x299",
        inception_v3,
        "legacy",
        size=299,
        big=True,
    ),
    Entry(
        "hf-style-vit",
        "HF-style tiny ViT",
        "legacy, input pixel_values, outputs (pooler_output, logits)",
        HFStyleViT,
        "legacy",
        size=32,
        names=(("pixel_values",), ("pooler_output", "logits")),
        logits_index=1,
    ),
]


# --------------------------------------------------------------------------- export


@contextlib.contextmanager
def quiet():
    """Silences the exporters' warnings and the dynamo exporter's progress lines."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        yield


def export_legacy(entry, model, x, path):
    (input_name,), outputs = entry.names
    axes = {0: "batch", 2: "height", 3: "width"} if entry.dynamic_hw else {0: "batch"}
    with quiet():
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=[input_name],
            output_names=list(outputs),
            dynamic_axes={input_name: axes},
        )


def export(entry, model, x, folder):
    """Exports into folder; returns the model's path."""
    path = folder / f"{entry.id}.onnx"
    if entry.export == "legacy":
        export_legacy(entry, model, x, path)
    elif entry.export == "dynamo":
        opset = {"opset_version": entry.opset} if entry.opset > 17 else {}
        with quiet():
            torch.onnx.export(model, (x[:1],), str(path), **opset)
    elif entry.export == "qdq":
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                              QuantType, quantize_static)

        class Images(CalibrationDataReader):
            def __init__(self):
                self.rng = np.random.default_rng(SEED + 3)
                self.left = 8

            def get_next(self):
                if self.left == 0:
                    return None
                self.left -= 1
                pixels = self.rng.uniform(0, 1, (1, 3, entry.size, entry.size))
                mean = np.array(IMAGENET_MEAN).reshape(1, 3, 1, 1)
                std = np.array(IMAGENET_STD).reshape(1, 3, 1, 1)
                return {entry.names[0][0]: ((pixels - mean) / std).astype(np.float32)}

        fp32 = folder / f"{entry.id}.fp32.onnx"
        export_legacy(entry, model, x, fp32)
        with quiet():
            quantize_static(str(fp32), str(path), Images(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        fp32.unlink()
    elif entry.export == "external":
        inline = folder / f"{entry.id}.inline.onnx"
        export_legacy(entry, model, x, inline)
        proto = onnx.load(str(inline))
        onnx.save_model(
            proto,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
        )
        inline.unlink()
    elif entry.export == "fp16":
        try:
            from onnxconverter_common import float16
        except ImportError as e:
            raise RuntimeError(
                f"needs onnxconverter-common ({e}): pip install onnxconverter-common"
            )
        fp32 = folder / f"{entry.id}.fp32.onnx"
        export_legacy(entry, model, x, fp32)
        with quiet():
            proto = float16.convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
        onnx.save_model(proto, str(path))
        fp32.unlink()
    else:
        raise ValueError(entry.export)
    return path


def value_text(value_info):
    """"image[batch,3,224,224]:f32"."""
    tensor = value_info.type.tensor_type
    dims = [
        d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
        for d in tensor.shape.dim
    ]
    elem = {1: "f32", 10: "f16", 7: "i64"}.get(tensor.elem_type, f"type {tensor.elem_type}")
    return f"{value_info.name}[{','.join(dims)}]:{elem}"


def describe_graph(path):
    """One line on the exported file: opset, inputs, outputs, side files, metadata."""
    proto = onnx.load(str(path), load_external_data=False)
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
    locations = set()
    for init in graph.initializer:
        for kv in init.external_data:
            if kv.key == "location":
                locations.add(kv.value)
    keys = set()
    for node in graph.node:
        keys.update(p.key for p in node.metadata_props)
    with_scopes = sum(
        any(p.key == "pkg.torch.onnx.name_scopes" for p in n.metadata_props) for n in graph.node
    )
    ops = {}
    for n in graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    parts = [
        f"opset {opsets}, IR {proto.ir_version}, "
        f"producer {proto.producer_name} {proto.producer_version}",
        "inputs " + ", ".join(value_text(v) for v in inputs),
        "outputs " + ", ".join(value_text(v) for v in graph.output),
        f"{len(graph.node)} nodes",
        f"{path.stat().st_size / 1e6:.1f} MB"
        + (f" + external data {', '.join(sorted(locations))}" if locations else ", weights inline"),
    ]
    if keys:
        parts.append(
            f"node metadata keys {sorted(keys)}; "
            f"{with_scopes}/{len(graph.node)} nodes with name_scopes"
        )
    if "Cast" in ops:
        parts.append(f"{ops['Cast']} Cast nodes")
    return "; ".join(parts)


# --------------------------------------------------------------------------- ONNX scopes


def modules_with_nodes(path, model):
    """Module paths that own at least one node of the graph (and all their parents)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    children = {}  # (parent path, unqualified name) -> path
    for qualified, _ in model.named_modules():
        if qualified:
            # The legacy exporter names a numbered child "layer1.0", reaching back past digits.
            parent = qualified.rsplit(".", 1)[0] if "." in qualified else ""
            children[(parent, unqualified(qualified))] = qualified
    found = set()
    for node in graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        chain = []
        if "pkg.torch.onnx.name_scopes" in meta:
            # A Python list repr: ['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_1']
            quoted = r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\""
            items = re.findall(quoted, meta["pkg.torch.onnx.name_scopes"])
            names = [a or b for a, b in items]
            chain = [s for s in names[1:-1] if s]
        elif "namespace" in meta:
            # ": torchvision.models.resnet.ResNet/layer1: torch...Sequential/.../fx_node: aten.op"
            pieces = [p.split(":")[0].strip() for p in meta["namespace"].split("/")]
            chain = [p for p in pieces[1:-1] if p]
        elif node.name.startswith("/"):
            qualified = ""
            for part in node.name.split("/")[1:-1]:
                child = children.get((qualified, part))
                if child is None:
                    m = re.fullmatch(r"(.+)_(\d+)", part)
                    child = children.get((qualified, m.group(1))) if m else None
                if child is None:
                    break
                qualified = child
                chain.append(qualified)
        found.update(chain)
    return found


# --------------------------------------------------------------------------- PyTorch side


@dataclass
class Call:
    input_obj: object = None
    output_obj: object = None
    output_pooled: object = None


def run_reference(model, x, logits_index):
    """Every module call of one forward pass (pooled outputs), and the pooled logits."""
    calls = {q: [] for q, _ in model.named_modules()}
    handles = []
    for qualified, module in model.named_modules():

        def pre_hook(_module, args, q=qualified):
            calls[q].append(Call(input_obj=first_tensor(args)))

        def hook(_module, _args, output, q=qualified):
            call = calls[q][-1]
            tensor = first_tensor(output)
            if tensor is not None:
                # Pooled now: later in-place ops (ReLU(inplace=True), out += identity) change it.
                call.output_obj = tensor
                call.output_pooled = pool(tensor)

        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    logits = out[logits_index] if logits_index is not None else out
    return calls, pool(logits)


def resolve(name, calls):
    """A layer name as (module path, call index), or None."""
    if name in calls and name:
        return name, 0
    m = re.fullmatch(r"(.+)_(\d+)", name)
    if m and m.group(1) in calls and m.group(1):
        return m.group(1), int(m.group(2))
    return None


FOLDABLE = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, nn.Identity)


def foldable_without_nodes(model, with_nodes):
    """Modules an exporter folds away (eval BatchNorm into its Conv) or drops (Dropout,
    Identity) that own no node of this graph: the ONNX tensor before them holds their output."""
    return {
        q for q, m in model.named_modules() if q and isinstance(m, FOLDABLE) and q not in with_nodes
    }


def reference_for(name, calls, folded):
    """(label, pooled values) for a layer name, or (reason, None) when it does not map."""
    found = resolve(name, calls)
    if found is None:
        return "not a module path", None
    qualified, k = found
    if k >= len(calls[qualified]):
        return f"{qualified} has no call {k}", None
    current = calls[qualified][k]
    if current.output_pooled is None:
        return f"{qualified} call {k} returns no tensor", None
    label = qualified + (f"#{k}" if k else "")
    # Follow into modules without nodes in the graph (folded BatchNorm, dropped Dropout).
    for _ in range(8):
        nxt = None
        for q in sorted(folded):
            if q.startswith(qualified + "."):
                continue  # a child of the module itself (a trailing Identity head)
            q_calls = calls[q]
            for j, c in enumerate(q_calls):
                follows = c is not current and c.input_obj is current.output_obj
                if follows and c.output_pooled is not None:
                    nxt = (q, j, c)
                    break
            if nxt:
                break
        if nxt is None:
            break
        q, j, current = nxt
        label += "+" + q.rsplit(".", 1)[-1] + (f"#{j}" if j else "")
    return label, current.output_pooled


def rel_error(values, expected):
    """(rel, reason): rel = max|a-b| / max|b|; reason set on a shape mismatch."""
    if tuple(values.shape) != tuple(expected.shape):
        return float("inf"), f"shape {list(values.shape)} vs pytorch {list(expected.shape)}"
    diff = np.abs(values.astype(np.float64) - expected)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    if scale > 0:
        return max_abs / scale, ""
    return (0.0 if max_abs == 0 else float("inf")), ""


# --------------------------------------------------------------------------- shiftscope side


def error_line(text, model_path=None):
    """The line of a tool's output that says what went wrong (the message of a Debug-printed
    PluginError; the model's folder left out)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = next((line for line in lines if line.lower().startswith("error")), None)
    found = found or (lines[-1] if lines else "(no output)")
    m = re.search(r'message: "(.*)" \}', found)
    if m:
        found = "Error: " + m.group(1).replace('\\"', '"')
    if model_path is not None:
        found = found.replace(str(Path(model_path).parent) + os.sep, "")
    return found


def record(recorder, model_path, input_path, n, c, h, w, out_dir, selectors, cwd):
    """Runs the recorder in cwd; returns (manifest, {file: array}) or raises with its error."""
    cmd = [str(recorder), str(model_path), str(input_path), str(n), str(c), str(h), str(w)]
    cmd += [str(out_dir)] + list(selectors)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=900)
    except subprocess.TimeoutExpired:
        raise RuntimeError("record: timed out after 900 s")
    if done.returncode != 0:
        raise RuntimeError("record: " + error_line(done.stderr + "\n" + done.stdout, model_path))
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    arrays = {}
    for entry in manifest["layers"] + [manifest["logits"]]:
        data = np.fromfile(Path(out_dir) / entry["file"], dtype="<f4")
        arrays[entry["file"]] = data.reshape(entry["shape"])
    return manifest, arrays


def find_cli(explicit):
    if explicit:
        return explicit.resolve() if explicit.is_file() else None
    roots = []
    if os.environ.get("CARGO_TARGET_DIR"):
        roots.append(Path(os.environ["CARGO_TARGET_DIR"]).resolve())
    roots += [CI_TARGET, REPO_ROOT / "target"]
    for root in roots:
        for profile in ("debug", "release"):
            if (root / profile / "shiftscope").is_file():
                return root / profile / "shiftscope"
    return None


def run_cli(cli, model_path, cwd):
    """`shiftscope layers MODEL`, then `extract` and `verify` of a small study of it, from
    cwd with a relative model path: ("ok (...)", True) or (error line, False)."""
    rel = os.path.relpath(model_path, cwd)
    try:
        done = subprocess.run(
            [str(cli), "layers", rel], capture_output=True, text=True, cwd=cwd, timeout=300
        )
    except subprocess.TimeoutExpired:
        return "timed out", False
    if done.returncode != 0:
        return error_line(done.stderr + "\n" + done.stdout, rel), False
    m = re.search(r"(\d+) candidate layers; (\d+) selected", done.stdout)
    listed = f"ok ({m.group(1)}/{m.group(2)})" if m else "ok"
    # `extract` of a small study (the built-in example-shift images, ID and a shift), with
    # the default layers and the preprocessing the model's input size calls for, then
    # `verify` of the store it wrote.
    study = Path(cwd) / "study.ron"
    study.write_text(
        "(\n"
        '    store: "store",\n'
        f"    model: (path: {json.dumps(rel)}),\n"
        '    datasets: [(name: "example-shift/id"), (name: "example-shift/noisy")],\n'
        '    plugins: {"example-shift": "(len: 6, seed: 1)"},\n'
        "    recording: (batch_size: 3, thumb: 8),\n"
        ")\n"
    )
    for args in (["extract", "study.ron"], ["verify", "store"]):
        try:
            done = subprocess.run(
                [str(cli), *args], capture_output=True, text=True, cwd=cwd, timeout=600
            )
        except subprocess.TimeoutExpired:
            return f"{listed}; {args[0]} timed out", False
        if done.returncode != 0:
            return f"{listed}; {args[0]}: {error_line(done.stderr + chr(10) + done.stdout, rel)}", False
    return f"{listed}; extract + verify ok", True


# --------------------------------------------------------------------------- one row


@dataclass
class Result:
    entry: Entry
    layers: str = "-"
    logits: str = "-"
    worst: str = "-"
    cli: str = "-"
    status: str = ""
    failed: bool = False
    notes: list = field(default_factory=list)
    details: list = field(default_factory=list)
    seconds: float = 0.0


def fmt(rel):
    return "inf" if rel == float("inf") else f"{rel:.1e}"


def check(entry, out, recorder, cli):
    result = Result(entry)
    t0 = time.monotonic()
    folder = out / entry.id
    folder.mkdir(parents=True, exist_ok=True)
    cwd = Path(tempfile.mkdtemp(prefix="shiftscope-zoo-cwd-"))
    stage = "build"
    try:
        torch.manual_seed(SEED)
        model = entry.build().eval()
        gen = torch.Generator().manual_seed(SEED)
        pixels = torch.rand(N, 3, entry.size, entry.size, generator=gen)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = ((pixels - mean) / std).contiguous()  # what the recorder gets: NCHW
        torch_x = x.permute(0, 2, 3, 1).contiguous() if entry.channels_last else x
        input_path = folder / "input.f32"
        x.numpy().astype("<f4").tofile(input_path)
        one_path = folder / "input1.f32"
        x[:1].numpy().astype("<f4").tofile(one_path)

        stage = "export"
        t = time.monotonic()
        path = export(entry, model, torch_x, folder)
        export_s = time.monotonic() - t
        result.notes.append(describe_graph(path))
        folded = foldable_without_nodes(model, modules_with_nodes(path, model))

        stage = "pytorch"
        calls, ref_logits = run_reference(model, torch_x, entry.logits_index)
        del model

        if cli is not None:
            result.cli, ok = run_cli(cli, path, cwd)
            if not ok:
                result.failed = True
                result.status = "FAIL: `layers`: " + result.cli

        stage = "record"
        t = time.monotonic()
        size = entry.size
        manifest, arrays = record(
            recorder, path, input_path, N, 3, size, size, folder / "default", [], cwd
        )
        record_s = time.monotonic() - t
        try:
            all_manifest, _ = record(
                recorder, path, one_path, 1, 3, size, size, folder / "all", ["all"], cwd
            )
            total = str(len(all_manifest["layers"]))
        except RuntimeError as e:
            total = "?"
            result.notes.append(f"selector 'all' failed: {e}")
        result.layers = f"{total} / {len(manifest['layers'])}"

        stage = "compare"
        tol = entry.tolerance
        problems = []
        logits_entry = manifest["logits"]
        rel, reason = rel_error(arrays[logits_entry["file"]], ref_logits)
        result.logits = reason or fmt(rel)
        if reason or rel > tol:
            problems.append(f"logits {reason or fmt(rel)}")

        worst, worst_name, mapped = None, "", 0
        tensor_names = graph_tensor_names(path)
        for layer in manifest["layers"]:
            values = arrays[layer["file"]]
            names = [layer["name"]] + [
                a for a in layer.get("aliases", []) if a not in tensor_names and a != layer["name"]
            ]
            layer_mapped = False
            for i, name in enumerate(names):
                label, expected = reference_for(name, calls, folded)
                shown = layer["name"] if i == 0 else f"{layer['name']} (alias {name})"
                if expected is None:
                    if i == 0:
                        result.details.append(f"{shown}: skipped ({label})")
                    continue
                layer_mapped = True
                rel, reason = rel_error(values, expected)
                result.details.append(
                    f"{shown} -> {label}: " + (reason or f"rel {fmt(rel)}")
                    + ("" if not reason and rel <= tol else "  FAIL")
                )
                if reason or rel > tol:
                    problems.append(f"{shown}: {reason or 'rel ' + fmt(rel)}")
                if worst is None or rel > worst:
                    worst, worst_name = rel, shown
            mapped += layer_mapped
        selected = len(manifest["layers"])
        if worst is None:
            result.worst = f"- (0/{selected} mapped)"
        else:
            result.worst = f"{fmt(worst)} ({mapped}/{selected} mapped; {worst_name})"
        if problems:
            result.failed = True
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            cli_failure = f"; {result.status}" if result.status else ""
            result.status = "FAIL: " + problems[0] + more + cli_failure
        elif not result.failed:
            result.status = "PASS" if mapped else "PASS (logits only; no layer maps to a module)"
        result.notes.append(
            f"export {export_s:.1f}s, record (default, N={N}) {record_s:.1f}s; "
            f"tolerance rel <= {tol:g}"
        )
    except Exception as e:  # one model failing never stops the zoo
        result.failed = True
        text = str(e).strip().splitlines()
        reason = text[0] if text else type(e).__name__
        if stage not in ("record",):
            reason = f"{stage}: {type(e).__name__}: {reason}"
        result.status = f"FAIL: {reason}" + (f"; {result.status}" if result.status else "")
        if stage not in ("record",):
            result.notes.append("".join(traceback.format_exception_only(type(e), e)).strip())
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    result.seconds = time.monotonic() - t0
    return result


def graph_tensor_names(path):
    graph = onnx.load(str(path), load_external_data=False).graph
    names = {v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    for node in graph.node:
        names.update(node.output)
    return names


# --------------------------------------------------------------------------- table


def cell(text, limit=160):
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_table(results, cli_note):
    print()
    print(
        "| model | exporter / variant | layers (all / default) | logits rel | "
        "worst layer rel (default-selected) | `shiftscope layers`, `extract` | status |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {cell(r.entry.model)} | {cell(r.entry.variant)} | {r.layers} | {cell(r.logits)} | "
            f"{cell(r.worst)} | {cell(r.cli)} | {cell(r.status, 300)} |"
        )
    if cli_note:
        print(f"\n{cli_note}")


def main():
    parser = argparse.ArgumentParser(
        description="Export a zoo of ONNX models and check them with shiftscope.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the models here")
    parser.add_argument("--models", default=None, help="comma-separated ids or model names")
    parser.add_argument("--quick", action="store_true", help="skip vit_b_16 and inception_v3")
    parser.add_argument("--recorder", type=Path, default=None, help="the record example binary")
    parser.add_argument("--shiftscope", type=Path, default=None, help="the shiftscope CLI")
    parser.add_argument("--details", action="store_true", help="print every layer's mapping")
    parser.add_argument("--list", action="store_true", help="list the zoo and exit")
    args = parser.parse_args()

    if args.list:
        for e in ZOO:
            print(f"{e.id:<28} {e.model}: {e.variant}" + ("  (big)" if e.big else ""))
        return 0
    entries = list(ZOO)
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [w for w in wanted if not any(w in (e.id, e.model) for e in ZOO)]
        if unknown or not wanted:
            sys.stderr.write(
                f"unknown zoo entries {unknown}; choose from {', '.join(e.id for e in ZOO)}\n"
            )
            return 2
        entries = [e for e in ZOO if e.id in wanted or e.model in wanted]
    if args.quick:
        entries = [e for e in entries if not e.big]
    if not entries:
        sys.stderr.write("nothing to check (--quick left no entry)\n")
        return 2

    if args.recorder is not None:
        recorder = args.recorder.resolve()
    else:
        candidates = []
        if os.environ.get("CARGO_TARGET_DIR"):
            target = Path(os.environ["CARGO_TARGET_DIR"]).resolve()
            candidates.append(target / "release" / "examples" / "record")
        candidates.append(REPO_ROOT / "target" / "release" / "examples" / "record")
        recorder = next((c for c in candidates if c.is_file()), candidates[0])
    if not recorder.is_file():
        sys.stderr.write(
            f"no recorder at {recorder}; build it with\n"
            "  cargo build --release -j 2 -p shiftscope-onnx "
            "--example record\nor pass --recorder PATH\n"
        )
        return 2
    cli = find_cli(args.shiftscope)
    cli_note = ""
    if args.shiftscope is not None and cli is None:
        sys.stderr.write(f"no shiftscope binary at {args.shiftscope}\n")
        return 2
    if cli is None:
        cli_note = (
            "(`shiftscope layers` column skipped: no shiftscope binary under $CARGO_TARGET_DIR, "
            f"{CI_TARGET} or {REPO_ROOT / 'target'} (debug or release); "
            "build it or pass --shiftscope PATH)"
        )

    torch.set_num_threads(2)
    started = time.monotonic()
    temp = None
    if args.out is None:
        temp = tempfile.mkdtemp(prefix="shiftscope-zoo-")
        out = Path(temp)
    else:
        out = args.out.resolve()
        out.mkdir(parents=True, exist_ok=True)
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}"
    )
    print(f"recorder: {recorder}")
    print(f"shiftscope CLI: {cli or 'none'}")
    print(f"models in: {out}" + (" (temporary)" if temp else ""))
    print(
        f"inputs: {N} random images (uniform pixels, ImageNet mean/std), float32 NCHW, "
        f"seed {SEED}; "
        f"rel = max|shiftscope - pytorch| / max|pytorch|"
    )
    results = []
    try:
        for entry in entries:
            print(f"  {entry.id} ...", end="", flush=True)
            result = check(entry, out, recorder, cli)
            print(f" {result.seconds:.0f}s, {'FAIL' if result.failed else 'PASS'}", flush=True)
            results.append(result)
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)

    print_table(results, cli_note)
    print("\nnotes:")
    for r in results:
        print(f"- {r.entry.id} ({r.seconds:.0f}s):")
        for note in r.notes:
            print(f"    {note}")
        if args.details:
            for d in r.details:
                print(f"      {d}")
    failed = sum(r.failed for r in results)
    total = time.monotonic() - started
    print(f"\n{len(results) - failed}/{len(results)} passed; total {total:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
