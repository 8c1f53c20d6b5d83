"""The service against a hostile folder and hostile or clumsy clients, on the real server in a subprocess: a request the
model raises on fails alone and the service goes on; a call that overruns --work-timeout turns /health to failed;
idle, slow and oversized connections are closed by their deadlines; work for a client that hung up is cancelled;
/explain has a token budget; --api-key guards the model's endpoints; /docs loads nothing from elsewhere."""

from __future__ import annotations

import json
import os
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
import pytest
from conftest import relist

from benchmarks.server import ServerProcess, free_port
from sentiment_gru.serve.command import serve_main

ROOT = Path(__file__).resolve().parent.parent
KEY = "k3y-for-the-tests-0123456789abcdef"
TEXTS = ["the film is wonderful and moving", "a dull, clumsy and tedious script"]
HOSTILE_REGEX = "(a|a)*$|(a|aa)*b"
PANIC_TEXT = "a" * 24 + "!"


class PatchedServer(ServerProcess):
    """The real server, with `patch` (Python) run in its process first: the faults a test needs, injected."""

    def __init__(self, args: list[str], patch: str) -> None:
        super().__init__(args)
        self.LAUNCH = f"{patch}\n{ServerProcess.LAUNCH}"


# Lets the server load a tokenizer whose normalizer backtracks, which the folder checks refuse: the panic it causes
# stands for any BaseException a loaded model may raise on a request.
ALLOW_HOSTILE_TOKENIZER = f"import sentiment_gru.inference.folder as f; f.TOKENIZER_PATTERNS = f.TOKENIZER_PATTERNS | {{{HOSTILE_REGEX!r}}}"
# A text holding SLOW makes the forward pass sleep far past any --work-timeout.
SLOW_MODEL = """
import time
from sentiment_gru.inference.classifier import SentimentClassifier
_call = SentimentClassifier.__call__
def _slow(self, inputs, *args, **kwargs):
    if any('SLOW' in t for t in ([inputs] if isinstance(inputs, str) else inputs)):
        time.sleep(120)
    return _call(self, inputs, *args, **kwargs)
SentimentClassifier.__call__ = _slow
"""
# Each explanation takes 0.3 s, each forward pass says which texts it runs (one holding HOLD takes a second), in the
# server's log.
LOGGED_MODEL = """
import time
from sentiment_gru.inference.classifier import SentimentClassifier
_explain, _call = SentimentClassifier.explain_details, SentimentClassifier.__call__
def _slow_explain(self, text, mode='drop'):
    print('explaining', flush=True)
    time.sleep(0.3)
    return _explain(self, text, mode)
def _logged(self, inputs, *args, **kwargs):
    texts = [inputs] if isinstance(inputs, str) else inputs
    print('predicting', ' | '.join(texts), flush=True)
    if 'HOLD' in texts:
        time.sleep(1)
    return _call(self, inputs, *args, **kwargs)
SentimentClassifier.explain_details, SentimentClassifier.__call__ = _slow_explain, _logged
"""


def _post(url: str, path: str, payload, **kwargs) -> httpx.Response:
    return httpx.post(url + path, json=payload, timeout=60, **kwargs)


# ---------------------------------------------------------------- issue cases 1, 4 and 5: what a loaded folder does


def test_info_never_shows_a_file_from_outside_the_folder(exported_dir, tmp_path):
    """Issue case 1: README.md a link to an outside file (left out of the manifest, so the folder loads): /info shows no
    card, and the file's text reaches neither a client nor the log."""
    folder, secret = tmp_path / "model", tmp_path / "credentials.md"
    shutil.copytree(exported_dir, folder)
    secret.write_text("---\nAWS_SECRET_ACCESS_KEY: wJalrXUtnFEMIEXAMPLEKEY\n---\n")
    manifest = json.loads((folder / "MANIFEST.json").read_text())
    del manifest["files"]["README.md"]
    (folder / "MANIFEST.json").write_text(json.dumps(manifest))
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(secret)
    with ServerProcess(["--artifacts", str(folder), "--backend", "onnx"]) as server:
        info = httpx.get(server.url + "/info", timeout=30)
        assert info.status_code == 200 and info.json()["card"] is None and info.json()["metrics"]["split"] == "test"
        assert "AWS_SECRET" not in info.text
        log = server.output()
    assert "AWS_SECRET" not in log


def test_a_request_the_model_raises_on_fails_alone_and_the_service_goes_on(exported_dir, tmp_path):
    """Issue case 5: a PanicException (a BaseException) stopped the micro-batcher: every later /predict hung while /health
    said ready, and SIGTERM waited 30 s. Now that request gets a JSON 500, the requests batched with it their answers,
    the next request its answer within 1 s, and SIGTERM a prompt exit."""
    folder = tmp_path / "model"
    shutil.copytree(exported_dir, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Replace", "pattern": {"Regex": HOSTILE_REGEX}, "content": " "}, tokenizer["normalizer"]]}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    relist(folder, "tokenizer.json")
    with PatchedServer(["--artifacts", str(folder), "--backend", "onnx", "--max-wait-ms", "300"], ALLOW_HOSTILE_TOKENIZER) as server:
        with ThreadPoolExecutor(3) as pool:  # a good request and the bad one share a batch (they wait 300 ms for company)
            good = pool.submit(_post, server.url, "/predict", {"inputs": TEXTS})
            time.sleep(0.05)
            bad = pool.submit(_post, server.url, "/predict", {"inputs": PANIC_TEXT})
            good, bad = good.result(), bad.result()
        assert good.status_code == 200 and [r["label"] for r in good.json()] == ["positive", "negative"]
        assert bad.status_code == 500 and bad.headers["content-type"] == "application/json"
        assert re.match(r"^The model failed on this request \(PanicException: .*\); the service goes on\.", bad.json()["error"])
        started = time.monotonic()
        after = _post(server.url, "/predict", {"inputs": TEXTS[0]})
        assert after.status_code == 200 and time.monotonic() - started < 1.0
        assert httpx.get(server.url + "/health", timeout=5).json() == {"status": "ready"}
        explained = _post(server.url, "/explain", {"inputs": PANIC_TEXT})
        assert explained.status_code == 500 and "PanicException" in explained.json()["error"]
        assert _post(server.url, "/explain", {"inputs": TEXTS[1]}).status_code == 200
        started = time.monotonic()
        assert server.stop(timeout=30) == 0
        assert time.monotonic() - started < 10, server.output()
        assert "Application shutdown failed" not in server.output()


def test_a_call_past_the_work_timeout_turns_health_failed(exported_dir):
    """A forward pass that never ends: its request gets a 503 once --work-timeout has passed, /health turns 503 at the
    same moment (an orchestrator restarts the service), later requests get the 503 at once, and SIGTERM still ends it."""
    with PatchedServer(["--artifacts", str(exported_dir), "--backend", "onnx", "--work-timeout", "1"], SLOW_MODEL) as server:
        started = time.monotonic()
        stuck = _post(server.url, "/predict", {"inputs": "SLOW"})
        assert stuck.status_code == 503 and 0.9 < time.monotonic() - started < 5
        assert re.match(r"^The model stopped answering: a call of the model took longer than 1 s \(--work-timeout 1\)\. "
                        r"Restart the service\.$", stuck.json()["error"])
        started = time.monotonic()
        health = httpx.get(server.url + "/health", timeout=5)
        assert health.status_code == 503 and health.json()["status"] == "failed" and time.monotonic() - started < 1
        started = time.monotonic()
        assert _post(server.url, "/predict", {"inputs": TEXTS[0]}).status_code == 503 and time.monotonic() - started < 1
        assert _post(server.url, "/explain", {"inputs": TEXTS[0]}).status_code == 503
        started = time.monotonic()
        server.stop(timeout=30)
        assert time.monotonic() - started < 10, server.output()


# ---------------------------------------------------------------- issue case 8: connections


def _until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started, received = time.monotonic(), b""
    sock.settimeout(limit)
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def _status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.fixture(scope="module")
def strict_server(exported_dir):
    args = ["--artifacts", str(exported_dir), "--backend", "onnx", "--keep-alive-timeout", "1", "--header-timeout", "1",
            "--body-timeout", "1", "--max-header-bytes", "4096", "--max-explain-tokens", "20"]
    with ServerProcess(args) as server:
        yield server


def _send(sock: socket.socket, pieces, interval: float = 0.0) -> threading.Thread:
    """Send `pieces` one by one, `interval` seconds apart, in the background, until the server stops reading."""
    def run():
        try:
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(interval)
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_idle_and_slow_connections_are_closed_by_their_deadlines(strict_server):
    """Issue case 8: idle, slow-header and slow-body connections stayed open, and a Content-Length over the body hung."""
    address = ("127.0.0.1", strict_server.port)
    with socket.create_connection(address) as idle:
        received, seconds = _until_closed(idle)
        assert received == b"" and 0.8 < seconds < 3

    with socket.create_connection(address) as slow:  # a header line every 0.2 s, for ever
        _send(slow, [b"POST /predict HTTP/1.1\r\nHost: x\r\n"] + [b"X-Slow: 1\r\n"] * 1000, interval=0.2)
        received, seconds = _until_closed(slow)
        status, error = _status_and_body(received)
        assert status == 408 and error["limit"] == "header_timeout" and 0.8 < seconds < 3
        assert error["error"] == "The request's line and headers took longer than 1 s to arrive (--header-timeout). Send it at once."

    body = json.dumps({"inputs": TEXTS[0]}).encode()
    with socket.create_connection(address) as short:  # 100 bytes fewer than it says
        short.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (len(body) + 100) + body)
        received, seconds = _until_closed(short)
        status, error = _status_and_body(received)
        assert status == 408 and error["limit"] == "body_timeout" and 0.8 < seconds < 3
        assert error["error"] == "The request's body took longer than 1 s to arrive (--body-timeout). Send it at once."


@pytest.mark.parametrize("head", [
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 16_384 + b"\r\n\r\n",  # a 16 KiB header was accepted
    b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100_000 + b"\r\n",  # and 100,000 headers
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Unfinished: " + b"a" * 8192,  # an unfinished header was held whole
])
@pytest.mark.parametrize("piece", [4096, 1 << 30])  # read a bit at a time, or all at once
def test_a_request_head_over_the_limit_gets_a_431(strict_server, head, piece):
    with socket.create_connection(("127.0.0.1", strict_server.port)) as sock:
        _send(sock, [head[i:i + piece] for i in range(0, len(head), piece)])
        received, _ = _until_closed(sock)
    status, error = _status_and_body(received)
    assert status == 431 and error == {"error": "The request's line and headers are over 4,096 bytes (--max-header-bytes). "
                                                "Send fewer or shorter headers.", "limit": "max_header_bytes", "value": 4096}


def test_ordinary_clients_are_unaffected_by_the_deadlines(strict_server):
    with httpx.Client(base_url=strict_server.url, timeout=30) as client:
        for _ in range(3):  # one kept-alive connection, reused within --keep-alive-timeout
            assert client.post("/predict", json={"inputs": TEXTS}).status_code == 200
            time.sleep(0.3)
        assert client.get("/health").json() == {"status": "ready"}
        info = client.get("/info").json()
        assert info["limits"]["max_header_bytes"] == 4096 and info["limits"]["max_explain_tokens"] == 20
        assert info["timeouts"] == {"work_timeout": 60.0, "keep_alive_timeout": 1.0, "header_timeout": 1.0, "body_timeout": 1.0}
    assert "Traceback" not in strict_server.output()


# ---------------------------------------------------------------- issue case 9: work per request, clients that hang up


def test_explain_has_a_token_budget(strict_server):
    response = httpx.post(strict_server.url + "/explain", json={"inputs": ["a long and tedious story " * 3, "fine"]}, timeout=30)
    assert response.status_code == 422
    body = response.json()
    assert body["limit"] == "max_explain_tokens" and body["value"] == 20
    assert re.match(r"^The texts have \d+ tokens to explain; the limit is 20 per request \(--max-explain-tokens\)\. "
                    r"Send fewer or shorter texts\.$", body["error"])
    assert httpx.post(strict_server.url + "/explain", json={"inputs": "a tedious story"}, timeout=30).status_code == 200


def _hang_up_after(port: int, path: str, payload) -> None:
    """Send a whole request, then hang up without reading the answer."""
    body = json.dumps(payload).encode()
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (path.encode(), len(body))
    with socket.create_connection(("127.0.0.1", port)) as rude:
        rude.sendall(head + body)


def test_work_for_a_client_that_hung_up_is_cancelled(exported_dir):
    """Issue case 9: abandoned /explain requests stalled /predict while the worker explained texts nobody would read."""
    with PatchedServer(["--artifacts", str(exported_dir), "--backend", "onnx"], LOGGED_MODEL) as server:
        for _ in range(10):
            _hang_up_after(server.port, "/explain", {"inputs": TEXTS})  # two texts: 0.6 s of work each
        time.sleep(0.3)
        started = time.monotonic()
        assert _post(server.url, "/predict", {"inputs": TEXTS[0]}).status_code == 200
        assert time.monotonic() - started < 1.5  # not the 6 s the ten explanations would take
        time.sleep(1)
        assert server.output().count("explaining") <= 4  # the request running when the others hung up, at most

        with ThreadPoolExecutor(1) as pool:  # while a forward pass holds the model, five clients post and hang up
            holding = pool.submit(_post, server.url, "/predict", {"inputs": "HOLD"})
            time.sleep(0.3)
            for i in range(5):
                _hang_up_after(server.port, "/predict", {"inputs": f"GONE {i}"})
            time.sleep(0.2)
            assert _post(server.url, "/predict", {"inputs": "after"}).status_code == 200
            assert holding.result().status_code == 200
        ran = [line for line in server.output().splitlines() if line.startswith("predicting")]
        assert any("after" in line for line in ran) and not any("GONE" in line for line in ran), ran
        assert "Traceback" not in server.output()


# ---------------------------------------------------------------- issue case 10: the API key, the docs page


def test_the_api_key_guards_the_model_and_leaves_health_open(exported_dir, monkeypatch):
    monkeypatch.setenv("SENTIMENT_GRU_API_KEY", KEY)
    with ServerProcess(["--artifacts", str(exported_dir), "--backend", "onnx"]) as server:
        url = server.url
        for path, payload in (("/predict", {"inputs": TEXTS[0]}), ("/explain", {"inputs": TEXTS[0]})):
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}, {"authorization": f"Basic {KEY}"}):
                refused = _post(url, path, payload, headers=headers)
                assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
                assert refused.json() == {"error": "This service needs its API key: send the header 'Authorization: Bearer KEY'."}
            assert _post(url, path, payload, headers={"authorization": f"Bearer {KEY}"}).status_code == 200
        assert httpx.get(url + "/info", timeout=30).status_code == 401
        assert httpx.get(url + "/info", headers={"authorization": f"Bearer {KEY}"}, timeout=30).status_code == 200
        for path in ("/health", "/", "/docs", "/openapi.json", "/static/app.js"):
            assert httpx.get(url + path, timeout=30).status_code == 200, path
        schema = httpx.get(url + "/openapi.json", timeout=30).json()
        assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        assert "401" in schema["paths"]["/predict"]["post"]["responses"] and "security" not in schema["paths"]["/health"]["get"]
        assert KEY not in server.output()


def test_a_weak_api_key_is_refused(exported_dir, capsys):
    assert serve_main(["--artifacts", str(exported_dir), "--api-key", "secret"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "The API key (--api-key or SENTIMENT_GRU_API_KEY) must be at least 16 printable" in err


@pytest.mark.parametrize("key", [None, KEY])
def test_a_public_address_without_a_key_is_warned_about(exported_dir, tmp_path, key):
    port, log = free_port(), tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "SENTIMENT_GRU_API_KEY"}
    env.update({"PYTHONPATH": str(ROOT), **({"SENTIMENT_GRU_API_KEY": key} if key else {})})
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", ServerProcess.LAUNCH, "--artifacts", str(exported_dir), "--backend", "onnx",
                                    "--host", "0.0.0.0", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while "serving on" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        text = log.read_text()
        assert "serving on http://0.0.0.0:" in text
        warned = f"warning: 0.0.0.0 is reachable from other machines and no API key is set: anyone who can reach port {port} can use"
        assert (warned in text) is (key is None), text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_docs_page_is_served_from_this_server(strict_server):
    """Issue case 10: /docs loaded Swagger UI's scripts from a CDN, which an offline user does not have."""
    page = httpx.get(strict_server.url + "/docs", timeout=30).text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page) + re.findall(r"""url: ['"]([^'"]+)['"]""", page)
    assert assets and all(asset.startswith("/") for asset in assets), assets
    for asset in assets:
        assert httpx.get(strict_server.url + asset, timeout=30).status_code == 200, asset
    assert httpx.get(strict_server.url + "/redoc", timeout=30).status_code == 200


def _chromium():
    if shutil.which("chromium") is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "scripts"))
    from browser_check import CHROMIUM, CHROMIUM_ARGS

    return sync_playwright, CHROMIUM, CHROMIUM_ARGS


def test_the_docs_page_renders_offline_in_chromium(strict_server):
    sync_playwright, chromium, args = _chromium()
    elsewhere = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_page()
            page.on("request", lambda request: None if request.url.startswith(strict_server.url) else elsewhere.append(request.url))
            page.goto(strict_server.url + "/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
            assert "sentiment-gru" in page.text_content(".swagger-ui .info .title")
            page.wait_for_selector("text=/predict", timeout=30_000)
        finally:
            browser.close()
    assert elsewhere == []


def test_the_page_asks_for_the_api_key_in_chromium(exported_dir, monkeypatch):
    sync_playwright, chromium, args = _chromium()
    monkeypatch.setenv("SENTIMENT_GRU_API_KEY", KEY)
    with ServerProcess(["--artifacts", str(exported_dir), "--backend", "onnx"]) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=args)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("#key-form:not([hidden])", timeout=60_000)
            assert page.text_content("#model") == "This server needs an API key."
            page.fill("#key", KEY)
            page.click("#key-form button")
            page.wait_for_function("document.querySelector('#model').textContent.startsWith('Model:')", timeout=60_000)
            page.fill("#text", TEXTS[0])
            page.click("#classify")
            page.wait_for_function("!document.querySelector('#result').hidden", timeout=30_000)
            assert page.text_content("#label") == "positive"
        finally:
            browser.close()
