#!/usr/bin/env python3
"""Make the small ONNX models that the ONNX adapter's tests load.

Writes two hand-built models into tests/fixtures/models/:

  cnn.onnx  a small residual CNN: three 3x3 convolutions with a skip
            connection, global average pooling and a linear head.
  cnn_qdq.onnx  cnn.onnx quantised to int8 (QDQ) by onnxruntime's quantiser.
  vit.onnx  a tiny vision transformer: 4x4 patch embedding, a learned CLS
            token, positional embedding, two pre-norm single-head
            transformer blocks (GELU written with Erf) and a linear head on
            the CLS token.

Both take "image" float32 [batch, 3, 16, 16] and give "logits" float32
[batch, 10]; "batch" is a symbolic (dynamic) dimension. Intermediate tensors
have readable names (e.g. "conv1_relu", "block1_add", "block2_mlp_gelu") so
tests can tap them. The class names are stored as JSON in the model metadata
under the key "class_names".

The graphs are built by hand with onnx.helper (no torch), use opset 17 and
IR version 8 so that ONNX Runtime 1.31 and later load them, and carry the
value_info that onnx.shape_inference infers, nothing more. Weights come from
a fixed numpy seed, so re-running the script gives the same bytes.

Each model is checked with onnx.checker and then run with ONNX Runtime (CPU)
at batch 2 and batch 1, if onnxruntime is installed.

Needs: pip install onnx numpy onnxruntime
Run from the repository root:  python3 tools/make_fixture_models.py
"""

import json
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
SEED = 20240601
IMAGE_SHAPE = ["batch", 3, 16, 16]
NUM_CLASSES = 10
CLASS_NAMES = [f"c{i}" for i in range(NUM_CLASSES)]

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "tests" / "fixtures" / "models"
SCRIPT_NAME = "tools/make_fixture_models.py"


class GraphBuilder:
    """Collects nodes and initializers; every node is named after its output."""

    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.initializers = []

    def const(self, name, array):
        """Add an initializer (a constant tensor) and return its name."""
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, name, shape, fan_in):
        """Random normal weight scaled by 1/sqrt(fan_in)."""
        w = self.rng.standard_normal(shape) / math.sqrt(fan_in)
        return self.const(name, w.astype(np.float32))

    def bias(self, name, size):
        """Small random bias."""
        b = 0.01 * self.rng.standard_normal(size)
        return self.const(name, b.astype(np.float32))

    def op(self, op_type, inputs, output, **attrs):
        """Add one node with a single output named `output`; return that name."""
        self.nodes.append(
            helper.make_node(op_type, inputs, [output], name=output, **attrs)
        )
        return output


def scalar(value):
    return np.array(value, dtype=np.float32)


def finish_model(b, name, description):
    """Wrap the builder's nodes into a model, infer shapes, check it."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, IMAGE_SHAPE)
    logits = helper.make_tensor_value_info(
        "logits", TensorProto.FLOAT, ["batch", NUM_CLASSES]
    )
    graph = helper.make_graph(
        b.nodes, name, [image], [logits], initializer=b.initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="shiftscope",
        doc_string=(
            f"shiftscope test fixture: {description}. "
            f"Made by {SCRIPT_NAME}; random weights, not trained."
        ),
    )
    helper.set_model_props(model, {"class_names": json.dumps(CLASS_NAMES)})
    onnx.checker.check_model(model, full_check=True)
    # value_info only where shape inference gives it. data_prop lets it follow
    # Shape -> Gather -> Concat -> Expand, so the ViT's CLS branch keeps the
    # symbolic "batch" dimension instead of an anonymous one.
    model = onnx.shape_inference.infer_shapes(
        model, check_type=True, strict_mode=True, data_prop=True
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def make_cnn(rng):
    """Residual CNN: conv-relu-pool, then a two-conv block with a skip."""
    b = GraphBuilder(rng)
    c = 8
    x = b.op(
        "Conv",
        ["image", b.weight("conv1.weight", (c, 3, 3, 3), 3 * 9), b.bias("conv1.bias", c)],
        "conv1",
        kernel_shape=[3, 3],
        pads=[1, 1, 1, 1],
    )
    x = b.op("Relu", [x], "conv1_relu")
    pool1 = b.op("MaxPool", [x], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    x = b.op(
        "Conv",
        [pool1, b.weight("conv2.weight", (c, c, 3, 3), c * 9), b.bias("conv2.bias", c)],
        "conv2",
        kernel_shape=[3, 3],
        pads=[1, 1, 1, 1],
    )
    x = b.op("Relu", [x], "conv2_relu")
    x = b.op(
        "Conv",
        [x, b.weight("conv3.weight", (c, c, 3, 3), c * 9), b.bias("conv3.bias", c)],
        "conv3",
        kernel_shape=[3, 3],
        pads=[1, 1, 1, 1],
    )
    x = b.op("Add", [x, pool1], "block1_add")
    x = b.op("Relu", [x], "block1_relu")
    x = b.op("GlobalAveragePool", [x], "gap")
    x = b.op("Flatten", [x], "flatten", axis=1)
    b.op(
        "Gemm",
        [x, b.weight("fc.weight", (NUM_CLASSES, c), c), b.bias("fc.bias", NUM_CLASSES)],
        "logits",
        transB=1,
    )
    return finish_model(b, "shiftscope_fixture_cnn", "small residual CNN")


def make_vit(rng):
    """Tiny ViT: 16 patches of 4x4, CLS token, 2 single-head blocks."""
    b = GraphBuilder(rng)
    dim, hidden, patch = 16, 32, 4
    tokens = (16 // patch) ** 2  # 16 patch tokens, plus CLS = 17

    # Patch embedding: [B,3,16,16] -> [B,16,4,4] -> [B,16,16] -> [B,16 tok,16 dim].
    x = b.op(
        "Conv",
        [
            "image",
            b.weight("patch_embed.weight", (dim, 3, patch, patch), 3 * patch * patch),
            b.bias("patch_embed.bias", dim),
        ],
        "patch_embed",
        kernel_shape=[patch, patch],
        strides=[patch, patch],
    )
    # 0 copies the batch dimension from the input, so batch stays dynamic.
    x = b.op(
        "Reshape",
        [x, b.const("patch_flat.shape", np.array([0, dim, -1], dtype=np.int64))],
        "patch_flat",
    )
    patches = b.op("Transpose", [x], "patch_tokens", perm=[0, 2, 1])

    # CLS token [1,1,16] expanded to [B,1,16], batch size read from the input.
    image_shape = b.op("Shape", ["image"], "image_shape")
    batch = b.op(
        "Gather",
        [image_shape, b.const("batch_index", np.array([0], dtype=np.int64))],
        "batch_size",
        axis=0,
    )
    cls_shape = b.op(
        "Concat",
        [batch, b.const("cls_tail_shape", np.array([1, dim], dtype=np.int64))],
        "cls_shape",
        axis=0,
    )
    cls_param = b.const(
        "cls_token", (0.02 * rng.standard_normal((1, 1, dim))).astype(np.float32)
    )
    cls = b.op("Expand", [cls_param, cls_shape], "cls_tokens")
    x = b.op("Concat", [cls, patches], "tokens", axis=1)  # [B,17,16]
    pos = b.const(
        "pos_embed",
        (0.02 * rng.standard_normal((1, tokens + 1, dim))).astype(np.float32),
    )
    x = b.op("Add", [x, pos], "embed")

    inv_sqrt_dim = b.const("attn_scale", scalar(1.0 / math.sqrt(dim)))
    sqrt2 = b.const("gelu_sqrt2", scalar(math.sqrt(2.0)))
    one = b.const("gelu_one", scalar(1.0))
    half = b.const("gelu_half", scalar(0.5))

    def layer_norm(inp, prefix, out):
        g = (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32)
        gamma = b.const(f"{prefix}.gamma", g)
        beta = b.const(f"{prefix}.beta", (0.01 * rng.standard_normal(dim)).astype(np.float32))
        return b.op("LayerNormalization", [inp, gamma, beta], out, axis=-1, epsilon=1e-5)

    for i in (1, 2):
        p = f"block{i}"
        # Attention: pre-norm, single head.
        h = layer_norm(x, f"{p}.ln1", f"{p}_ln1")
        q = b.op("MatMul", [h, b.weight(f"{p}.wq", (dim, dim), dim)], f"{p}_q")
        k = b.op("MatMul", [h, b.weight(f"{p}.wk", (dim, dim), dim)], f"{p}_k")
        v = b.op("MatMul", [h, b.weight(f"{p}.wv", (dim, dim), dim)], f"{p}_v")
        kt = b.op("Transpose", [k], f"{p}_k_t", perm=[0, 2, 1])
        s = b.op("MatMul", [q, kt], f"{p}_scores_raw")
        s = b.op("Mul", [s, inv_sqrt_dim], f"{p}_scores")
        a = b.op("Softmax", [s], f"{p}_attn", axis=-1)
        h = b.op("MatMul", [a, v], f"{p}_context")
        h = b.op("MatMul", [h, b.weight(f"{p}.wo", (dim, dim), dim)], f"{p}_attn_proj")
        x = b.op("Add", [x, h], f"{p}_attn_out")

        # MLP: pre-norm, 16 -> 32 -> 16, GELU(x) = 0.5 * x * (1 + erf(x / sqrt 2)).
        h = layer_norm(x, f"{p}.ln2", f"{p}_ln2")
        h = b.op("MatMul", [h, b.weight(f"{p}.fc1.weight", (dim, hidden), dim)], f"{p}_fc1_matmul")
        h = b.op("Add", [h, b.bias(f"{p}.fc1.bias", hidden)], f"{p}_fc1")
        g = b.op("Div", [h, sqrt2], f"{p}_gelu_div")
        g = b.op("Erf", [g], f"{p}_gelu_erf")
        g = b.op("Add", [g, one], f"{p}_gelu_add")
        g = b.op("Mul", [h, g], f"{p}_gelu_mul")
        h = b.op("Mul", [g, half], f"{p}_mlp_gelu")
        fc2 = b.weight(f"{p}.fc2.weight", (hidden, dim), hidden)
        h = b.op("MatMul", [h, fc2], f"{p}_fc2_matmul")
        h = b.op("Add", [h, b.bias(f"{p}.fc2.bias", dim)], f"{p}_fc2")
        x = b.op("Add", [x, h], f"{p}_out")

    x = layer_norm(x, "final_norm", "final_norm")
    # Scalar index 0 on axis 1 drops the token axis: [B,17,16] -> [B,16].
    x = b.op("Gather", [x, b.const("cls_index", np.array(0, dtype=np.int64))], "cls", axis=1)
    b.op(
        "Gemm",
        [x, b.weight("head.weight", (NUM_CLASSES, dim), dim), b.bias("head.bias", NUM_CLASSES)],
        "logits",
        transB=1,
    )
    return finish_model(b, "shiftscope_fixture_vit", "tiny vision transformer")


def run_with_onnxruntime(path, rng):
    """Run the saved model at batch 2 and batch 1; check shapes and agreement."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("  onnxruntime not installed; skipped the run check")
        return
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp, out = sess.get_inputs()[0], sess.get_outputs()[0]
    assert inp.name == "image" and out.name == "logits", (inp.name, out.name)
    assert inp.shape[0] == "batch" and out.shape[0] == "batch", (inp.shape, out.shape)
    x2 = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    (y2,) = sess.run(["logits"], {"image": x2})
    assert y2.shape == (2, NUM_CLASSES), y2.shape
    assert np.all(np.isfinite(y2))
    (y1,) = sess.run(["logits"], {"image": x2[:1]})
    assert y1.shape == (1, NUM_CLASSES), y1.shape
    # A sample's logits must not depend on what else is in the batch.
    np.testing.assert_allclose(y1[0], y2[0], rtol=1e-4, atol=1e-5)
    print(
        f"  onnxruntime {ort.__version__}: input {inp.shape}, output {out.shape}; "
        f"batch 2 -> {list(y2.shape)}, batch 1 -> {list(y1.shape)}, OK"
    )


def describe(model):
    """Print every node output with its op type, and the inferred shape."""
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.output):
        dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
                for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    print(f"  {len(model.graph.node)} nodes (output name, op type, inferred shape):")
    for node in model.graph.node:
        for out in node.output:
            shape = shapes.get(out, "(not inferred)")
            print(f"    {out:<20} {node.op_type:<20} {shape}")


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    for filename, make in (("cnn.onnx", make_cnn), ("vit.onnx", make_vit)):
        model = make(rng)
        path = OUT_DIR / filename
        onnx.save(model, str(path))
        onnx.checker.check_model(str(path), full_check=True)
        print(f"wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size} bytes)")
        describe(model)
        # Separate generator, so the weights do not depend on whether
        # onnxruntime is installed.
        run_with_onnxruntime(path, np.random.default_rng(SEED + 1))
    make_cnn_qdq(OUT_DIR / "cnn.onnx", OUT_DIR / "cnn_qdq.onnx")


def make_cnn_qdq(source, path):
    """cnn.onnx quantised to int8 the way ONNX Runtime's quantiser writes QDQ models
    (uint8 activations, int8 weights, QuantizeLinear/DequantizeLinear pairs around every
    op; the quantiser folds each Relu into the range of the op before it), calibrated
    on 8 fixed random images."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat,
                                          QuantType, quantize_static)

    class Images(CalibrationDataReader):
        def __init__(self):
            self.rng = np.random.default_rng(SEED + 2)
            self.left = 8

        def get_next(self):
            if self.left == 0:
                return None
            self.left -= 1
            return {"image": self.rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)}

    quantize_static(str(source), str(path), Images(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    print(f"wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
