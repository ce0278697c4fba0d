"""The Anthropic SDK behind one narrow seam: build a client, make a call, classify its errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from osiris.compiler.llm.pipeline import TOOL_NAME
from osiris.runtime.contract.exits import ExitCode

# The newest Sonnet in the SDK's model list that the SDK does not mark deprecated
# (tests/test_llm_contract.py checks both against the installed SDK).
DEFAULT_MODEL = "claude-sonnet-5-5"
MODEL_ENV = "OSIRIS_LLM_MODEL"
KEY_ENVS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
RETRIES_ENV = "OSIRIS_LLM_MAX_RETRIES"  # the SDK's retries of 429/5xx/connection errors
TIMEOUT_SECONDS = 120.0


class LlmError(Exception):
    """A model call that cannot be made or was refused: one line, an exit code, never the key."""

    def __init__(self, message: str, exit_code: int = ExitCode.CONFIGURATION) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Usage:
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_creation: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_creation + other.cache_creation,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation_input_tokens": self.cache_creation,
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """One model answer: the forced tool's call (None if it made none) and what it cost."""

    tool_use: dict[str, Any] | None  # {"type": "tool_use", "id", "name", "input"}
    usage: Usage
    stop_reason: str | None
    text: str = ""  # any text blocks, for the user when no tool was called
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def model_name(explicit: str | None, environ: Mapping[str, str]) -> str:
    return explicit or environ.get(MODEL_ENV) or DEFAULT_MODEL


def has_key(environ: Mapping[str, str]) -> bool:
    return any(environ.get(name) for name in KEY_ENVS)


def make_client(environ: Mapping[str, str]) -> Any:
    """An Anthropic client from environ: ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) and
    ANTHROPIC_BASE_URL, the SDK's own names, so gateways and proxies keep working."""
    if not has_key(environ):
        raise LlmError(
            "no API key: set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a gateway or proxy)"
        )
    try:
        import anthropic
    except ImportError:
        raise LlmError(
            "the Anthropic SDK is not installed: pip install 'osiris-oml[llm]'"
        ) from None
    try:
        retries = int(environ.get(RETRIES_ENV) or 2)
        key = environ.get("ANTHROPIC_API_KEY") or None
        return anthropic.Anthropic(
            api_key=key,
            auth_token=None if key else environ.get("ANTHROPIC_AUTH_TOKEN"),
            base_url=environ.get("ANTHROPIC_BASE_URL") or None,
            timeout=TIMEOUT_SECONDS,
            max_retries=retries,
        )
    except Exception as err:  # anthropic.AnthropicError, ValueError from a bad configuration
        raise LlmError(
            f"cannot configure the Anthropic client: {_scrub(str(err), environ)}"
        ) from None


def reply_from_message(message: Any) -> Reply:
    """The SDK's Message as a Reply: the tool_use block of our tool, usage with cache fields."""
    tool_use = None
    texts = []
    for block in message.content:
        if block.type == "tool_use" and block.name == TOOL_NAME and tool_use is None:
            tool_use = {
                "type": "tool_use",
                "id": block.id,
                "name": block.name,
                "input": block.input,
            }
        elif block.type == "text":
            texts.append(block.text)
    u = message.usage
    usage = Usage(
        u.input_tokens,
        u.output_tokens,
        u.cache_read_input_tokens or 0,
        u.cache_creation_input_tokens or 0,
    )
    return Reply(tool_use, usage, message.stop_reason, "\n".join(texts))


def create(client: Any, params: dict[str, Any], environ: Mapping[str, str]) -> Reply:
    try:
        message = client.messages.create(**params)
    except Exception as err:
        raise classify(err, environ, params.get("model")) from None
    return reply_from_message(message)


def count_tokens(client: Any, params: dict[str, Any], environ: Mapping[str, str]) -> int:
    """Exact input tokens of a request (the API's count_tokens endpoint)."""
    keep = ("model", "system", "tools", "tool_choice", "messages")
    try:
        counted = client.messages.count_tokens(**{k: params[k] for k in keep if k in params})
    except Exception as err:
        raise classify(err, environ, params.get("model")) from None
    return int(counted.input_tokens)


def classify(err: Exception, environ: Mapping[str, str], model: str | None = None) -> Exception:
    """An SDK error as an LlmError with one line (exit 5); anything else is returned as is."""
    try:
        import anthropic
    except ImportError:  # pragma: no cover - we got here through the SDK
        return err
    if not isinstance(err, anthropic.AnthropicError):
        return err
    detail = _scrub(str(getattr(err, "api_message", None) or err), environ)
    if isinstance(err, anthropic.AuthenticationError):
        return LlmError(f"the API refused the key (401): check ANTHROPIC_API_KEY: {detail}")
    if isinstance(err, anthropic.PermissionDeniedError):
        return LlmError(f"the key may not use this model or API (403): {detail}")
    if isinstance(err, anthropic.NotFoundError):
        return LlmError(f"model {model!r} or endpoint not found (404): set --model: {detail}")
    if isinstance(err, anthropic.RateLimitError):
        return LlmError(f"rate limited by the API (429), try again later: {detail}")
    if isinstance(err, anthropic.APITimeoutError):
        return LlmError(f"the API did not answer within {TIMEOUT_SECONDS:.0f} s")
    if isinstance(err, anthropic.APIConnectionError):
        base = environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
        return LlmError(f"cannot reach the API at {base}: {detail}")
    if isinstance(err, anthropic.APIStatusError):
        return LlmError(f"the API answered {err.status_code}: {detail}")
    return LlmError(f"the Anthropic client failed: {detail}")


def _scrub(text: str, environ: Mapping[str, str]) -> str:
    """The message on one line, without any key value, in case a gateway echoed it."""
    for name in KEY_ENVS:
        value = environ.get(name)
        if value:
            text = text.replace(value, "***")
    return " ".join(text.split())[:300]
