"""What the two OpenAI endpoints share: response headers, HTTP error bodies, request checks."""

from typing import Any

from lessons.mock_providers.conversation import BadRequest, ToolSpec
from lessons.mock_providers.wire import (
    JSON_CONTENT_TYPE,
    SSE_CONTENT_TYPE,
    ErrorKind,
    ErrorResponse,
    Headers,
    IdSource,
    ReplyContext,
    dumps,
    header_list,
    mask_key,
)

# Provider-internal details the real API puts in headers and error messages. A lesson app must
# never pass them on to its own clients; tests look for these exact strings.
OPENAI_ORGANIZATION = "org-mockQ7xV2nK4rT8sW1zY5"
OPENAI_PROJECT = "proj_mockH3jL6pB9dF2gM5qR8"

_RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "199950",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "15ms",
}


class OpenAIDialectBase:
    """Headers, errors and checks common to Chat Completions and Responses."""

    provider = "openai"

    def request_id(self, ids: IdSource) -> str:
        return ids.hex("req_", 32)

    def invalid_json(self, detail: str) -> BadRequest:
        return BadRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but "
            "what was sent was not valid JSON. If you have trouble figuring out how to fix this, "
            "please contact us through our help center at help.openai.com.)"
        )

    def success_headers(self, ctx: ReplyContext, stream: bool) -> Headers:
        return header_list(
            {
                "content-type": (SSE_CONTENT_TYPE if stream else JSON_CONTENT_TYPE).decode(),
                "x-request-id": ctx.request_id,
                "openai-organization": OPENAI_ORGANIZATION,
                "openai-project": OPENAI_PROJECT,
                "openai-processing-ms": "1",
                "openai-version": "2020-10-01",
                **_RATE_LIMIT_HEADERS,
            }
        )

    def http_error(
        self,
        status: int,
        request_id: str,
        *,
        model: str | None,
        api_key: str | None,
        retry_after: float | None,
        should_retry: bool,
    ) -> ErrorResponse:
        message, error_type, code, param = _error_fields(status, request_id, model, api_key)
        headers = {"x-request-id": request_id, "openai-organization": OPENAI_ORGANIZATION}
        if status == 429:
            headers.update({**_RATE_LIMIT_HEADERS, "x-ratelimit-remaining-tokens": "0"})
        if retry_after is not None:
            headers["retry-after"] = _seconds(retry_after)
        if not should_retry:
            # Keeps the SDK from retrying (and sleeping through backoff) a scripted error.
            headers["x-should-retry"] = "false"
        return error_response(status, headers, message, error_type, code, param)

    def overload_status(self, kind: ErrorKind) -> int:
        return 503 if kind == "overloaded" else 500

    def bad_request(self, error: BadRequest, request_id: str) -> ErrorResponse:
        headers = {"x-request-id": request_id}
        return error_response(
            400, headers, error.message, "invalid_request_error", error.code, error.param
        )

    def not_found(self, method: str, path: str, request_id: str) -> ErrorResponse:
        headers = {"x-request-id": request_id}
        message = f"Invalid URL ({method} {path})"
        return error_response(404, headers, message, "invalid_request_error", None, None)


def error_response(
    status: int,
    headers: dict[str, str],
    message: str,
    error_type: str,
    code: str | None,
    param: str | None,
) -> ErrorResponse:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    all_headers = {"content-type": JSON_CONTENT_TYPE.decode(), **headers}
    return ErrorResponse(status, header_list(all_headers), dumps(body).encode())


def stream_error_payload(kind: ErrorKind) -> dict[str, Any]:
    """The `error` object of a mid-stream failure."""
    if kind == "overloaded":
        return {
            "message": "The server is overloaded or not ready yet.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    return {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _error_fields(
    status: int, request_id: str, model: str | None, api_key: str | None
) -> tuple[str, str, str | None, str | None]:
    """(message, type, code, param) of the real API's error for a status."""
    model_name = model or "gpt-4o-mini"
    if status == 400:
        return (
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        )
    if status == 401:
        return (
            f"Incorrect API key provided: {mask_key(api_key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
            None,
        )
    if status == 403:
        return (
            f"Project `{OPENAI_PROJECT}` does not have access to model `{model_name}`",
            "invalid_request_error",
            "model_not_found",
            None,
        )
    if status == 404:
        return (
            f"The model `{model_name}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
            None,
        )
    if status == 429:
        return (
            f"Rate limit reached for {model_name} in organization {OPENAI_ORGANIZATION} on "
            "tokens per min (TPM): Limit 200000, Used 199950, Requested 1200. Please try again "
            "in 345ms. Visit https://platform.openai.com/account/rate-limits to learn more.",
            "tokens",
            "rate_limit_exceeded",
            None,
        )
    if status == 500:
        return (
            "The server had an error processing your request. Sorry about that! You can retry "
            "your request, or contact us through our help center at help.openai.com if you keep "
            f"seeing this error. (Please include the request ID {request_id} in your email.)",
            "server_error",
            None,
            None,
        )
    if status in (502, 503, 529):
        return ("The server is overloaded or not ready yet.", "server_error", None, None)
    if status >= 500:
        return (f"The server returned HTTP {status}.", "server_error", None, None)
    return (f"The request failed with HTTP {status}.", "invalid_request_error", None, None)


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter")
    return model


def optional_int(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(
            f"Invalid type for '{name}': expected an integer, but got {_json_type(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if value < minimum:
        raise BadRequest(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return value


def require_array(body: dict[str, Any], name: str) -> list[Any]:
    if name not in body or body[name] is None:
        raise BadRequest(
            f"Missing required parameter: '{name}'.",
            param=name,
            code="missing_required_parameter",
        )
    value = body[name]
    if not isinstance(value, list):
        raise BadRequest(
            f"Invalid type for '{name}': expected an array, but got {_json_type(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if not value:
        raise BadRequest(
            f"Invalid '{name}': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param=name,
            code="empty_array",
        )
    return value


def tool_choice(value: Any) -> str:
    """Normalise `tool_choice` (a mode string or a named function) for the reply composer."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        function = value.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return function["name"]
        if isinstance(value.get("name"), str):
            return value["name"]
    return "auto"


def function_tools(tools: Any, nested: bool) -> tuple[ToolSpec, ...]:
    """Function tools of a request: nested under `function` (Chat) or flat (Responses)."""
    if not isinstance(tools, list):
        return ()
    specs: list[ToolSpec] = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        definition = tool.get("function") if nested else tool
        if not isinstance(definition, dict) or not isinstance(definition.get("name"), str):
            continue
        parameters = definition.get("parameters")
        specs.append(
            ToolSpec(definition["name"], parameters if isinstance(parameters, dict) else {})
        )
    return tuple(specs)


def _json_type(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
