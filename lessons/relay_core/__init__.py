"""Production pieces every lesson relay shares: the error contract, SSE framing, request models."""

from lessons.relay_core.errors import (
    ErrorCode,
    RelayError,
    StreamNotStarted,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
    stream_not_started_handler,
)
from lessons.relay_core.keepalive import with_keepalive
from lessons.relay_core.models import (
    MAX_MESSAGE_CHARS,
    MAX_SYSTEM_CHARS,
    ChatRequest,
    MessageRequest,
)
from lessons.relay_core.wire import (
    SSE_MEDIA_TYPE,
    STREAM_HEADERS,
    sse_comment,
    sse_data,
    sse_event,
    streaming_response,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_SYSTEM_CHARS",
    "SSE_MEDIA_TYPE",
    "STREAM_HEADERS",
    "ChatRequest",
    "ErrorCode",
    "MessageRequest",
    "RelayError",
    "StreamNotStarted",
    "classify_before_stream",
    "classify_during_stream",
    "error_response",
    "new_request_id",
    "sse_comment",
    "sse_data",
    "sse_event",
    "stream_not_started_handler",
    "streaming_response",
    "with_keepalive",
]
