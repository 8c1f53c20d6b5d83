"""Serve a trained model over HTTP: FastAPI on uvicorn, with micro-batching.

    $ python scripts/serve.py --artifacts artifacts --port 8000
    $ curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"inputs": "what a wonderful film"}'

Endpoints: `POST /predict` (the Hugging Face inference schema: `{"inputs": "text" | ["text", ...], "parameters":
{"top_k": null | k}}`, answered in the shape `SentimentClassifier.__call__` gives), `POST /explain` (each text's
prediction with its occlusion explanation), `GET /health`, `GET /info`, `/openapi.json`, `/docs`, and a page at `/`.

The model loads once, in the app's lifespan, on the one worker thread that runs every forward pass; until it is
ready, /health and the model's endpoints answer 503. Concurrent /predict requests are gathered into one forward
pass (`MicroBatcher`). Importing this module does not import torch, and neither does serving with `--backend onnx`.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..config import MAX_BATCH_SIZE, option, validate_options
from ..errors import EXIT_USER_ERROR, ArtifactsError, ConfigError, UserError
from ..files import CARD_FILE, METRICS_FILE
from ..inference.backends import BACKEND_CHOICES, BACKEND_HELP, BACKENDS, choose_backend
from ..inference.classifier import EMPTY_TEXT_ERROR, SentimentClassifier
from ..inference.explain import OCCLUSION_MODES
from ..inference.folder import read_folder
from ..text.tokenizer import valid_unicode

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
TEST_METRICS = ("split", "size", "accuracy", "macro_f1", "weighted_f1", "log_loss", "confidence_intervals", "calibration")
REQUEST_SHAPE = '{"inputs": "text" or ["text", ...], "parameters": {...}}'


@dataclass(frozen=True)
class ServeSettings:
    """What the server loads, how it batches and the limits it enforces; each field is the option of the same name."""

    artifacts: str = "artifacts"  # the model folder to serve
    backend: str = option("auto", BACKEND_HELP, choices=BACKEND_CHOICES)
    threads: int = option(1, "threads per forward pass, on either backend: one leaves a core to the HTTP side, and micro-batching, "
                             "not threads, makes a busy server fast; scale out with more processes", low=1, high=1024)
    max_batch_size: int = option(32, "texts per forward pass; 1 turns micro-batching off", low=1, high=MAX_BATCH_SIZE)
    max_wait_ms: float = option(0.0, "how long a request may wait for others to share its forward pass; 0: a batch is whatever "
                                     "waits when the model is free, which grows with the load", low=0.0, high=10_000.0)
    max_body_bytes: int = option(1 << 20, "bytes in a request body", low=64, high=1 << 30)
    max_texts: int = option(64, "texts per /predict request", low=1, high=1_000_000)
    max_explain_texts: int = option(8, "texts per /explain request (each costs a forward pass per token)", low=1, high=1_000_000)
    max_chars: int = option(10_000, "characters per text", low=1, high=100_000_000)

    def __post_init__(self) -> None:
        validate_options(self)

    def limits(self) -> dict[str, int]:
        return {"max_body_bytes": self.max_body_bytes, "max_texts": self.max_texts,
                "max_explain_texts": self.max_explain_texts, "max_chars": self.max_chars}


# The command-line options of ServeSettings' fields, by section of --help.
OPTION_GROUPS = {
    "model": ("backend", "threads"),
    "micro-batching": ("max_batch_size", "max_wait_ms"),
    "limits (a request over one gets a 413 or 422 that names it)": ("max_body_bytes", "max_texts", "max_explain_texts", "max_chars"),
}


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


# ---------------------------------------------------------------- request and response schemas


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="calibrated probability of the label")


class EmptyText(BaseModel):
    label: None
    score: None
    error: Literal[EMPTY_TEXT_ERROR]


Result = LabelScore | EmptyText
PredictResponse = list[Result] | list[list[Result]]


class TokenScore(BaseModel):
    token: str
    score: float = Field(description="how much the predicted label's probability drops without this token: > 0 for it, < 0 against")
    start: int = Field(description="character offsets of the token in the text (code points)")
    end: int


class Explanation(BaseModel):
    label: str
    probability: float = Field(description="calibrated probability of the label")
    probabilities: dict[str, float] = Field(description="every label's calibrated probability")
    explanation: list[TokenScore]


class EmptyExplanation(BaseModel):
    label: None
    error: Literal[EMPTY_TEXT_ERROR]
    explanation: list[TokenScore] = Field(max_length=0)


ExplainResponse = list[Explanation | EmptyExplanation]


class Health(BaseModel):
    status: Literal["ready", "loading", "failed"]
    error: str | None = Field(None, description="why the model could not be loaded")


class Limits(BaseModel):
    max_body_bytes: int
    max_texts: int
    max_explain_texts: int
    max_chars: int


class Batching(BaseModel):
    max_batch_size: int = Field(description="texts per forward pass; 1: batching is off")
    max_wait_ms: float


class Info(BaseModel):
    model: str = Field(description="the model folder's name")
    labels: list[str]
    backend: Literal[tuple(BACKENDS)]
    card: dict[str, Any] | None = Field(description="the model card's metadata (the YAML of its README.md)")
    metrics: dict[str, Any] | None = Field(description="test metrics from metrics.json")
    limits: Limits
    batching: Batching
    version: str


class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong and how to fix it")
    limit: str | None = Field(None, description="the setting a request exceeded")
    value: int | None = Field(None, description="that setting's value")
    detail: list[dict[str, Any]] | None = Field(None, description="each validation error: loc, msg, type")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not UTF-8, or nests too deeply"},
    413: {"model": ErrorBody, "description": "The body is over max_body_bytes"},
    422: {"model": ErrorBody, "description": "Invalid request, or over max_texts / max_explain_texts / max_chars"},
    503: {"model": ErrorBody, "description": "The model is still loading, or failed to load"},
}


def _capped(kind: type, limit: str, value: int, what: str) -> BeforeValidator:
    """A validator that rejects a `kind` (str or list) longer than `value`, naming the setting `limit`."""

    def check(found: Any) -> Any:
        if isinstance(found, kind) and len(found) > value:
            raise PydanticCustomError("limit_exceeded", "{found} {what}; the limit is {value} ({limit})",
                                      {"limit": limit, "value": value, "found": len(found), "what": what})
        return found

    return BeforeValidator(check)


def request_models(settings: ServeSettings) -> tuple[type[BaseModel], type[BaseModel]]:
    """The /predict and /explain request models, with the limits of `settings` enforced and in the schema."""
    text = Annotated[str, _capped(str, "max_chars", settings.max_chars, "characters in a text"), BeforeValidator(_clean_text),
                     Field(json_schema_extra={"maxLength": settings.max_chars})]

    def texts(limit: str) -> Any:
        value = getattr(settings, limit)
        many = Annotated[list[text], _capped(list, limit, value, "texts in one request"), Field(json_schema_extra={"maxItems": value})]
        return Annotated[text | many, Field(description=f"a text, or a list of at most {value} texts "
                                                        f"(each at most {settings.max_chars} characters)")]

    class PredictParameters(BaseModel):
        top_k: Annotated[int, Field(ge=1, strict=True), BeforeValidator(_whole_number)] | None = Field(
            1, description="labels per text, best first; null for every label")

    class PredictRequest(BaseModel):
        model_config = ConfigDict(json_schema_extra={"examples": [
            {"inputs": "what a wonderful film"}, {"inputs": ["a wonderful film", "a tedious mess"], "parameters": {"top_k": None}}]})
        inputs: texts("max_texts")
        parameters: PredictParameters = PredictParameters()

    class ExplainParameters(BaseModel):
        mode: Literal[OCCLUSION_MODES] = Field("drop", description="drop: take each token out; unk: replace it with [UNK]")

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(json_schema_extra={"examples": [{"inputs": "a tedious mess with one charming scene"}]})
        inputs: texts("max_explain_texts")
        parameters: ExplainParameters = ExplainParameters()

    return PredictRequest, ExplainRequest


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: 2 and 2.0, but not true or "2"."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _clean_text(text: Any) -> Any:
    """Lone surrogates (JSON's "\\ud800"), which UTF-8 cannot hold, become U+FFFD; same length, so offsets hold."""
    return valid_unicode(text) if isinstance(text, str) else text


# ---------------------------------------------------------------- micro-batching


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future
    arrived: float  # loop time


class MicroBatcher:
    """Gathers the texts of concurrent requests into one forward pass, run on the model's worker thread.

    A batch closes when `max_batch_size` texts are waiting or when its oldest request has waited `max_wait`
    seconds; while a forward pass runs, new requests queue for the next one, so batches grow with the load.
    A request's texts are never split across batches (one with more texts than `max_batch_size` goes alone,
    `run` cutting it into forward passes), and its results do not depend on its batch: the backends mask padding.
    """

    def __init__(self, run: Callable[[list[str]], list], executor: ThreadPoolExecutor, max_batch_size: int, max_wait: float) -> None:
        self.run, self.executor = run, executor
        self.max_batch_size, self.max_wait = max_batch_size, max_wait
        self._jobs: deque[_Job] = deque()
        self._waiting = 0  # texts in _jobs
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def close(self) -> None:
        """Stop gathering; requests still waiting (only after a graceful-shutdown timeout) are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._jobs:
            job.future.cancel()

    async def submit(self, texts: list[str]) -> list:
        """One result per text, computed in a batch with whatever other requests are waiting."""
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), loop.time())
        self._jobs.append(job)
        self._waiting += len(texts)
        self._arrived.set()
        return await job.future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._jobs:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = self._jobs[0].arrived + self.max_wait
            while self._waiting < self.max_batch_size and (left := deadline - loop.time()) > 0:
                self._arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
            batch = self._take()
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self.run, [t for job in batch for t in job.texts])
            except Exception as exc:  # a bug, not the input: every request of the batch gets the 500
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            start = 0
            for job in batch:
                if not job.future.done():  # not cancelled meanwhile
                    job.future.set_result(results[start:start + len(job.texts)])
                start += len(job.texts)

    def _take(self) -> list[_Job]:
        """The oldest waiting requests, up to `max_batch_size` texts (at least one request)."""
        batch: list[_Job] = []
        size = 0
        while self._jobs and (not batch or size + len(self._jobs[0].texts) <= self.max_batch_size):
            job = self._jobs.popleft()
            self._waiting -= len(job.texts)
            if not job.future.done():
                batch.append(job)
                size += len(job.texts)
        return batch


# ---------------------------------------------------------------- the model, loaded once


class Service:
    """The model behind the app: loaded on the worker thread, then used only there."""

    def __init__(self, settings: ServeSettings, on_load_error: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_load_error = on_load_error  # called when loading fails (the command stops the server)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.classifier: SentimentClassifier | None = None
        self.batcher: MicroBatcher | None = None
        self.info: dict[str, Any] | None = None
        self.load_error: str | None = None

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
        self.batcher = MicroBatcher(self._predict, self.executor, self.settings.max_batch_size, self.settings.max_wait_ms / 1000)
        self.batcher.start()
        self.classifier, self.info = classifier, info
        logger.info("model ready: %s on %s, labels %s", info["model"], info["backend"], ", ".join(info["labels"]))

    def _load(self) -> tuple[SentimentClassifier, dict[str, Any]]:
        s = self.settings
        started = time.perf_counter()
        classifier = SentimentClassifier.from_pretrained(s.artifacts, backend=s.backend, threads=s.threads)
        classifier(["warm up"])  # the first forward pass is slow on both backends: pay it before saying ready
        folder = Path(s.artifacts)
        info = {
            "model": folder.resolve().name, "labels": classifier.label_names, "backend": classifier.backend_name,
            "card": _card_metadata(folder / CARD_FILE), "metrics": _test_metrics(folder / METRICS_FILE),
            "limits": s.limits(), "batching": {"max_batch_size": s.max_batch_size, "max_wait_ms": s.max_wait_ms},
            "version": __version__,
        }
        logger.info("loaded %s in %.1f s", folder, time.perf_counter() - started)
        return classifier, info

    def _predict(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        """Every label of each text, best first (the worker thread)."""
        assert self.classifier is not None
        return self.classifier(texts, top_k=None, batch_size=self.settings.max_batch_size)

    def _explain(self, texts: list[str], mode: str) -> list[dict[str, Any]]:
        assert self.classifier is not None
        return [self.classifier.explain_details(text, mode) for text in texts]

    def check_ready(self) -> None:
        """A 503 that says why, until the model is loaded."""
        if self.classifier is not None:
            return
        if self.load_error is not None:
            raise HTTPException(503, f"The model could not be loaded: {self.load_error}")
        raise HTTPException(503, "The model is still loading; retry when GET /health says ready.", headers={"Retry-After": "1"})

    async def predict(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        self.check_ready()
        assert self.batcher is not None
        return await self.batcher.submit(texts) if texts else []

    async def explain(self, texts: list[str], mode: str) -> list[dict[str, Any]]:
        self.check_ready()
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._explain, texts, mode)

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        self.executor.shutdown(wait=True)


def _card_metadata(path: Path) -> dict[str, Any] | None:
    """The YAML metadata of a model card, or None without a readable one."""
    if not path.is_file():
        return None
    from huggingface_hub import ModelCard

    try:
        return ModelCard.load(path).data.to_dict()
    except Exception as exc:  # a hand-edited card: huggingface_hub raises several types
        logger.warning("%s: metadata not readable (%s); /info leaves it out", path, exc)
        return None


def _test_metrics(path: Path) -> dict[str, Any] | None:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {key: metrics[key] for key in TEST_METRICS if key in metrics}


def shape(ranked: list[list[dict[str, Any]]], single: bool, top_k: int | None) -> list:
    """Cut every label of each text, best first, to what `SentimentClassifier.__call__(inputs, top_k)` returns."""
    cut = [labels[:top_k] for labels in ranked]
    if single:
        return cut[0]
    return [labels[0] for labels in cut] if top_k == 1 else cut


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

    app = FastAPI(title="sentiment-gru", version=__version__, lifespan=lifespan,
                  description="A bidirectional GRU sentiment classifier: calibrated label probabilities and the words that decided them.")
    app.state.service = service
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.post("/predict", response_model=PredictResponse, responses=ERROR_RESPONSES, summary="Label texts")
    async def predict(request: PredictRequest) -> Any:
        """Labels and calibrated scores in the shape of a Hugging Face text-classification pipeline: for one text,
        its top_k labels; for a list, one such list per text (one object per text with top_k 1). An empty text gets
        `{"label": null, "score": null, "error": "empty text"}`."""
        single = isinstance(request.inputs, str)
        ranked = await service.predict([request.inputs] if single else request.inputs)
        return shape(ranked, single, request.parameters.top_k)

    @app.post("/explain", response_model=ExplainResponse, responses=ERROR_RESPONSES, summary="Label texts and show why")
    async def explain(request: ExplainRequest) -> Any:
        """For each text, its label, every label's probability, and each token's score: how much the label's
        probability drops without it (positive: the token supports the label)."""
        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        return await service.explain(texts, request.parameters.mode)

    @app.get("/health", response_model=Health, response_model_exclude_none=True,
             responses={503: {"model": Health, "description": "Not ready"}})
    async def health() -> Any:
        """200 `{"status": "ready"}` once the model is loaded; 503 before, or when it failed to load."""
        if service.classifier is not None:
            return {"status": "ready"}
        if service.load_error is not None:
            return JSONResponse({"status": "failed", "error": service.load_error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503)

    @app.get("/info", response_model=Info, responses={503: ERROR_RESPONSES[503]})
    async def info() -> Any:
        """The labels, the model card's metadata, the test metrics, the backend and the limits."""
        service.check_ready()
        return service.info

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


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
                message = f"{which} has {found:,} characters; the limit is {value:,} ({_flag(limit)}). Shorten it."
            else:
                message = f"{found:,} texts in one request; the limit is {value:,} ({_flag(limit)}). Send them in several requests."
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


# ---------------------------------------------------------------- the command


def serve_parser() -> argparse.ArgumentParser:
    fields = {f.name: f for f in dataclasses.fields(ServeSettings)}
    parser = argparse.ArgumentParser(prog="serve", description="Serve a trained model over HTTP: POST /predict, POST /explain, "
                                                               "GET /health, GET /info, /docs, and a page at /.")
    parser.add_argument("--artifacts", default=fields["artifacts"].default, help="trained model folder (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for every interface (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    for title, names in OPTION_GROUPS.items():
        group = parser.add_argument_group(title)
        for name in names:
            meta, default = fields[name].metadata, fields[name].default
            kind = {"choices": meta["choices"]} if meta["choices"] else {"type": type(default)}
            group.add_argument(_flag(name), default=default, help=f"{meta['help']} (default: %(default)s)", **kind)
    parser.add_argument("--graceful-timeout", type=float, default=30.0,
                        help="on SIGTERM or Ctrl+C, seconds to let requests in flight finish (default: %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    return parser


def serve_main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl+C; 0 after a graceful stop, 2 (one line on stderr) on a user error."""
    args = serve_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)
    try:
        return _serve(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def _serve(args: argparse.Namespace) -> int:
    settings = ServeSettings(artifacts=args.artifacts, **{name: getattr(args, name) for names in OPTION_GROUPS.values() for name in names})
    if not args.graceful_timeout >= 0:
        raise ConfigError(f"--graceful-timeout must be a number of seconds >= 0. Got {args.graceful_timeout}.")
    folder = read_folder(settings.artifacts, verify=())  # the usual mistakes, said before the server starts
    choose_backend(settings.backend, folder.path)  # and what the backend asked for needs (--backend onnx: model.onnx)
    listening = _listen(args.host, args.port)
    server: uvicorn.Server | None = None

    def stop() -> None:
        assert server is not None
        server.should_exit = True

    app = create_app(settings, on_load_error=stop)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=args.access_log, lifespan="on",
                                           timeout_graceful_shutdown=args.graceful_timeout))
    logger.info("serving on http://%s:%d (docs: /docs)", *listening.getsockname()[:2])
    with _graceful_signals():
        server.run(sockets=[listening])
    if app.state.service.load_error is not None:
        raise ArtifactsError(app.state.service.load_error)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a ConfigError saying why not."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535]. Got {port}.")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}). Pick another --port or --host, "
                          "or stop the process that uses it.") from None


@contextlib.contextmanager
def _graceful_signals():
    """Let SIGTERM and SIGINT end the process with status 0 once uvicorn has shut down gracefully.

    uvicorn re-raises the signal it caught to the handler that was there before it; the default one would kill
    the process (status -15) or raise KeyboardInterrupt.
    """
    previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
