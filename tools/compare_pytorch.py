#!/usr/bin/env python3
"""Check shiftscope's recorded activations against PyTorch forward hooks.

Builds torchvision ResNet-18 and a vision transformer with random weights (seed
0, eval mode), exports each to ONNX with PyTorch's legacy (TorchScript) exporter,
records it with shiftscope's ONNX adapter (the `record` example binary) on four
random inputs, computes the same activations in PyTorch with forward hooks on the
same inputs, and prints, per recorded layer, the maximum absolute and relative
error. Each model is recorded twice: with shiftscope's default layer selection,
and with the selector "all" (every candidate tensor), of which those that map to
a module call's output or input (rules below) are compared.

The ViT is torchvision's vit_b_16 by default (`--vit small`: a 4-layer,
192-wide VisionTransformer, for slow machines). Its classifier head is
zero-initialised by torchvision, which would make the logits all zero; the
script re-initialises it with nn.Linear's default random init.

Mapping an ONNX tensor to a PyTorch module call. The legacy exporter names nodes
by module scope: "/layer1/layer1.0/relu_1/Relu" is a Relu in the scope of module
layer1 > layer1.0 > relu, where a "_k" suffix on the last scope part means the
module's k-th call (0-based; no suffix: call 0), so this is the output of the
second call of `layer1.0.relu` (BasicBlock reuses its ReLU). Each scope part is a
module's unqualified name (its attribute name, or "layer1.0" for a numbered
child). A tensor is the output of its scope's module call only when its node is
the last node (Constant nodes aside) of that scope in graph order and the tensor
is the node's first output; other tensors are interior to a module and are
skipped ("skipped: interior") unless a rule below applies. Further rules:
  * "logits" (the graph output) is the model's output;
  * the first input of the node producing "logits" is the input of the
    classifier module (fc for ResNet, heads.head for the ViT), taken with a
    forward pre-hook;
  * an interior tensor that is the first input of the first node of a module's
    scope is that module call's input (e.g. a BasicBlock's residual Add is the
    input of its second ReLU call), taken with a forward pre-hook; shown as
    "input of layer1.0.relu#1";
  * when a module call's output goes straight into a module that has no node in
    the ONNX graph (the exporter folds an eval-mode BatchNorm into the
    preceding Conv and drops Dropout), the ONNX tensor is compared with the
    output of that module instead; the mapping is shown as "conv1+bn1".
PyTorch tensors are pooled as shiftscope pools them: rank 4 [N,C,H,W] -> mean
over H,W; rank 3 [N,T,D] -> mean over tokens; rank 2 as is (pooling done in
float64 on the PyTorch side).

Errors, per layer (over all N x C pooled values):
  max abs = max |shiftscope - pytorch|
  rel     = max abs / max |pytorch|   (relative to the layer's scale)
A layer passes when rel <= 1e-4. The script exits 1 if any compared layer fails
(a shape mismatch counts as a failure), 2 on a usage or setup error.

Run from anywhere (paths are relative to the repository root):

  pip install torch torchvision onnx        # CPU wheels are enough
  cargo build --release -p shiftscope-onnx --example record
  python3 tools/compare_pytorch.py

Options:
  --recorder PATH    the record binary (default: $CARGO_TARGET_DIR or
                     <repo>/target, then release/examples/record)
  --out DIR          keep the exported models, inputs and recordings in DIR
                     (default: a temporary directory, removed at the end)
  --models LIST      comma-separated, from resnet18,vit (default: both)
  --vit b16|small    which ViT (default: b16)
  --list-skipped     also list every skipped tensor of the "all" recordings
                     (the default-selection tables always list every layer)
"""

import argparse
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
import torchvision

REPO_ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4
SEED = 0
N, C, H, W = 4, 3, 224, 224
MODEL_NAMES = ("resnet18", "vit")


# --------------------------------------------------------------------------- models


def build_model(name, vit_config):
    """The model (eval mode, random weights from seed 0) and a description of it."""
    torch.manual_seed(SEED)
    if name == "resnet18":
        model = torchvision.models.resnet18(weights=None)
        description = "torchvision resnet18(weights=None)"
    elif vit_config == "b16":
        model = torchvision.models.vit_b_16(weights=None)
        description = "torchvision vit_b_16(weights=None): 12 layers, 12 heads, width 768"
    else:
        model = torchvision.models.VisionTransformer(
            image_size=224,
            patch_size=16,
            num_layers=4,
            num_heads=4,
            hidden_dim=192,
            mlp_dim=768,
        )
        description = (
            "torchvision VisionTransformer(image_size=224, patch_size=16, num_layers=4, "
            "num_heads=4, hidden_dim=192, mlp_dim=768)"
        )
    if name == "vit":
        # torchvision zero-initialises the head; give it random weights so logits mean something.
        model.heads.head.reset_parameters()
        description += ", head re-initialised randomly"
    model.eval()
    return model, description


def export(model, x, path):
    """Exports with the legacy TorchScript exporter (dynamo=False where the kwarg exists)."""
    kwargs = dict(
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), **kwargs)


# --------------------------------------------------------------------------- recorder


def default_recorder():
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    if not target.is_absolute():
        target = Path.cwd() / target
    return target / "release" / "examples" / "record"


def record(recorder, model_path, input_path, out_dir, selectors):
    """Runs the recorder; returns [(entry, array)] for its layers, then the logits."""
    cmd = [str(recorder), str(model_path), str(input_path), str(N), str(C), str(H), str(W)]
    cmd += [str(out_dir)] + list(selectors)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise RuntimeError(f"the recorder failed ({done.returncode}): {' '.join(cmd)}")
    manifest = json.loads((Path(out_dir) / "manifest.json").read_text())
    entries = list(manifest["layers"])
    if all(e["name"] != manifest["logits"]["name"] for e in entries):
        entries.append(manifest["logits"])
    out = []
    for entry in entries:
        data = np.fromfile(Path(out_dir) / entry["file"], dtype="<f4")
        out.append((entry, data.reshape(entry["shape"])))
    return out


# --------------------------------------------------------------------------- ONNX side


def scope_parts(node_name):
    """"/layer1/layer1.0/relu_1/Relu" -> ["layer1", "layer1.0", "relu_1"]."""
    if not node_name.startswith("/"):
        return []
    return node_name.split("/")[1:-1]


class OnnxScopes:
    """The graph's nodes by scope: who produces a tensor, and each scope's last node."""

    def __init__(self, path):
        graph = onnx.load(str(path), load_external_data=False).graph
        self.nodes = list(graph.node)
        self.output_name = graph.output[0].name
        self.producer = {}
        for i, node in enumerate(self.nodes):
            for j, out in enumerate(node.output):
                self.producer[out] = (i, j)
        # For every scope prefix "/a/b" (and "" for the root): its first and last
        # non-Constant node; and which nodes read each tensor as their first input.
        self.first_in_scope = {}
        self.last_in_scope = {}
        self.scopes_with_nodes = set()
        self.first_input_of = {}
        for i, node in enumerate(self.nodes):
            parts = scope_parts(node.name)
            for depth in range(len(parts) + 1):
                prefix = "/".join([""] + parts[:depth])
                self.scopes_with_nodes.add(prefix)
                if node.op_type != "Constant":
                    self.first_in_scope.setdefault(prefix, i)
                    self.last_in_scope[prefix] = i
            if node.input:
                self.first_input_of.setdefault(node.input[0], []).append(i)
        head_node = self.nodes[self.producer[self.output_name][0]]
        self.head_input = head_node.input[0]
        self.head_scope = scope_parts(head_node.name)


# --------------------------------------------------------------------------- PyTorch side


def pool(t):
    """Pools like shiftscope: rank 4 spatial mean, rank 3 token mean, rank 2 as is."""
    t = t.detach().to(torch.float64)
    if t.dim() == 4:
        t = t.mean(dim=(2, 3))
    elif t.dim() == 3:
        t = t.mean(dim=1)
    elif t.dim() != 2:
        return None
    return t.numpy()


def first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    return None


@dataclass
class Call:
    input_obj: object = None
    input_pooled: object = None
    output_obj: object = None
    output_pooled: object = None


@dataclass
class Reference:
    """Every module call of one forward pass, in order, with pooled inputs and outputs."""

    model: torch.nn.Module
    calls: dict = field(default_factory=dict)  # qualified name -> [Call]
    children: dict = field(default_factory=dict)  # (parent, unqualified) -> qualified
    scope_path: dict = field(default_factory=dict)  # qualified -> "/layer1/layer1.0/conv1"
    output: object = None


def unqualified(qualified_name):
    """The exporter's scope name: the last atom, reaching back past numeric atoms."""
    atoms = qualified_name.split(".")
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isnumeric():
            return ".".join(atoms[i:])
    return qualified_name


def run_reference(model, x):
    ref = Reference(model)
    handles = []

    def walk(module, qualified, path):
        ref.scope_path[qualified] = path
        for child_name, child in module.named_children():
            child_q = f"{qualified}.{child_name}" if qualified else child_name
            ref.children[(qualified, unqualified(child_q))] = child_q
            walk(child, child_q, f"{path}/{unqualified(child_q)}")

    walk(model, "", "")
    for qualified, module in model.named_modules():
        ref.calls[qualified] = []

        def pre_hook(_module, args, q=qualified):
            call = Call()
            tensor = first_tensor(args)
            if tensor is not None:
                call.input_obj = tensor
                call.input_pooled = pool(tensor)
            ref.calls[q].append(call)

        def hook(_module, _args, output, q=qualified):
            call = ref.calls[q][-1]
            tensor = first_tensor(output)
            if tensor is not None:
                # Pooled now: later in-place ops (ReLU(inplace=True), out += identity) change it.
                call.output_obj = tensor
                call.output_pooled = pool(tensor)

        handles.append(module.register_forward_pre_hook(pre_hook))
        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            ref.output = pool(model(x))
    finally:
        for h in handles:
            h.remove()
    return ref


# --------------------------------------------------------------------------- mapping


@dataclass
class Mapping:
    label: str = ""  # the module call, e.g. "layer1.0.relu#1", "conv1+bn1"
    reference: object = None  # pooled PyTorch values
    skipped: str = ""  # reason when not compared


def module_call(ref, parts):
    """Scope parts -> (qualified module name, call index), or None."""
    qualified, call = "", 0
    for i, part in enumerate(parts):
        child = ref.children.get((qualified, part))
        if child is None and i == len(parts) - 1:
            m = re.fullmatch(r"(.+)_(\d+)", part)
            if m and (qualified, m.group(1)) in ref.children:
                child, call = ref.children[(qualified, m.group(1))], int(m.group(2))
        if child is None:
            return None
        qualified = child
    return qualified, call


def call_label(qualified, call):
    return (qualified or "<model>") + (f"#{call}" if call else "")


def map_tensor(name, scopes, ref):
    if name == scopes.output_name:
        return Mapping("<model output>", ref.output)
    if name == scopes.head_input:
        found = module_call(ref, scopes.head_scope)
        if found is None:
            return Mapping(skipped="skipped: no module (classifier head)")
        qualified, call = found
        calls = ref.calls[qualified]
        if call >= len(calls) or calls[call].input_pooled is None:
            return Mapping(skipped=f"skipped: no call {call} of {qualified}")
        return Mapping(f"input of {call_label(qualified, call)}", calls[call].input_pooled)
    if name not in scopes.producer:
        return Mapping(skipped="skipped: no producing node")
    index, output_index = scopes.producer[name]
    node = scopes.nodes[index]
    parts = scope_parts(node.name)
    prefix = "/".join([""] + parts)
    if output_index != 0 or scopes.last_in_scope.get(prefix) != index:
        return map_module_input(name, scopes, ref)
    found = module_call(ref, parts)
    if found is None:
        return Mapping(skipped="skipped: no module")
    qualified, call = found
    calls = ref.calls[qualified]
    if call >= len(calls) or calls[call].output_pooled is None:
        return Mapping(skipped=f"skipped: no call {call} of {call_label(qualified, 0)}")
    label = call_label(qualified, call)
    current = calls[call]
    # Follow the output into modules the exporter left without nodes (folded BatchNorm,
    # dropped Dropout): the ONNX tensor holds their output.
    for _ in range(8):
        nxt = None
        for q, q_calls in ref.calls.items():
            for k, c in enumerate(q_calls):
                if c.input_obj is current.output_obj and c is not current:
                    path = ref.scope_path[q] + (f"_{k}" if k else "")
                    if path not in scopes.scopes_with_nodes and c.output_pooled is not None:
                        nxt = (q, k, c)
                        break
            if nxt:
                break
        if nxt is None:
            break
        q, k, current = nxt
        label += "+" + call_label(unqualified(q), k)
    return Mapping(label, current.output_pooled)


def map_module_input(name, scopes, ref):
    """An interior tensor that a module call starts from: the first input of the first node
    of that module's scope (outermost such module); compared with the call's input."""
    for index in scopes.first_input_of.get(name, []):
        parts = scope_parts(scopes.nodes[index].name)
        for depth in range(1, len(parts) + 1):
            if scopes.first_in_scope.get("/".join([""] + parts[:depth])) != index:
                continue
            found = module_call(ref, parts[:depth])
            if found is None:
                continue
            qualified, call = found
            calls = ref.calls[qualified]
            if call < len(calls) and calls[call].input_pooled is not None:
                return Mapping(f"input of {call_label(qualified, call)}", calls[call].input_pooled)
    return Mapping(skipped="skipped: interior")


# --------------------------------------------------------------------------- comparison


@dataclass
class Row:
    name: str
    kind: str
    mapping: str
    max_abs: float = float("nan")
    scale: float = float("nan")
    rel: float = float("nan")
    status: str = ""


def compare(recorded, scopes, ref):
    rows = []
    for entry, values in recorded:
        # The mapping reads the legacy exporter's scoped tensor name, which the adapter keeps
        # as an alias of a layer it names by module path.
        tensor = next((a for a in entry.get("aliases", []) if a.startswith("/")), entry["name"])
        mapping = map_tensor(tensor, scopes, ref)
        if mapping.skipped:
            rows.append(Row(entry["name"], entry["kind"], mapping.skipped, status="skip"))
            continue
        expected = mapping.reference
        row = Row(entry["name"], entry["kind"], mapping.label)
        if tuple(expected.shape) != tuple(values.shape):
            row.status = f"FAIL (shape {list(values.shape)} vs pytorch {list(expected.shape)})"
            rows.append(row)
            continue
        diff = np.abs(values.astype(np.float64) - expected)
        row.max_abs = float(diff.max()) if diff.size else 0.0
        row.scale = float(np.abs(expected).max()) if expected.size else 0.0
        if row.scale > 0:
            row.rel = row.max_abs / row.scale
        else:
            row.rel = 0.0 if row.max_abs == 0 else float("inf")
        row.status = "PASS" if row.rel <= TOLERANCE else "FAIL"
        rows.append(row)
    return rows


def print_table(title, rows, list_skipped):
    print(f"\n{title}")
    shown = [r for r in rows if list_skipped or r.status != "skip"]
    name_w = max([len("layer (ONNX tensor)")] + [len(r.name) for r in shown])
    map_w = max([len("PyTorch module call")] + [len(r.mapping) for r in shown])
    header = (
        f"  {'layer (ONNX tensor)':<{name_w}}  {'kind':<6}  {'PyTorch module call':<{map_w}}"
        f"  {'max abs':>9}  {'max|ref|':>9}  {'rel':>9}  result"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in shown:
        if r.status == "skip":
            nums = f"  {'-':>9}  {'-':>9}  {'-':>9}  skip"
        else:
            nums = f"  {r.max_abs:9.2e}  {r.scale:9.2e}  {r.rel:9.2e}  {r.status}"
        print(f"  {r.name:<{name_w}}  {r.kind:<6}  {r.mapping:<{map_w}}{nums}")
    hidden = len(rows) - len(shown)
    if hidden:
        reasons = {}
        for r in rows:
            if r.status == "skip":
                reasons[r.mapping] = reasons.get(r.mapping, 0) + 1
        summary = ", ".join(f"{n} {k[len('skipped: '):]}" for k, n in sorted(reasons.items()))
        print(f"  ({hidden} skipped tensors not listed: {summary}; --list-skipped lists them)")


# --------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(
        description="Compare shiftscope recordings with PyTorch forward hooks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recorder", type=Path, default=None, help="the record example binary")
    parser.add_argument("--out", type=Path, default=None, help="keep the work files here")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="resnet18,vit")
    parser.add_argument("--vit", choices=("b16", "small"), default="b16", help="which ViT")
    parser.add_argument(
        "--list-skipped", action="store_true", help="list skipped tensors of the 'all' runs"
    )
    args = parser.parse_args()

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown or not models:
        parser.error(f"unknown model(s) {unknown}; choose from {','.join(MODEL_NAMES)}")
    recorder = (args.recorder or default_recorder()).resolve()
    if not recorder.is_file():
        sys.stderr.write(
            f"no recorder at {recorder}; build it with\n"
            "  cargo build --release -p shiftscope-onnx --example record\n"
            "or pass --recorder PATH\n"
        )
        return 2

    started = time.monotonic()
    temp = None
    if args.out is None:
        temp = tempfile.mkdtemp(prefix="shiftscope-compare-")
        out = Path(temp)
    else:
        out = args.out.resolve()
        out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}")
    print(f"recorder: {recorder}")
    print(f"work dir: {out}" + (" (temporary)" if temp else ""))
    print(f"inputs: N={N} standard-normal images [{N},{C},{H},{W}], seed {SEED}")
    print(
        f"errors per layer over the pooled [N, C] values: max abs = max|shiftscope - pytorch|, "
        f"rel = max abs / max|pytorch|; PASS when rel <= {TOLERANCE:g}"
    )

    x = torch.randn(N, C, H, W, generator=torch.Generator().manual_seed(SEED))
    input_path = out / "input.f32"
    x.numpy().astype("<f4").tofile(input_path)

    totals = []  # (model, selection, rows)
    try:
        for name in models:
            t0 = time.monotonic()
            model, description = build_model(name, args.vit)
            onnx_path = out / f"{name}.onnx"
            export(model, x, onnx_path)
            t1 = time.monotonic()
            scopes = OnnxScopes(onnx_path)
            ref = run_reference(model, x)
            t2 = time.monotonic()
            recordings = {}
            for selection, selectors in (("default", []), ("all", ["all"])):
                recordings[selection] = record(
                    recorder, onnx_path, input_path, out / f"{name}-{selection}", selectors
                )
            t3 = time.monotonic()
            print(f"\n=== {name}: {description}")
            print(
                f"    export {t1 - t0:.1f}s, PyTorch reference {t2 - t1:.1f}s, "
                f"shiftscope recordings {t3 - t2:.1f}s"
            )
            for selection, recorded in recordings.items():
                rows = compare(recorded, scopes, ref)
                title = (
                    f"{name}, shiftscope's default selection ({len(rows)} layers)"
                    if selection == "default"
                    else f"{name}, selector 'all' ({len(rows)} tensors)"
                )
                print_table(title, rows, list_skipped=args.list_skipped or selection == "default")
                totals.append((name, selection, rows))
            del ref, model
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)

    print("\n=== summary")
    failed = 0
    for name, selection, rows in totals:
        compared = [r for r in rows if r.status != "skip"]
        fails = [r for r in compared if r.status != "PASS"]
        failed += len(fails)
        worst = max(compared, key=lambda r: (np.nan_to_num(r.rel, nan=np.inf)), default=None)
        reasons = {}
        for r in rows:
            if r.status == "skip":
                reasons[r.mapping] = reasons.get(r.mapping, 0) + 1
        skipped = ", ".join(f"{n} {k[len('skipped: '):]}" for k, n in sorted(reasons.items()))
        worst_text = f"worst rel {worst.rel:.2e} ({worst.name})" if worst else "nothing compared"
        print(
            f"  {name:<8} {selection:<7}: {len(compared)} compared, {len(fails)} failed, "
            f"{worst_text}; {len(rows) - len(compared)} skipped"
            + (f" ({skipped})" if skipped else "")
        )
        if selection == "default":
            for r in rows:
                if r.status == "skip":
                    print(f"      default-selected but not compared: {r.name} ({r.mapping})")
    print(f"  total time {time.monotonic() - started:.1f}s")
    print("FAIL" if failed else "PASS", f"(tolerance rel <= {TOLERANCE:g})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
