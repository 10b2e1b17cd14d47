"""The production core every lesson relay is built on.

- `stream.EventStream`: the stream lifecycle (open, relay, one terminal event, close, account);
- `watchdog.Watchdog`: deadlines, keep-alives and the client's disconnect, one task per stream;
- `events`, `adapters`: the items a relay streams, and each provider's stream turned into them;
- `shapes`, `wire`: how a route frames them on the wire (see docs/wire-contract.md);
- `errors`: the error contract; `contract`: one classifier for every event shape;
- `protection`, `budgets`: client tokens, the body limit, origins and per-client budgets;
- `app`: the house style (`create_relay_app`, `RelayContext`); `clients`: provider clients;
- `server`: shutdown that drains streams; `usage`: what each stream cost; `logs`: structured logs.
"""

from lessons.relay_core.adapters import (
    anthropic_events,
    openai_chat_events,
    openai_responses_events,
)
from lessons.relay_core.app import (
    ReaderContext,
    Refused,
    Relay,
    RelayContext,
    create_relay_app,
    get_reader,
    get_relay,
    invalid,
)
from lessons.relay_core.budgets import Budgets, BudgetSettings, Lease, MemoryBudgets, Refusal
from lessons.relay_core.clients import (
    AnthropicClient,
    OpenAIClient,
    Provider,
    make_client,
    model_name,
)
from lessons.relay_core.contract import WireEvent, read_event
from lessons.relay_core.errors import (
    ErrorCode,
    IncompleteStream,
    RelayError,
    StreamFailed,
    classify_before_stream,
    classify_during_stream,
    error_response,
    new_request_id,
)
from lessons.relay_core.events import (
    Batch,
    CustomEvent,
    Finish,
    Reasoning,
    StreamItem,
    Token,
    ToolCallDelta,
    Usage,
)
from lessons.relay_core.models import (
    MAX_MESSAGE_CHARS,
    MAX_SYSTEM_CHARS,
    ChatMessage,
    ChatRequest,
    ConversationRequest,
    MessageRequest,
)
from lessons.relay_core.protection import ProtectionSettings, parse_client_tokens
from lessons.relay_core.server import DrainingServer, StreamRegistry, serve
from lessons.relay_core.settings import RelaySettings
from lessons.relay_core.shapes import (
    EventShape,
    MetaEvents,
    NamedEvents,
    StreamSummary,
    TokenEvents,
    TokenEventsWithUsage,
)
from lessons.relay_core.stream import EventStream, Outcome
from lessons.relay_core.usage import UsageLedger, UsageRecord
from lessons.relay_core.wire import (
    SSE_MEDIA_TYPE,
    STREAM_HEADERS,
    sse_comment,
    sse_data,
    sse_event,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_SYSTEM_CHARS",
    "SSE_MEDIA_TYPE",
    "STREAM_HEADERS",
    "AnthropicClient",
    "Batch",
    "BudgetSettings",
    "Budgets",
    "ChatMessage",
    "ChatRequest",
    "ConversationRequest",
    "CustomEvent",
    "DrainingServer",
    "ErrorCode",
    "EventShape",
    "EventStream",
    "Finish",
    "IncompleteStream",
    "Lease",
    "MemoryBudgets",
    "MessageRequest",
    "MetaEvents",
    "NamedEvents",
    "OpenAIClient",
    "Outcome",
    "ProtectionSettings",
    "Provider",
    "ReaderContext",
    "Reasoning",
    "Refusal",
    "Refused",
    "Relay",
    "RelayContext",
    "RelayError",
    "RelaySettings",
    "StreamFailed",
    "StreamItem",
    "StreamRegistry",
    "StreamSummary",
    "Token",
    "TokenEvents",
    "TokenEventsWithUsage",
    "ToolCallDelta",
    "Usage",
    "UsageLedger",
    "UsageRecord",
    "WireEvent",
    "anthropic_events",
    "classify_before_stream",
    "classify_during_stream",
    "create_relay_app",
    "error_response",
    "get_reader",
    "get_relay",
    "invalid",
    "make_client",
    "model_name",
    "new_request_id",
    "openai_chat_events",
    "openai_responses_events",
    "parse_client_tokens",
    "read_event",
    "serve",
    "sse_comment",
    "sse_data",
    "sse_event",
]
