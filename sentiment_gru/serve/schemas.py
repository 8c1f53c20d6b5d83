"""The service's request and response models, from which FastAPI builds its OpenAPI schema; the request models carry
the limits of the settings, enforced and declared."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from ..inference.backends import BACKENDS
from ..inference.classifier import EMPTY_TEXT_ERROR
from ..inference.explain import OCCLUSION_MODES
from ..text.tokenizer import valid_unicode
from .settings import ServeSettings

REQUEST_SHAPE = '{"inputs": "text" or ["text", ...], "parameters": {...}}'  # as the error messages show it


TRUNCATED = Field(None, description="present, and true, when the text was longer than the model reads and it read only part of it "
                                    "(see /info's read_length)")


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="calibrated probability of the label")
    truncated: Literal[True] | None = TRUNCATED


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
    score: float = Field(description="calibrated probability of the label")
    probability: float = Field(description="the same as score, its old name; it goes in the next release", deprecated=True)
    probabilities: dict[str, float] = Field(description="every label's calibrated probability")
    explanation: list[TokenScore]
    truncated: Literal[True] | None = TRUNCATED


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
    max_explain_tokens: int = Field(description="tokens per /explain request, its texts together")
    max_header_bytes: int = Field(description="bytes in a request's line and headers")


class Timeouts(BaseModel):
    work_timeout: float = Field(description="seconds one call of the model may take before the service reports itself failed")
    keep_alive_timeout: float = Field(description="seconds a connection may stay idle")
    header_timeout: float = Field(description="seconds to send a request's line and headers")
    body_timeout: float = Field(description="seconds to send a request's body")


class Batching(BaseModel):
    max_batch_size: int = Field(description="texts per forward pass; 1: batching is off")
    max_wait_ms: float


class Info(BaseModel):
    model: str = Field(description="the model folder's name")
    labels: list[str]
    backend: Literal[tuple(BACKENDS)]
    read_length: int | None = Field(description="tokens of a text the model reads at most; a longer text is cut (null: read whole)")
    tail_tokens: int = Field(description="of a cut text, tokens read from its end (the rest from its start)")
    card: dict[str, Any] | None = Field(description="the model card's metadata (the YAML of its README.md)")
    metrics: dict[str, Any] | None = Field(description="test metrics from metrics.json")
    limits: Limits
    batching: Batching
    timeouts: Timeouts
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
    503: {"model": ErrorBody, "description": "The model is still loading, failed to load, or stopped answering"},
}
# With an API key (--api-key): what a request without it gets.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody, "description": "No API key, or not the service's"}}


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
