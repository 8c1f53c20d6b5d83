"""ONNX export parity: onnxruntime gives the torch model's probabilities, padding changes nothing, no torch needed."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

from sentiment_gru.config import ModelConfig  # noqa: E402
from sentiment_gru.errors import ArtifactsError, ConfigError  # noqa: E402
from sentiment_gru.inference.export import export_onnx  # noqa: E402
from sentiment_gru.model.classifier import EnsembleClassifier, GRUClassifier  # noqa: E402
from sentiment_gru.inference.onnx_runtime import OnnxModel  # noqa: E402

VOCAB = 200
SEQ = 12
PROB_ATOL = 1e-5
LOGIT_ATOL = 1e-4


def make_model(seed: int, lexicon: str = "none", **options) -> GRUClassifier | EnsembleClassifier:
    """A random-weight classifier in eval mode; `lexicon`: "none", "lexicon", or "lexicon+rows" (with token_rows)."""
    torch.manual_seed(seed)
    if lexicon != "none":
        options.update(lexicon_categories=30, lexicon_entries=400, embedding_rows=120 if lexicon == "lexicon+rows" else 0)
    config = ModelConfig(vocab_size=VOCAB, num_classes=3, embedding_dim=16, hidden_size=12, **options)
    model = GRUClassifier(config) if config.ensemble_size == 1 else EnsembleClassifier(config)
    for member in model.members if isinstance(model, EnsembleClassifier) else [model]:
        if lexicon != "none":
            member.lexicon_ids.copy_(torch.randint(0, config.lexicon_categories, (config.lexicon_entries,)))
            ends = torch.sort(torch.randint(0, config.lexicon_entries + 1, (VOCAB,))).values
            member.lexicon_offsets.copy_(torch.cat([torch.zeros(1, dtype=torch.long), ends]))
        if config.embedding_rows:
            member.token_rows.copy_(torch.randint(0, config.embedding_rows, (VOCAB,)))
            member.token_rows[0] = 0
        assert not member.embedding.weight[0].any()  # the [PAD] row is zero, as training keeps it
    return model.eval()


def padded_batch(lengths: list[int], seq: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids [len(lengths), seq], 0 past each length, and the lengths [batch] int64."""
    ids = torch.randint(1, VOCAB, (len(lengths), seq), generator=torch.Generator().manual_seed(seed))
    lengths = torch.tensor(lengths)
    return ids.masked_fill(torch.arange(seq) >= lengths[:, None], 0), lengths


def length_cases() -> dict[str, list[int]]:
    rng = np.random.default_rng(0)
    mixed = rng.integers(1, SEQ + 1, size=9).tolist()
    mixed[3] = SEQ
    one_longest = rng.integers(1, SEQ, size=9).tolist()
    one_longest[5] = SEQ
    return {"all 1": [1] * 6, "all seq": [SEQ] * 6, "mixed": mixed, "one longest": one_longest}


def assert_parity(model: torch.nn.Module, runtime: OnnxModel) -> float:
    """Compares torch and onnxruntime on every length case; returns the largest probability difference."""
    worst = 0.0
    for name, lengths in length_cases().items():
        ids, lengths = padded_batch(lengths, SEQ)
        with torch.no_grad():
            expected = model(ids, lengths)
        got = runtime.logits(ids.numpy(), lengths.numpy())
        assert got.dtype == np.float32 and got.shape == tuple(expected.shape), name
        np.testing.assert_allclose(got, expected.numpy(), atol=LOGIT_ATOL, rtol=0, err_msg=name)
        diff = np.abs(softmax(got) - expected.softmax(-1).numpy()).max()
        assert diff <= PROB_ATOL, f"{name}: probabilities differ by {diff}"
        worst = max(worst, float(diff))
    return worst


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("lexicon", ["none", "lexicon+rows"])
@pytest.mark.parametrize("pooling", [("last",), ("max",), ("mean",), ("last", "max", "mean")])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_onnxruntime_matches_torch(tmp_path, num_layers, pooling, lexicon):
    model = make_model(num_layers, lexicon, num_layers=num_layers, pooling=pooling)
    export_onnx(model, tmp_path / "model.onnx")
    runtime = OnnxModel(tmp_path / "model.onnx", intra_op_threads=1)
    assert runtime.num_classes == 3
    assert_parity(model, runtime)


def test_lexicon_without_learned_rows_matches_torch(tmp_path):
    model = make_model(4, "lexicon", num_layers=2)
    export_onnx(model, tmp_path / "model.onnx")
    assert_parity(model, OnnxModel(tmp_path / "model.onnx", intra_op_threads=1))


def test_ensemble_of_three_matches_torch(tmp_path):
    model = make_model(5, "lexicon+rows", num_layers=2, ensemble_size=3)
    export_onnx(model, tmp_path / "model.onnx")
    runtime = OnnxModel(tmp_path / "model.onnx", intra_op_threads=1)
    assert sum(node.op_type == "GRU" for node in onnx.load(tmp_path / "model.onnx").graph.node) == 3 * 2
    assert_parity(model, runtime)


def test_a_text_alone_and_among_much_longer_texts_gets_the_same_probabilities(tmp_path):
    model = make_model(6, "lexicon+rows", num_layers=2)
    export_onnx(model, tmp_path / "model.onnx")
    runtime = OnnxModel(tmp_path / "model.onnx", intra_op_threads=1)
    ids, lengths = padded_batch([200, 5, 137], 200, seed=1)
    batched = softmax(runtime.logits(ids.numpy(), lengths.numpy()))
    alone = softmax(runtime.logits(ids[1:2, :5].numpy(), lengths[1:2].numpy()))
    np.testing.assert_allclose(batched[1:2], alone, atol=PROB_ATOL, rtol=0)


def test_graph_keeps_packed_gru_semantics_config_and_symbolic_dims(tmp_path):
    model = make_model(7, num_layers=3)
    export_onnx(model, tmp_path / "model.onnx")
    proto = onnx.load(tmp_path / "model.onnx")
    grus = [node for node in proto.graph.node if node.op_type == "GRU"]
    assert len(grus) == 3
    producers = {out: node for node in proto.graph.node for out in node.output}
    for node in grus:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attributes["linear_before_reset"] == 1 and attributes["direction"] == b"bidirectional"
        assert len(node.input) >= 5 and node.input[4], "sequence_lens is missing"
        assert list(producers[node.input[4]].input) == ["lengths"]  # Cast(lengths) to int32
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*proto.graph.input, *proto.graph.output]}
    assert dims == {"ids": ["batch", "seq"], "lengths": ["batch"], "logits": ["batch", 3]}
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(metadata["config"]) == json.loads(json.dumps(dataclasses.asdict(model.config)))
    assert OnnxModel(tmp_path / "model.onnx").config["num_layers"] == 3


def test_onnx_backend_does_not_import_torch():
    code = "import sys; import sentiment_gru.inference.onnx_runtime; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_packages_and_files_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(ArtifactsError, match="No ONNX model at .*export_onnx"):
        OnnxModel(tmp_path / "missing.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"Exporting needs the onnx package: pip install 'sentiment-gru\[onnx\]'"):
        export_onnx(make_model(8), tmp_path / "model.onnx")
    with pytest.raises(ConfigError, match=r"needs the onnxruntime package: pip install 'sentiment-gru\[onnx\]'"):
        OnnxModel(tmp_path / "model.onnx")
