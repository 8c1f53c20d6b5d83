"""The HTTP server: a real server in a subprocess on a free local port, talked to as a client would; the micro-batcher
and the loading states in-process; its schema fuzzed with schemathesis; SIGTERM; and the page in headless Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiment_gru import SentimentClassifier
from sentiment_gru.errors import ArtifactsError
from benchmarks.server import ServerProcess
from sentiment_gru.serve.app import create_app
from sentiment_gru.serve.batcher import MicroBatcher
from sentiment_gru.serve.command import serve_main
from sentiment_gru.serve.settings import ServeSettings

ROOT = Path(__file__).resolve().parent.parent
LIMITS = {"max_texts": 4, "max_explain_texts": 2, "max_chars": 300, "max_body_bytes": 20_000, "max_explain_tokens": 300,
          "max_header_bytes": 8192}
LIMIT_ARGS = [f"--{name.replace('_', '-')}={value}" for name, value in LIMITS.items()]
TEXTS = ["the film is wonderful and moving", "a dull, clumsy and tedious script", "superb"]
LONG = ["a long and tedious and dull story " * 30, "boring " * 250, "wonderful " * 200]


@pytest.fixture(scope="module")
def server(exported_dir):
    with ServerProcess(["--artifacts", str(exported_dir), "--backend", "onnx", *LIMIT_ARGS]) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def reference(exported_dir) -> SentimentClassifier:
    return SentimentClassifier.from_pretrained(exported_dir, backend="onnx")


def _close(found, expected) -> bool:
    """Same structure, same labels, scores within 1e-6."""
    if isinstance(expected, list):
        return isinstance(found, list) and len(found) == len(expected) and all(map(_close, found, expected))
    if expected.get("score") is None:
        return found == expected
    return found.keys() == expected.keys() and found["label"] == expected["label"] and abs(found["score"] - expected["score"]) < 1e-6


# ---------------------------------------------------------------- end to end


def test_health_info_schema_docs_and_page(client, exported_dir):
    assert client.get("/health").json() == {"status": "ready"}
    info = client.get("/info").json()
    metrics = json.loads((exported_dir / "metrics.json").read_text())
    assert info["labels"] == ["negative", "positive"] and info["backend"] == "onnx" and info["model"] == "model"
    assert info["card"]["library_name"] == "sentiment-gru" and info["card"]["pipeline_tag"] == "text-classification"
    assert info["metrics"]["accuracy"] == metrics["accuracy"] and info["metrics"]["split"] == "test"
    assert info["limits"] == LIMITS and info["batching"] == {"max_batch_size": 32, "max_wait_ms": 0.0}

    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    inputs = schema["components"]["schemas"][body]["properties"]["inputs"]["anyOf"]
    assert {"type": "string", "maxLength": 300} in inputs and any(s.get("maxItems") == 4 for s in inputs)
    assert {"200", "413", "422", "503"} <= set(schema["paths"]["/predict"]["post"]["responses"])
    assert "swagger" in client.get("/docs").text.lower()

    page = client.get("/")
    assert page.status_code == 200 and '<textarea id="text"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200 and asset in page.text
    for file in (ROOT / "sentiment_gru" / "serve" / "static").iterdir():  # everything the page needs is served from here
        assert "http://" not in file.read_text() and "https://" not in file.read_text(), file.name


@pytest.mark.parametrize("payload", [
    {"inputs": TEXTS[0]},
    {"inputs": TEXTS},
    {"inputs": TEXTS[0], "parameters": {"top_k": None}},
    {"inputs": TEXTS, "parameters": {"top_k": None}},
    {"inputs": TEXTS[:2], "parameters": {"top_k": 2}},
    {"inputs": ["", TEXTS[2], "   "]},
    {"inputs": ""},
    {"inputs": TEXTS[:2], "parameters": {"top_k": 10**40}},
    {"inputs": TEXTS[:2], "parameters": {"top_k": 2.0}},  # an integer to JSON Schema
    {"inputs": [], "parameters": {}},
    {"inputs": TEXTS[1], "options": {"wait_for_model": True}},  # other Hugging Face fields are ignored
])
def test_predict_gives_what_the_python_api_gives(client, reference, payload):
    response = client.post("/predict", json=payload)
    assert response.status_code == 200, response.text
    top_k = payload.get("parameters", {}).get("top_k", 1)
    top_k = int(top_k) if isinstance(top_k, float) else top_k
    assert _close(response.json(), reference(payload["inputs"], top_k=top_k))


def test_explain_gives_explain_details(client, reference):
    response = client.post("/explain", json={"inputs": [TEXTS[1], ""]})
    assert response.status_code == 200, response.text
    found, empty = response.json()
    expected = reference.explain_details(TEXTS[1])
    assert found["label"] == expected["label"] == "negative"
    spans = [[(t["token"], t["start"], t["end"]) for t in result["explanation"]] for result in (found, expected)]
    assert spans[0] == spans[1]
    assert np.allclose([t["score"] for t in found["explanation"]], [t["score"] for t in expected["explanation"]], atol=1e-6)
    assert empty == {"label": None, "error": "empty text", "explanation": []}
    unk = client.post("/explain", json={"inputs": "wonderful", "parameters": {"mode": "unk"}}).json()
    expected_unk = reference.explain_details("wonderful", "unk")["explanation"][0]["score"]
    assert unk[0]["explanation"][0]["score"] == pytest.approx(expected_unk, abs=1e-6)


def test_a_text_longer_than_the_model_reads_is_reported_as_cut(client, reference):
    cut = "a," * 150  # 300 characters (the --max-chars here), 300 tokens: more than the model reads
    info = client.get("/info").json()
    assert info["read_length"] == reference.encoder.read_length == 256 and info["tail_tokens"] == 0
    short, long = client.post("/predict", json={"inputs": [TEXTS[0], cut]}).json()
    assert "truncated" not in short and long["truncated"] is True
    assert all(r["truncated"] is True for r in client.post("/predict", json={"inputs": cut, "parameters": {"top_k": None}}).json())
    explained = client.post("/explain", json={"inputs": [cut, TEXTS[0]]}).json()
    assert explained[0]["truncated"] is True and len(explained[0]["explanation"]) == 256 and "truncated" not in explained[1]
    assert explained[1]["score"] == explained[1]["probability"] == max(explained[1]["probabilities"].values())


# ---------------------------------------------------------------- limits and errors


def _chunks(data: bytes, size: int = 4096):
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("path, send, status, error, limit", [
    ("/predict", {"content": json.dumps({"inputs": "x" * 25_000}).encode()}, 413,
     r"^The request body is 25,014 bytes, over the limit of 20,000 bytes \(--max-body-bytes\)\. Send fewer", "max_body_bytes"),
    ("/predict", {"content": _chunks(json.dumps({"inputs": ["x" * 290] * 80}).encode())}, 413,
     r"^The request body is over the limit of 20,000 bytes \(--max-body-bytes\)\. Send fewer", "max_body_bytes"),
    ("/predict", {"json": {"inputs": ["a"] * 5}}, 422,
     r"^5 texts in one request; the limit is 4 \(--max-texts\)\. Send them in several requests\.$", "max_texts"),
    ("/explain", {"json": {"inputs": ["a"] * 3}}, 422,
     r"^3 texts in one request; the limit is 2 \(--max-explain-texts\)\. Send them in several requests\.$", "max_explain_texts"),
    ("/predict", {"json": {"inputs": "y" * 301}}, 422,
     r"^The text has 301 characters; the limit is 300 \(--max-chars\)\. Shorten it\.$", "max_chars"),
    ("/explain", {"json": {"inputs": ["ok", "y" * 1000]}}, 422,
     r"^inputs\[1\] has 1,000 characters; the limit is 300 \(--max-chars\)\. Shorten it\.$", "max_chars"),
])
def test_each_limit_is_named_with_its_value(client, path, send, status, error, limit):
    response = client.post(path, headers={"content-type": "application/json"}, **send)
    assert response.status_code == status
    body = response.json()
    assert body["limit"] == limit and body["value"] == LIMITS[limit]
    assert re.search(error, body["error"]), body["error"]


@pytest.mark.parametrize("content, status, error", [
    (b'{"inputs": ', 422, r"^The request body is not valid JSON \(Expecting value at character 11\)\. Send \{\"inputs\""),
    (b"", 422, r"^The request needs a JSON object body: .*content-type application/json\.$"),
    (b'["a list"]', 422, r"^The request needs a JSON object body"),
    (b'{"text": "no inputs"}', 422, r"^inputs: field required\. Expected \{\"inputs\""),
    (b'{"inputs": 5}', 422, r"^inputs: must be a text or a list of texts\. Expected"),
    (b'{"inputs": ["a", 5, null]}', 422, r"^inputs: must be a text or a list of texts|^inputs\.1: input should be a valid string"),
    (b'{"inputs": "a", "parameters": {"top_k": 0}}', 422, r"^parameters\.top_k: input should be greater than or equal to 1\."),
    (b'{"inputs": "a", "parameters": {"top_k": true}}', 422, r"^parameters\.top_k: input should be a valid integer\."),
    (b'{"inputs": "a", "parameters": {"top_k": 1e400}}', 422, r"^parameters\.top_k: input should be a valid integer\."),
    (b'{"inputs": "a", "parameters": {"top_k": 1.5}}', 422, r"^parameters\.top_k: input should be a valid integer\."),
    (b'{"inputs": "a", "parameters": {"top_k": "2"}}', 422, r"^parameters\.top_k: input should be a valid integer\."),
    (b'{"inputs": "a", "parameters": 7}', 422, r"^parameters: input should be a valid dictionary"),
    (b'{"inputs": "\xff\xfe bad bytes"}', 400, r"^The request body cannot be read as JSON: it is not UTF-8, or it nests too deeply\. Send"),
    (b"[" * 9_000 + b"]" * 9_000, 400, r"^The request body cannot be read as JSON: it is not UTF-8, or it nests too deeply\."),
    (b'\xff\xfe\x00\x01', 422, r"^The request body is not valid JSON"),  # read as UTF-16 (its BOM), then not JSON
])
def test_malformed_requests_get_a_4xx_that_says_what_is_wrong(client, content, status, error):
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert re.search(error, response.json()["error"]), response.json()["error"]
    assert all(set(item) == {"loc", "msg", "type"} for item in response.json().get("detail", []))  # no input echoed back


def test_odd_text_never_gives_a_500(client):
    for text in ["\ud800 lone surrogate", "\x00", "😀🔥", "e\u0301" * 100, "\u200b", "ﷺ" * 300]:
        for path in ("/predict", "/explain"):
            response = client.post(path, content=json.dumps({"inputs": text}), headers={"content-type": "application/json"})
            assert response.status_code == 200, (path, text, response.text)
    lone = client.post("/explain", content=b'{"inputs": "bad \\ud800 film"}', headers={"content-type": "application/json"}).json()[0]
    assert "\ud800" not in json.dumps(lone, ensure_ascii=False)
    assert client.get("/nowhere").json() == {"error": "Not Found"} and client.delete("/predict").status_code == 405


def test_a_client_that_disconnects_does_not_disturb_the_others(server, client, reference):
    host, port = "127.0.0.1", server.port
    head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    body = json.dumps({"inputs": TEXTS}).encode()
    with ThreadPoolExecutor(16) as pool:
        def rude(whole: bool) -> None:
            with socket.create_connection((host, port)) as sock:
                sock.sendall((head % len(body)).encode() + (body if whole else body[:10]))  # then hang up
        def polite():
            return client.post("/predict", json={"inputs": TEXTS}).json()
        futures = [pool.submit(rude, i % 2 == 0) for i in range(8)] + [pool.submit(polite) for _ in range(8)]
        answers = [f.result() for f in futures[8:]]
    assert all(_close(answer, reference(TEXTS)) for answer in answers)
    assert client.get("/health").json() == {"status": "ready"}


def test_schema_is_exact_under_fuzzing(server):
    """Requests generated from the server's own OpenAPI schema, valid and invalid ones: never a 500, never a response
    that breaks the schema, valid requests accepted and invalid ones rejected."""
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(operation.as_strategy(), operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(cases)
        def run(case):
            case.call_and_validate(base_url=server.url)

        try:
            run()
        except Exception as exc:  # report every operation's failures, not only the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- micro-batching


def _batcher_run(classifier, max_batch_size, max_wait, submissions):
    """Submit each list of texts concurrently; return (results, sizes of the forward passes)."""
    passes = []

    def forward(texts):
        passes.append(len(texts))
        return classifier(texts, top_k=None, batch_size=max_batch_size)

    async def go():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(forward, executor, max_batch_size, max_wait)
            batcher.start()
            try:
                return await asyncio.gather(*(batcher.submit(texts) for texts in submissions))
            finally:
                await batcher.close()

    return asyncio.run(go()), passes


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_result_does_not_depend_on_its_batch(exported_dir, backend):
    classifier = SentimentClassifier.from_pretrained(exported_dir, backend=backend)
    (alone,), passes = _batcher_run(classifier, 32, 0.0, [[TEXTS[2]]])
    assert passes == [1]
    together, passes = _batcher_run(classifier, 32, 0.2, [LONG[:2], [TEXTS[2]], LONG[2:], TEXTS[:2]])
    assert passes == [6]  # one forward pass for all four requests
    assert together[1][0][0]["label"] == alone[0][0]["label"]
    assert abs(together[1][0][0]["score"] - alone[0][0]["score"]) < 1e-6


class _Echo:
    """A stand-in classifier: each text comes back as its own label."""

    def __call__(self, texts, top_k=None, batch_size=0):
        return [[{"label": text, "score": 1.0}] for text in texts]


def test_batches_are_bounded_and_requests_stay_whole():
    results, passes = _batcher_run(_Echo(), 4, 0.2, [["a", "b"], ["c", "d"], ["e", "f"], ["g"]])
    assert passes == [4, 3]  # a request that does not fit waits for the next pass; texts of one request stay together
    assert [[r[0]["label"] for r in result] for result in results] == [["a", "b"], ["c", "d"], ["e", "f"], ["g"]]
    _, passes = _batcher_run(_Echo(), 4, 0.2, [list("abcdefg"), ["h"]])
    assert passes == [7, 1]  # larger than a batch: alone
    _, passes = _batcher_run(_Echo(), 1, 0.2, [["a"], ["b"], ["c"]])
    assert passes == [1, 1, 1]  # --max-batch-size 1: batching off


# ---------------------------------------------------------------- loading, the command, SIGTERM


def test_health_is_503_until_the_model_is_loaded(exported_dir, monkeypatch):
    from fastapi.testclient import TestClient

    from sentiment_gru.serve import app as serve

    release = threading.Event()
    load = SentimentClassifier.from_pretrained

    def slow(*args, **kwargs):
        release.wait(30)
        return load(*args, **kwargs)

    monkeypatch.setattr(serve.SentimentClassifier, "from_pretrained", staticmethod(slow))
    with TestClient(create_app(ServeSettings(artifacts=str(exported_dir), backend="onnx"))) as http:
        assert http.get("/health").status_code == 503 and http.get("/health").json() == {"status": "loading"}
        busy = http.post("/predict", json={"inputs": "fine"})
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.json() == {"error": "The model is still loading; retry when GET /health says ready."}
        assert http.get("/info").status_code == 503
        release.set()
        for _ in range(300):
            if http.get("/health").status_code == 200:
                break
            time.sleep(0.05)
        assert http.get("/health").json() == {"status": "ready"} and http.post("/predict", json={"inputs": "fine"}).status_code == 200

    def broken(*args, **kwargs):
        raise ArtifactsError("model.onnx: checksum does not match MANIFEST.json")

    monkeypatch.setattr(serve.SentimentClassifier, "from_pretrained", staticmethod(broken))
    stopped = []
    with TestClient(create_app(ServeSettings(artifacts=str(exported_dir)), on_load_error=lambda: stopped.append(True))) as http:
        for _ in range(100):
            if stopped:
                break
            time.sleep(0.02)
        assert http.get("/health").json() == {"status": "failed", "error": "model.onnx: checksum does not match MANIFEST.json"}
        assert http.post("/predict", json={"inputs": "fine"}).json()["error"].startswith("The model could not be loaded: model.onnx")
    assert stopped == [True]


def test_command_errors_are_one_line_with_status_2(exported_dir, trained_dir, tmp_path, capsys):
    cases = [
        (["--artifacts", str(tmp_path / "nothing")], "error: No trained model in "),
        (["--artifacts", str(trained_dir), "--backend", "onnx"], "has no model.onnx. Write it with: "),
        (["--artifacts", str(exported_dir), "--max-batch-size", "0"],
         "The 'max_batch_size' parameter of ServeSettings must be an int in [1, 65536]. Got 0 instead."),
        (["--artifacts", str(exported_dir), "--max-wait-ms", "-1"],
         "The 'max_wait_ms' parameter of ServeSettings must be a number in [0.0, 10000.0]"),
        (["--artifacts", str(exported_dir), "--threads", "0"], "The 'threads' parameter of ServeSettings must be an int in [1, 1024]"),
        (["--artifacts", str(exported_dir), "--port", "70000"], "--port must be in [0, 65535]. Got 70000."),
    ]
    for argv, message in cases:
        assert serve_main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert serve_main(["--artifacts", str(exported_dir), "--port", str(taken.getsockname()[1])]) == 2
        assert "Cannot listen on 127.0.0.1:" in capsys.readouterr().err


def test_a_model_that_fails_to_load_stops_the_server_with_status_2(exported_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported_dir, broken)
    with open(broken / "model.onnx", "r+b") as handle:  # passes the checks made before the server starts, fails loading
        handle.seek(100)
        handle.write(b"\x00\x01")
    server = ServerProcess(["--artifacts", str(broken)])
    server.start()
    try:
        assert server.process.wait(60) == 2
        assert server.output().strip().splitlines()[-1].startswith(f"error: {broken}/model.onnx: checksum does not match MANIFEST.json")
    finally:
        server.close()


def test_sigterm_finishes_the_request_in_flight_then_exits_0(exported_dir, reference):
    # A request waits 1.5 s for company in the batcher: SIGTERM arrives while it is in flight.
    with ServerProcess(["--artifacts", str(exported_dir), "--backend", "onnx", "--max-wait-ms", "1500"]) as server:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(httpx.post, server.url + "/predict", json={"inputs": TEXTS[0]}, timeout=30)
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(httpx.ConnectError):  # no longer accepting
                httpx.get(server.url + "/health", timeout=5)
            response = answer.result()
        assert response.status_code == 200 and _close(response.json(), reference(TEXTS[0]))
        assert server.process.wait(30) == 0, server.output()


def test_serving_onnx_imports_no_torch(exported_dir):
    code = (
        "import sys, time\n"
        "from fastapi.testclient import TestClient\n"
        "from sentiment_gru.serve.app import create_app\n"
        "from sentiment_gru.serve.settings import ServeSettings\n"
        f"with TestClient(create_app(ServeSettings(artifacts={str(exported_dir)!r}, backend='onnx'))) as http:\n"
        "    while http.get('/health').status_code != 200: time.sleep(0.05)\n"
        "    assert http.post('/predict', json={'inputs': 'superb'}).status_code == 200\n"
        "    assert http.post('/explain', json={'inputs': 'superb'}).status_code == 200\n"
        "print(sorted(m for m in ('torch', 'datasets', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------- the page, in a browser


def test_the_page_in_chromium(server, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright")
    sys.path.insert(0, str(ROOT / "scripts"))
    import browser_check

    shot = tmp_path / "page.png"
    argv = ["--url", server.url, "--screenshot", str(shot),
            "--case", "the film is wonderful and moving", "positive", "--case", "a dull, clumsy and tedious script", "negative"]
    assert browser_check.main(argv) == 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
