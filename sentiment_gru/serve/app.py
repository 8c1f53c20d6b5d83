"""The FastAPI app that serves a trained model: the endpoints, the model loaded once, the limits and the error bodies.

Endpoints: `POST /predict` (the Hugging Face inference schema: `{"inputs": "text" | ["text", ...], "parameters":
{"top_k": null | k}}`, answered in the shape `SentimentClassifier.__call__` gives), `POST /explain` (each text's
prediction with its occlusion explanation), `GET /health`, `GET /info`, `/openapi.json`, `/docs`, and a page at `/`.

The model loads once, in the app's lifespan, on the one worker thread that runs every forward pass; until it is
ready, /health and the model's endpoints answer 503. Concurrent /predict requests are gathered into one forward
pass (`MicroBatcher`). Importing this module does not import torch, and neither does serving with `--backend onnx`.
`serve.command` runs the app on uvicorn.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import UserError
from ..files import CARD_FILE, METRICS_FILE
from ..inference.classifier import SentimentClassifier, top_k_results
from .batcher import MicroBatcher
from .schemas import ERROR_RESPONSES, REQUEST_SHAPE, ExplainResponse, Health, Info, PredictResponse, request_models
from .settings import ServeSettings, flag

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
TEST_METRICS = ("split", "size", "accuracy", "macro_f1", "weighted_f1", "log_loss", "confidence_intervals", "calibration")


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
            "read_length": classifier.encoder.read_length, "tail_tokens": classifier.encoder.tail_tokens,
            "card": _card_metadata(folder / CARD_FILE), "metrics": _test_metrics(folder / METRICS_FILE),
            "limits": s.limits(), "batching": {"max_batch_size": s.max_batch_size, "max_wait_ms": s.max_wait_ms},
            "version": __version__,
        }
        logger.info("loaded %s in %.1f s", folder, time.perf_counter() - started)
        return classifier, info

    def _predict(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        """Every label of each text, best first (the worker thread)."""
        assert self.classifier is not None
        return self.classifier(texts, top_k=None, batch_size=self.settings.max_batch_size, truncation=True)

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

    # exclude_unset: "truncated" appears only in the results of texts that were cut
    @app.post("/predict", response_model=PredictResponse, response_model_exclude_unset=True, responses=ERROR_RESPONSES, summary="Label texts")
    async def predict(request: PredictRequest) -> Any:
        """Labels and calibrated scores in the shape of a Hugging Face text-classification pipeline: for one text,
        its top_k labels; for a list, one such list per text (one object per text with top_k 1). An empty text gets
        `{"label": null, "score": null, "error": "empty text"}`; a text longer than the model reads is cut, and its
        results say `"truncated": true`."""
        single = isinstance(request.inputs, str)
        ranked = await service.predict([request.inputs] if single else request.inputs)
        return top_k_results(ranked, single, request.parameters.top_k)

    @app.post("/explain", response_model=ExplainResponse, response_model_exclude_unset=True, responses=ERROR_RESPONSES,
              summary="Label texts and show why")
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
