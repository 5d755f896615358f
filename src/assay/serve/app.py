"""The HTTP API and the page of `assay serve`.

    GET  /               the page (static/index.html); /static/app.js, /static/style.css
    GET  /healthz        {"status": "ok"}
    GET  /api/models     what is loaded (mode, vocabulary, sizes, training metrics), limits, counters
    POST /api/score      {"texts": [...]} or {"text": "..."} -> {"results": [...]}, each result the
                         object `assay score --json` prints (score, n_tokens, tokens with p_replaced)
    POST /api/generate   {"prompt", "length", "steps", "temperature", "top_p", "seed", "sampler",
                         "stream"} -> the `assay generate --json` object, or NDJSON steps

Every error is JSON `{"error": "<one line>", "status": <code>}`: 413 for a body over
`limits.max_request_bytes`, 422 for a body that is not UTF-8 JSON or asks for something outside
the limits (empty or too long texts, too many, bad parameters), 404 for /api/generate without an
LM, 503 with Retry-After when too much work is waiting; the refusals of `security.Guard` (Host
400, token 401, Content-Type 415) come before any of that. The API reads no files: it takes
texts and returns numbers, and names the loaded runs by their folder names only.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive

from assay.config import validation_message
from assay.serve import generation
from assay.serve.batcher import Batcher, Overloaded
from assay.serve.config import ServeConfig
from assay.serve.models import Loaded, models_info
from assay.serve.security import Access, Guard, SecurityHeaders

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] | None = None
    text: str | None = None


def create_app(cfg: ServeConfig, loaded: Loaded, access: Access | None = None) -> FastAPI:
    """The app; `access` defaults to `Access.from_config(cfg.server)`."""
    limits = cfg.limits
    access = access if access is not None else Access.from_config(cfg.server)
    judge = loaded.judge
    # One thread per model: requests queue for it instead of fighting over the cores.
    judge_thread = ThreadPoolExecutor(1, thread_name_prefix="assay-judge")
    lm_thread = ThreadPoolExecutor(1, thread_name_prefix="assay-lm")
    batcher = Batcher(
        lambda texts: judge.score(texts, batch_size=limits.window_batch),
        judge_thread,
        limits.batch_texts,
        limits.batch_wait_ms / 1000,
        limits.max_queued_texts,
    )
    generations = (
        generation.Generations(loaded.lm, lm_thread, limits.max_generations) if loaded.lm is not None else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            judge_thread.shutdown(wait=True)
            lm_thread.shutdown(wait=True)

    app = FastAPI(title="assay serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    info = models_info(loaded) | {"limits": limits.model_dump()}  # fixed while the server runs

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded):
        return _error(503, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no such page or endpoint: {request.url.path}"
        return _error(exc.status_code, message)

    app.add_middleware(Guard, access=access)
    app.add_middleware(SecurityHeaders)  # the outer one: on Guard's refusals too

    for route, (name, media_type) in STATIC.items():
        body = resources.files("assay.serve").joinpath("static", name).read_bytes()
        app.add_api_route(route, _static(body, media_type), methods=["GET"], include_in_schema=False)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/models")
    async def models() -> dict[str, Any]:
        return info | {"stats": batcher.stats() | (generations.stats() if generations else {})}

    @app.post("/api/score")
    async def score(request: Request):
        batcher.check()  # a full queue: refused before the body is read
        req = _parse(ScoreRequest, await read_json(request, limits.max_request_bytes))
        if (req.text is None) == (req.texts is None):
            raise ApiError(422, 'send exactly one of "text" (a string) or "texts" (a list of strings)')
        texts = [req.text] if req.text is not None else req.texts
        assert texts is not None
        if not texts:
            raise ApiError(422, '"texts" is empty: send at least one text')
        if len(texts) > limits.max_texts:
            raise ApiError(422, f"{len(texts)} texts in one request; the limit is {limits.max_texts}")
        for i, text in enumerate(texts):
            where = "the text" if req.text is not None else f"text {i + 1}"
            _check_text(text, where, limits.max_text_chars, allow_empty=False)
        return _json({"results": await batcher.score(texts)})

    @app.post("/api/generate")
    async def generate(request: Request):
        if generations is None:
            raise ApiError(404, "no language model is loaded: start the server with --lm LM_DIR")
        req = _parse(generation.GenerateRequest, await read_json(request, limits.max_request_bytes))
        if req.length > limits.max_generate_tokens:
            raise ApiError(422, f"length {req.length} is over the limit of {limits.max_generate_tokens} tokens")
        if req.steps > limits.max_steps:
            raise ApiError(422, f"steps {req.steps} is over the limit of {limits.max_steps}")
        _check_text(req.prompt, "the prompt", limits.max_text_chars, allow_empty=True)
        job = generations.admit(req)
        if req.stream:  # (the background task stops a stream whose client left before it began)
            return StreamingResponse(
                job.stream(), media_type="application/x-ndjson", background=BackgroundTask(job.stop)
            )
        answer = await job.answer(_disconnected(request.receive))
        if answer is None:  # nobody is listening; nginx's code for it, for the access log
            return _error(499, "the client closed the connection")
        return _json(answer)

    return app


def _json(obj: Any) -> Response:
    """A JSON response of plain dicts/lists/numbers, serialised once by json.dumps (FastAPI's
    jsonable_encoder walks every token's fields first: 5x slower on a scored text)."""
    return Response(json.dumps(obj, ensure_ascii=False, allow_nan=False), media_type="application/json")


def _static(body: bytes, media_type: str):
    async def page() -> Response:
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    return page


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split()), "status": status}, status_code=status, headers=headers)


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone. Only once the body has been read: the server's next
    message is then the disconnect (the response is still to come)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON: at most `limit` bytes (413), UTF-8 (422), valid JSON (422).
    A Content-Length over the limit is refused before any of the body is read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise ApiError(413, f"request body of {size} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes")
    if not body.strip():
        raise ApiError(422, "the request body is empty: send a JSON object")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, f"the request body is not valid UTF-8 (bad byte at offset {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            422, f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None


def _parse(model: type[BaseModel], obj: Any):
    if not isinstance(obj, dict):
        raise ApiError(422, f"the request body must be a JSON object, not {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise ApiError(422, validation_message(exc, root="body")) from None


def _check_text(text: str, where: str, max_chars: int, allow_empty: bool) -> None:
    if not allow_empty and not text.strip():
        raise ApiError(422, f"{where} is empty: there is nothing to score")
    if len(text) > max_chars:
        raise ApiError(422, f"{where} has {len(text)} characters; the limit is {max_chars}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate sent as a \\ud800 escape
        raise ApiError(422, f"{where} is not valid Unicode (it holds a lone surrogate)") from None
