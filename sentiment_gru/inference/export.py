"""Export a trained classifier to ONNX, built node by node from its weights.

The graph computes exactly what `model(ids, lengths)` computes in eval mode:

- each member's token vectors come from one constant table [vocab_size, embedding_dim],
  with the lexicon's category means folded in by the model's own `embed()`;
- each GRU layer is one ONNX `GRU` node, bidirectional, with `linear_before_reset=1`
  (PyTorch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn))) and `sequence_lens`, so each
  direction reads only a text's real tokens, as `nn.GRU` does on a PackedSequence;
- pooling ("last", "max", "mean" in `config.pooling` order) and the linear classifier;
- an ensemble returns the log of its members' mean probabilities.

Inputs: `ids` int64 [batch, seq] padded with 0, `lengths` int64 [batch] (each in 1..seq).
Output: `logits` float32 [batch, num_classes]. The model's config is stored as JSON in the
metadata under "config". `sentiment_gru.inference.onnx_runtime` runs the file without torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ArtifactsError, ConfigError
from ..files import ONNX_FILE
from ..model.classifier import EnsembleClassifier, GRUClassifier
from .onnx_runtime import ONNX_INSTALL_HINT, OnnxModel, onnxruntime_installed

OPSET = 18
PARITY_TOLERANCE = 1e-5  # largest probability difference from the torch model an exported graph may show


def export_onnx(model: nn.Module, path: str | Path) -> None:
    """Write `model` (a GRUClassifier or EnsembleClassifier) to `path` as a checked ONNX file of its eval-mode forward."""
    try:
        import onnx
    except ImportError:
        raise ConfigError(f"Exporting needs the onnx package: {ONNX_INSTALL_HINT}") from None
    if not isinstance(model, (GRUClassifier, EnsembleClassifier)):
        raise TypeError(f"export_onnx needs a GRUClassifier or EnsembleClassifier. Got {type(model).__name__} instead.")
    config = model.config
    g = _Graph(onnx)
    ids_t = g.op("Transpose", ["ids"], perm=[1, 0])  # [seq, batch]
    seq_lens = g.op("Cast", ["lengths"], to=onnx.TensorProto.INT32)  # [batch]
    real = count = None
    if {"max", "mean"} & set(config.pooling):
        # real[t, b] = t < lengths[b]: [seq, batch, 1]
        seq = g.op("Gather", [g.op("Shape", ["ids"]), g.const(np.array(1, np.int64))], axis=0)  # scalar
        steps = g.op("Range", [g.const(np.array(0, np.int64)), seq, g.const(np.array(1, np.int64))])  # [seq]
        real = g.unsqueeze(g.op("Less", [g.unsqueeze(steps, 1), g.unsqueeze("lengths", 0)]), 2)
    if "mean" in config.pooling:
        count = g.unsqueeze(g.op("Cast", ["lengths"], to=onnx.TensorProto.FLOAT), 1)  # [batch, 1]
    with torch.no_grad():
        if isinstance(model, GRUClassifier):
            _member_logits(g, model, ids_t, seq_lens, real, count, out="logits")
        else:
            log_probs = [
                g.unsqueeze(g.op("LogSoftmax", [_member_logits(g, member, ids_t, seq_lens, real, count)], axis=-1), 0)
                for member in model.members
            ]  # each [1, batch, classes]
            stacked = g.op("Concat", log_probs, axis=0)  # [members, batch, classes]
            mean = g.op("ReduceLogSumExp", [stacked, g.const(np.array([0], np.int64))], keepdims=0)  # [batch, classes]
            g.op("Sub", [mean, g.const(np.array(math.log(len(model.members)), np.float32))], out="logits")

    graph = onnx.helper.make_graph(
        g.nodes, "sentiment_gru",
        inputs=[
            onnx.helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["batch", "seq"]),
            onnx.helper.make_tensor_value_info("lengths", onnx.TensorProto.INT64, ["batch"]),
        ],
        outputs=[onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", config.num_classes])],
        initializer=g.initializers,
    )
    opsets = [onnx.helper.make_opsetid("", OPSET)]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="sentiment_gru",
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.helper.set_model_props(proto, {"config": json.dumps(dataclasses.asdict(config))})
    onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)


class _Graph:
    """Nodes and constant initializers of the graph being built, each output named once."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, array: np.ndarray) -> str:
        name = self._name("const")
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, num_outputs: int = 1, **attrs: Any) -> Any:
        """Append one node; returns its output name, or the list of names when `num_outputs` > 1."""
        outputs = [out or self._name(op_type)] if num_outputs == 1 else [self._name(op_type) for _ in range(num_outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outputs, name=self._name(f"{op_type}_node"), **attrs))
        return outputs[0] if num_outputs == 1 else outputs

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", [x, self.const(np.array([axis], np.int64))])


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def _onnx_gates(w: torch.Tensor) -> torch.Tensor:
    """PyTorch's gate blocks r, z, n (stacked on dim 0) reordered to ONNX's z, r, h."""
    r, z, n = w.chunk(3, dim=0)
    return torch.cat([z, r, n])


def _member_logits(g: _Graph, member: GRUClassifier, ids_t: str, seq_lens: str, real: str | None, count: str | None,
                   out: str | None = None) -> str:
    """One classifier's nodes: ids_t [seq, batch] -> logits [batch, num_classes].

    seq_lens: lengths as int32 [batch]; real: [seq, batch, 1], true at real tokens (for "max" and "mean");
    count: lengths as float [batch, 1] (for "mean").
    """
    config = member.config
    device = member.embedding.weight.device
    table = member.embed(torch.arange(config.vocab_size, device=device))  # [vocab, embedding_dim], lexicon folded in
    x = g.op("Gather", [g.const(_numpy(table)), ids_t], axis=0)  # [seq, batch, embedding_dim]
    gru = member.encoder.gru
    H = gru.hidden_size
    for layer in range(gru.num_layers):
        params = {
            name: torch.stack([_onnx_gates(getattr(gru, f"{name}_l{layer}{suffix}")) for suffix in ("", "_reverse")])
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }  # weights [2, 3H, in] and [2, 3H, H], biases [2, 3H]; forward then backward
        bias = torch.cat([params["bias_ih"], params["bias_hh"]], dim=1)  # [2, 6H]: Wb then Rb
        y, y_h = g.op(
            "GRU", [x, g.const(_numpy(params["weight_ih"])), g.const(_numpy(params["weight_hh"])), g.const(_numpy(bias)),
                    seq_lens],
            num_outputs=2, direction="bidirectional", hidden_size=H, linear_before_reset=1,
        )  # y: [seq, 2, batch, H], y_h: [2, batch, H]
        y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # [seq, batch, 2, H]
        x = g.op("Reshape", [y, g.const(np.array([0, 0, -1], np.int64))])  # [seq, batch, 2H]: forward then backward
    pooled = []
    for kind in config.pooling:
        if kind == "last":
            # the top layer's final states: forward after the last real token, backward after the first
            h = g.op("Transpose", [y_h], perm=[1, 0, 2])  # [batch, 2, H]
            pooled.append(g.op("Reshape", [h, g.const(np.array([0, -1], np.int64))]))  # [batch, 2H]
        elif kind == "max":
            masked = g.op("Where", [real, x, g.const(np.array(-np.inf, np.float32))])  # [seq, batch, 2H]
            pooled.append(g.op("ReduceMax", [masked, g.const(np.array([0], np.int64))], keepdims=0))  # [batch, 2H]
        else:
            # the ONNX spec leaves y past a text's length unspecified (onnxruntime writes zeros): zero it here
            masked = g.op("Where", [real, x, g.const(np.array(0.0, np.float32))])  # [seq, batch, 2H]
            total = g.op("ReduceSum", [masked, g.const(np.array([0], np.int64))], keepdims=0)  # [batch, 2H]
            pooled.append(g.op("Div", [total, count]))
    features = g.op("Concat", pooled, axis=-1) if len(pooled) > 1 else pooled[0]  # [batch, 2H * len(pooling)]
    linear = member.classifier
    return g.op("Gemm", [features, g.const(_numpy(linear.weight)), g.const(_numpy(linear.bias))], out=out, transB=1)


def export_folder(path: str | Path, check_texts: int = 64, seed: int = 0) -> Path:
    """Write `model.onnx` into the model folder `path` (the folder is rewritten whole, manifest included, or not at all).

    With onnxruntime installed, the graph is first checked against the torch model on `check_texts` random token
    sequences of mixed lengths, batched together: probabilities must agree within PARITY_TOLERANCE.
    """
    from .folder import load_model, rewrite_folder

    loaded = load_model(path)

    def write(staging: Path) -> None:
        export_onnx(loaded.model, staging / ONNX_FILE)
        if onnxruntime_installed():
            _check_parity(loaded.model, staging / ONNX_FILE, check_texts, seed, loaded.tokenizer.truncation["max_length"])

    rewrite_folder(path, path, write)
    return Path(path) / ONNX_FILE


def _check_parity(model: nn.Module, onnx_path: Path, texts: int, seed: int, max_length: int) -> None:
    """Refuse a graph whose probabilities differ from the torch model's by more than PARITY_TOLERANCE."""
    from ..data.batching import collate

    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_length + 1, (texts,), generator=generator).tolist()
    sequences = [torch.randint(1, model.config.vocab_size, (n,), generator=generator).tolist() for n in lengths]
    ids, lens = collate(sequences, model.config.pad_id)
    with torch.no_grad():
        expected = torch.softmax(model(ids, lens).float(), dim=-1).numpy()
    logits = OnnxModel(onnx_path).logits(ids.numpy(), lens.numpy())
    found = np.exp(logits - logits.max(axis=1, keepdims=True))
    found /= found.sum(axis=1, keepdims=True)
    worst = float(np.abs(found - expected).max())
    if worst > PARITY_TOLERANCE:
        raise ArtifactsError(f"The exported graph's probabilities differ from the model's by {worst:.2g} "
                             f"(more than {PARITY_TOLERANCE:g}); model.onnx was not written. Please report this.")
