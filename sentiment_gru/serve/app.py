"""The FastAPI app that serves a trained model: the endpoints, the model loaded once, the limits and the error bodies.

Endpoints: `POST /predict` (the Hugging Face inference schema: `{"inputs": "text" | ["text", ...], "parameters":
{"top_k": null | k}}`, answered in the shape `SentimentClassifier.__call__` gives), `POST /explain` (each text's
prediction with its occlusion explanation), `GET /health`, `GET /info`, `/openapi.json`, `/docs`, and a page at `/`.

The model loads once, in the app's lifespan, on the one worker thread that runs every forward pass; until it is
ready, /health and the model's endpoints answer 503. Concurrent /predict requests are gathered into one forward
pass (`MicroBatcher`). Whatever a call of the model raises fails that request alone, with a JSON 500; a call longer
than `--work-timeout` gets a 503 and turns /health to failed, so that an orchestrator restarts the service. A request
whose client hangs up is cancelled before its forward pass. With an API key, /predict, /explain and /info need
`Authorization: Bearer KEY`; /health, the page and the docs stay open. Importing this module does not import torch,
and neither does serving with `--backend onnx`. `serve.command` runs the app on uvicorn.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..errors import UserError
from ..files import CARD_FILE, METRICS_FILE
from ..inference.classifier import SentimentClassifier, top_k_results
from .batcher import ClientGone, MicroBatcher, ModelThread, WorkFailed, WorkTimeout, run_bounded
from .connections import DISCONNECTED
from .schemas import AUTH_RESPONSES, ERROR_RESPONSES, REQUEST_SHAPE, ExplainResponse, Health, Info, PredictResponse, request_models
from .settings import API_KEY_VARIABLE, ServeSettings, flag

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
Gone = Callable[[], bool] | None  # says whether a request's client has hung up
BEARER = "HTTPBearer"  # the API key's security scheme in the OpenAPI schema
TEST_METRICS = ("split", "size", "accuracy", "macro_f1", "weighted_f1", "log_loss", "confidence_intervals", "calibration")


# ---------------------------------------------------------------- the model, loaded once


class Service:
    """The model behind the app: loaded on the worker thread, then used only there."""

    def __init__(self, settings: ServeSettings, on_load_error: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_load_error = on_load_error  # called when loading fails (the command stops the server)
        self.executor = ModelThread()
        self.classifier: SentimentClassifier | None = None
        self.batcher: MicroBatcher | None = None
        self.info: dict[str, Any] | None = None
        self.load_error: str | None = None
        self.stuck: str | None = None  # why the worker thread no longer answers, once a call overran --work-timeout

    @property
    def failure(self) -> str | None:
        """Why the service can no longer answer (it needs a restart); None while it can."""
        why = self.stuck or (self.batcher.failure if self.batcher is not None else None)
        return None if why is None else (f"The model stopped answering: {why} ({flag('work_timeout')} "
                                         f"{self.settings.work_timeout:g}). Restart the service.")

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            classifier, info = await loop.run_in_executor(self.executor, self._load)
        except Exception as exc:
            self.load_error = str(exc) if isinstance(exc, UserError) else f"the model could not be loaded ({type(exc).__name__}: {exc})"
            logger.error("could not load the model: %s", self.load_error, exc_info=not isinstance(exc, UserError))
            if self.on_load_error is not None:
                self.on_load_error()
            return
        s = self.settings
        self.batcher = MicroBatcher(self._predict, self.executor, s.max_batch_size, s.max_wait_ms / 1000, timeout=s.work_timeout)
        self.batcher.start()
        self.classifier, self.info = classifier, info
        logger.info("model ready: %s on %s, labels %s", info["model"], info["backend"], ", ".join(info["labels"]))

    def _load(self) -> tuple[SentimentClassifier, dict[str, Any]]:
        s = self.settings
        started = time.perf_counter()
        classifier = SentimentClassifier.from_pretrained(s.artifacts, backend=s.backend, threads=s.threads)
        classifier.backend = _RowLimit(classifier.backend, s.max_batch_size)
        classifier(["warm up"])  # the first forward pass is slow on both backends: pay it before saying ready
        folder = classifier.folder
        assert folder is not None
        info = {
            "model": folder.path.resolve().name, "labels": classifier.label_names, "backend": classifier.backend_name,
            "read_length": classifier.encoder.read_length, "tail_tokens": classifier.encoder.tail_tokens,
            # only files the manifest lists and that match it: never a link to a file outside the folder
            "card": _card_metadata(folder.checked_file(CARD_FILE)), "metrics": _test_metrics(folder.checked_file(METRICS_FILE)),
            "limits": s.limits(), "batching": {"max_batch_size": s.max_batch_size, "max_wait_ms": s.max_wait_ms},
            "timeouts": s.timeouts(), "version": __version__,
        }
        logger.info("loaded %s in %.1f s", folder.path, time.perf_counter() - started)
        return classifier, info

    def _predict(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        """Every label of each text, best first (the worker thread)."""
        assert self.classifier is not None
        return self.classifier(texts, top_k=None, batch_size=self.settings.max_batch_size, truncation=True)

    def _explain(self, texts: list[str], mode: str, gone: Gone) -> list[dict[str, Any]]:
        """Each text's explanation (the worker thread), once its tokens are shown to be within --max-explain-tokens;
        dropped (ClientGone) as soon as its client has gone."""
        assert self.classifier is not None
        tokens = sum(len(ids) for ids, text in zip(self.classifier.encode(texts), texts) if text.strip())
        if tokens > self.settings.max_explain_tokens:
            raise OverLimit(f"The texts have {tokens:,} tokens to explain; the limit is {self.settings.max_explain_tokens:,} per "
                            f"request ({flag('max_explain_tokens')}). Send fewer or shorter texts.",
                            "max_explain_tokens", self.settings.max_explain_tokens)
        results = []
        for text in texts:
            if gone is not None and gone():
                raise ClientGone()
            results.append(self.classifier.explain_details(text, mode))
        return results

    def check_ready(self) -> None:
        """A 503 that says why, until the model is loaded, or once it stopped answering."""
        if self.failure is not None:
            raise HTTPException(503, self.failure)
        if self.classifier is not None:
            return
        if self.load_error is not None:
            raise HTTPException(503, f"The model could not be loaded: {self.load_error}")
        raise HTTPException(503, "The model is still loading; retry when GET /health says ready.", headers={"Retry-After": "1"})

    async def predict(self, texts: list[str], gone: Gone = None) -> list[list[dict[str, Any]]]:
        """Every label of each text; `gone` says whether the client has hung up (its texts are then never run)."""
        self.check_ready()
        assert self.batcher is not None
        return await self._answer(self.batcher.submit(texts, gone)) if texts else []

    async def explain(self, texts: list[str], mode: str, gone: Gone = None) -> list[dict[str, Any]]:
        """Each text's explanation; `gone` as for predict, asked again before each text."""
        self.check_ready()
        return await self._answer(run_bounded(self.executor, self._explain, (texts, mode, gone), self.settings.work_timeout))

    async def _answer(self, work: Awaitable) -> Any:
        """What `work` (a call of the model) returns; its failure as the HTTP error that says what happened."""
        try:
            return await work
        except WorkTimeout as exc:
            self.stuck = self.stuck or str(exc)
            logger.error("%s", self.failure)
            raise HTTPException(503, self.failure) from None
        except WorkFailed as exc:
            if isinstance(exc.__cause__, ClientGone):
                raise exc.__cause__ from None
            if isinstance(exc.__cause__, OverLimit):
                raise HTTPException(422, exc.__cause__.body()) from None
            logger.error("the model failed on a request: %s", exc, exc_info=exc.__cause__)
            raise HTTPException(500, f"The model failed on this request ({exc}); the service goes on. If the text is "
                                     "ordinary, report it with the model folder.") from None

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        self.executor.shutdown(wait=self.failure is None)  # a stuck call is left to its daemon thread


class _RowLimit:
    """A backend whose forward passes hold at most `rows` sequences (--max-batch-size), /explain's occlusion variants
    too: a 256-token text's 257 variants in passes of 32 take a seventh of the memory of one pass of 256, and less time
    on the CPU (measured with onnxruntime: +18 MiB and 0.38 s against +126 MiB and 0.53 s)."""

    def __init__(self, backend: Any, rows: int) -> None:
        self.backend, self.rows, self.name = backend, rows, backend.name

    def logits(self, sequences: list[list[int]], batch_size: int) -> Any:
        return self.backend.logits(sequences, min(batch_size, self.rows))


class OverLimit(Exception):
    """A request over a limit that only the worker thread can measure (tokens): a 422 naming the limit."""

    def __init__(self, message: str, limit: str, value: int) -> None:
        super().__init__(message)
        self.limit, self.value = limit, value

    def body(self) -> dict[str, Any]:
        return {"error": str(self), "limit": self.limit, "value": self.value}


def _card_metadata(path: Path | None) -> dict[str, Any] | None:
    """The YAML metadata of a model card, or None without a readable one."""
    if path is None:
        return None
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(path).data.to_dict()
    except Exception as exc:  # a hand-edited card: huggingface_hub raises several types
        logger.warning("%s: metadata not readable (%s); /info leaves it out", path, exc)
        return None


def _test_metrics(path: Path | None) -> dict[str, Any] | None:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        return None
    return {key: metrics[key] for key in TEST_METRICS if key in metrics} if isinstance(metrics, dict) else None


# ---------------------------------------------------------------- the app


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, whether declared (Content-Length) or streamed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse(self.error(int(declared)), status_code=413, headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, self.error(None))
            return message

        await self.app(scope, limited, send)

    def error(self, size: int | None) -> dict[str, Any]:
        """The 413 body; `size`: the declared length of the body, None for a streamed one."""
        found = f"is {size:,} bytes, over" if size is not None else "is over"
        return {"error": f"The request body {found} the limit of {self.limit:,} bytes (--max-body-bytes). "
                         "Send fewer or shorter texts per request.", "limit": "max_body_bytes", "value": self.limit}


class ApiKey:
    """ASGI middleware: a 401 for a request to one of `paths` without `Authorization: Bearer KEY`. The key is compared in
    constant time, as sha256 digests (so not even its length shows); a middleware, not a FastAPI dependency, as it costs
    a few microseconds a request where a dependency cost about 40."""

    def __init__(self, app: Any, key: str, paths: set[str]) -> None:
        self.app, self.paths, self.expected = app, paths, hashlib.sha256(key.encode()).digest()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            scheme, _, token = dict(scope["headers"]).get(b"authorization", b"").partition(b" ")
            if not (hmac.compare_digest(hashlib.sha256(token.strip()).digest(), self.expected) and scheme.lower() == b"bearer"):
                response = JSONResponse({"error": "This service needs its API key: send the header 'Authorization: Bearer KEY'."},
                                        status_code=401, headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _declare_bearer(app: FastAPI) -> None:
    """Name the API key in the OpenAPI schema (the /docs page's Authorize button)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            build().setdefault("components", {})["securitySchemes"] = {BEARER: {
                "type": "http", "scheme": "bearer", "description": f"the service's API key (--api-key or {API_KEY_VARIABLE})"}}
        return app.openapi_schema

    app.openapi = openapi


def create_app(settings: ServeSettings, on_load_error: Callable[[], None] | None = None) -> FastAPI:
    """The FastAPI app serving `settings.artifacts`; the model loads in its lifespan, in the background."""
    service = Service(settings, on_load_error)
    PredictRequest, ExplainRequest = request_models(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        logger.info("loading %s (backend %s)", settings.artifacts, settings.backend)
        loading = asyncio.get_running_loop().create_task(service.load())
        yield
        await loading
        await service.close()

    # FastAPIOffline: FastAPI with /docs and /redoc served from the assets of the fastapi-offline package, not a CDN
    app = FastAPIOffline(title="sentiment-gru", version=__version__, lifespan=lifespan, static_url="/static/docs",
                         description="A bidirectional GRU sentiment classifier: calibrated label probabilities and the words that decided them.")
    app.state.service = service
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_exception_handler(Exception, _internal_error)
    guarded = {}  # how /predict, /explain and /info declare the API key in the schema, when there is one
    if settings.api_key is not None:
        app.add_middleware(ApiKey, key=settings.api_key, paths={"/predict", "/explain", "/info"})  # outside BodyLimit: first
        _declare_bearer(app)
        guarded = {"openapi_extra": {"security": [{BEARER: []}]}}
    responses = {**ERROR_RESPONSES, **(AUTH_RESPONSES if settings.api_key else {})}

    # exclude_unset: "truncated" appears only in the results of texts that were cut
    @app.post("/predict", response_model=PredictResponse, response_model_exclude_unset=True, responses=responses,
              summary="Label texts", **guarded)
    async def predict(request: PredictRequest, http: Request) -> Any:
        """Labels and calibrated scores in the shape of a Hugging Face text-classification pipeline: for one text,
        its top_k labels; for a list, one such list per text (one object per text with top_k 1). An empty text gets
        `{"label": null, "score": null, "error": "empty text"}`; a text longer than the model reads is cut, and its
        results say `"truncated": true`."""
        single = isinstance(request.inputs, str)
        ranked = await service.predict([request.inputs] if single else request.inputs, _gone(http))
        return top_k_results(ranked, single, request.parameters.top_k)

    # exclude_unset: "truncated" appears only in the results of texts that were cut
    @app.post("/explain", response_model=ExplainResponse, response_model_exclude_unset=True, responses=responses,
              summary="Label texts and show why", **guarded)
    async def explain(request: ExplainRequest, http: Request) -> Any:
        """For each text, its label, every label's probability, and each token's score: how much the label's
        probability drops without it (positive: the token supports the label). The texts of one request may hold at
        most max_explain_tokens tokens together (see /info)."""
        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        return await service.explain(texts, request.parameters.mode, _gone(http))

    @app.get("/health", response_model=Health, response_model_exclude_none=True,
             responses={503: {"model": Health, "description": "Not ready, or no longer answering"}})
    async def health() -> Any:
        """200 `{"status": "ready"}` once the model is loaded; 503 before, when it failed to load, or once a call of the
        model overran --work-timeout (the service needs a restart)."""
        if service.failure is not None:
            return JSONResponse({"status": "failed", "error": service.failure}, status_code=503)
        if service.classifier is not None:
            return {"status": "ready"}
        if service.load_error is not None:
            return JSONResponse({"status": "failed", "error": service.load_error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503)

    @app.get("/info", response_model=Info, responses={503: ERROR_RESPONSES[503], **(AUTH_RESPONSES if settings.api_key else {})},
             **guarded)
    async def info() -> Any:
        """The labels, the model card's metadata, the test metrics, the backend, the limits and the timeouts."""
        service.check_ready()
        return service.info

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _gone(request: Request) -> Gone:
    """Whether the request's client has gone, asked at no cost: what the server's protocol (connections.py) puts in the
    scope; None under another server."""
    return request.scope.get("extensions", {}).get(DISCONNECTED)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """Nobody reads this answer: the client hung up, or sent its body too slowly (connections.DeadlineProtocol)."""
    return Response(status_code=499)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A JSON 500 for a bug (logged with its traceback by the server), never a plain-text one."""
    return JSONResponse({"error": f"The server failed on this request ({type(exc).__name__}); the error is logged."}, status_code=500)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc.detail, dict):
        body = exc.detail
    elif exc.status_code == 400:  # FastAPI could not decode the body
        body = {"error": f"The request body cannot be read as JSON: it is not UTF-8, or it nests too deeply. "
                         f"Send {REQUEST_SHAPE} with content-type application/json."}
    else:
        body = {"error": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming the limit a request exceeded, or what is wrong with it; the input is not echoed back."""
    errors = exc.errors()
    for error in errors:
        if error["type"] == "limit_exceeded":
            limit, value, found = error["ctx"]["limit"], error["ctx"]["value"], error["ctx"]["found"]
            if limit == "max_chars":
                index = error["loc"][-1]
                which = f"inputs[{index}]" if isinstance(index, int) else "The text"
                message = f"{which} has {found:,} characters; the limit is {value:,} ({flag(limit)}). Shorten it."
            else:
                message = f"{found:,} texts in one request; the limit is {value:,} ({flag(limit)}). Send them in several requests."
            return JSONResponse({"error": message, "limit": limit, "value": value}, status_code=422)
    detail = [{"loc": [p for p in error["loc"] if _plain(p)], "msg": error["msg"], "type": error["type"]} for error in errors]
    return JSONResponse({"error": _describe(errors), "detail": detail}, status_code=422)


def _plain(part: Any) -> bool:
    """Whether a location part names a field or an index (not one of pydantic's union branches)."""
    return isinstance(part, int) or not any(c in str(part) for c in "[]( ,")


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc[1:] if _plain(p)) or "body"


def _describe(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"The request body is not valid JSON ({first['ctx']['error']} at character {first['loc'][-1]}). Send {REQUEST_SHAPE}."
    if first["loc"] == ("body",):
        return f"The request needs a JSON object body: {REQUEST_SHAPE}, with content-type application/json."
    seen: dict[str, str] = {}
    for error in errors:
        where = _where(error["loc"])
        if where == "inputs" and error["type"] in ("string_type", "list_type"):
            seen[where] = "must be a text or a list of texts"
        else:
            seen.setdefault(where, error["msg"][0].lower() + error["msg"][1:])
    return "; ".join(f"{where}: {msg}" for where, msg in seen.items()) + f". Expected {REQUEST_SHAPE}."
