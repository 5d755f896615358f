"""`assay llm check`: what an endpoint (or the local model) can do, measured with a few tiny requests.

    report = asyncio.run(check_endpoint(LLMSettings(model="openai/smollm2", api_base=URL)))
    print(report.lines())

It reports: whether the endpoint answers and the models it lists (GET /models, OpenAI-compatible
endpoints only), which structured-output modes work (one tiny request with a one-field schema each:
"works" = accepted and the answer is valid against the schema; "accepted" = no rejection but the
answer does not follow the schema; "rejected"), the mode `structured = auto` picks, first-token
latency (the wall time of a one-token answer, after one warm-up request), decoding speed (the extra
tokens of a 64-token answer over the extra time it took) and whether answers report `usage`.

Every request goes through `LLMClient` (no cache, at most one retry), so what is checked is what a
pipeline would send.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from assay.llm.client import ADAPTIVE_KINDS, LLMClient
from assay.llm.settings import LLMSettings
from assay.llm.structured import NATIVE_MODE, PROBE_SCHEMA, STRUCTURED_MODES, parse_structured, probe_request
from assay.llm.types import ChatRequest, LLMError

SPEED_TOKENS = 64
# Two prompts of the same length (a server that reuses the KV state of the last prompt must not give
# the speed request a head start over the first-token one) that small models answer at length.
_STORY = "Write a long story about a {who}, with many details."


@dataclass
class ModeResult:
    mode: str
    status: str  # "works" | "accepted" | "rejected" | "failed" (an error that is not a rejection)
    detail: str = ""
    latency_s: float | None = None


@dataclass
class CheckReport:
    model: str
    kind: str  # "openai" | "litellm" | "anthropic" | "local"
    api_base: str | None
    runtime: str | None = None  # the local model's: "llamacpp" | "transformers"
    reachable: bool = False
    models: list[str] | None = None  # None: the endpoint has no model list (or it was not asked)
    models_error: str | None = None
    modes: list[ModeResult] = field(default_factory=list)
    auto_mode: str | None = None
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    speed_tokens: int = 0
    usage_reported: bool | None = None
    error: str | None = None  # why the endpoint could not be used at all

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def working_modes(self) -> list[str]:
        return [m.mode for m in self.modes if m.status == "works"]

    def lines(self) -> list[str]:
        """The report as aligned text lines."""
        where = self.api_base or ("in-process" if self.kind == "local" else "the provider's default endpoint")
        out = [f"model        {self.model} ({self.kind}{', ' + self.runtime if self.runtime else ''})"]
        out.append(f"endpoint     {where}")
        out.append(f"reachable    {'yes' if self.reachable else 'no'}" + (f": {self.error}" if self.error else ""))
        if self.models is not None:
            out.append(f"models       {', '.join(self.models) or '(none listed)'}")
        elif self.models_error:
            out.append(f"models       not listed ({self.models_error})")
        for i, m in enumerate(self.modes):
            took = f", {m.latency_s:.2f} s" if m.latency_s is not None else ""
            detail = f": {m.detail}" if m.detail else ""
            out.append(f"{'structured' if i == 0 else '':<12} {m.mode:<19}{m.status}{took}{detail}")
        if self.auto_mode:
            out.append(f"auto picks   {self.auto_mode}")
        if self.first_token_s is not None:
            out.append(f"first token  {self.first_token_s:.3f} s (a one-token answer)")
        if self.tokens_per_s is not None:
            out.append(f"tokens/s     {self.tokens_per_s:.1f} ({self.speed_tokens} tokens)")
        if self.usage_reported is not None:
            out.append(
                f"usage        {'reported' if self.usage_reported else 'not reported (token counts and cost are 0)'}"
            )
        return out


async def check_endpoint(settings: LLMSettings, speed_tokens: int = SPEED_TOKENS) -> CheckReport:
    """Run the checks for `settings` (model, api_base, key) and return the report. Never raises for
    an endpoint that fails: the report says what failed."""
    quick = settings.model_copy(update={"cache": None, "max_retries": min(settings.max_retries, 1)})
    client = LLMClient(quick)  # (a missing key raises here: nothing can be checked without it)
    report = CheckReport(model=settings.model, kind=client.kind, api_base=quick.public_dict().get("api_base"))
    try:
        if client.kind == "local":
            from assay.llm.local import runtime_for

            report.runtime = runtime_for(settings.model.split("/", 1)[1], settings.local_backend)
        if client.kind == "openai" or (client.kind == "litellm" and settings.api_base):
            await _list_models(client, report)
        try:  # warm-up: connects, loads a local model; also the reachability test for the others
            warm = await client.complete(ChatRequest.prompt("Say hello.", max_tokens=4))
            report.reachable = True
            report.usage_reported = warm.usage.completion_tokens > 0 or warm.usage.prompt_tokens > 0
        except LLMError as exc:
            report.reachable = False
            report.error = str(exc)
            return report
        await _check_modes(client, report)
        await _check_speed(client, report, speed_tokens)
    finally:
        await client.aclose()
    return report


async def _list_models(client: LLMClient, report: CheckReport) -> None:
    try:
        report.models = await client.list_models()
    except LLMError as exc:
        report.models_error = str(exc)


async def _check_modes(client: LLMClient, report: CheckReport) -> None:
    kind = client.kind
    modes = STRUCTURED_MODES if kind in ADAPTIVE_KINDS else (NATIVE_MODE[kind], "prompt")
    model = client.settings.model
    for mode in modes:
        # (explicit, json_schema too: a request in a given mode is sent as it is, never through auto)
        request = probe_request(model, None if mode in ("grammar", "tool") else mode)
        started = time.perf_counter()
        try:
            response = await client.complete(request)
        except LLMError as exc:
            status = "rejected" if exc.kind == "validation" else "failed"
            report.modes.append(ModeResult(mode, status, _short(str(exc).removeprefix(f"{model}: "))))
            continue
        took = time.perf_counter() - started
        value, error = parse_structured(response.text, _probe_validator)
        if error is None:
            report.modes.append(ModeResult(mode, "works", f"{value}", took))
        else:
            report.modes.append(ModeResult(mode, "accepted", f"answer not valid: {_short(error)}", took))
    auto = LLMClient(client.settings.model_copy(update={"structured": "auto"}))
    try:
        report.auto_mode = await auto.resolve_structured_mode()
    except LLMError as exc:
        report.auto_mode = None
        report.error = f"structured = auto found no mode: {exc}"
    finally:
        await auto.aclose()


def _probe_validator(value: Any) -> Any:
    if not isinstance(value, dict) or set(value) != set(PROBE_SCHEMA["properties"]):
        raise ValueError(f"expected {{'answer': true|false}}, got {str(value)[:60]}")
    if not isinstance(value["answer"], bool):
        raise ValueError("answer is not a boolean")
    return value


async def _check_speed(client: LLMClient, report: CheckReport, tokens: int) -> None:
    one = ChatRequest.prompt(_STORY.format(who="lighthouse keeper"), max_tokens=1)
    many = ChatRequest.prompt(_STORY.format(who="mountain shepherd"), max_tokens=tokens)
    try:
        first = await client.complete(one)
        long = await client.complete(many)
    except LLMError as exc:
        report.error = f"the speed requests failed: {exc}"
        return
    report.first_token_s = first.latency_s
    made = long.usage.completion_tokens
    report.speed_tokens = made
    if made > 1 and long.latency_s > first.latency_s:
        report.tokens_per_s = (made - 1) / (long.latency_s - first.latency_s)
    elif made > 0 and long.latency_s > 0:
        report.tokens_per_s = made / long.latency_s


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
