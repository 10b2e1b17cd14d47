"""Wrong answers for notebook 09's exercises."""

WRONG_ANSWERS = {
    "predict_p99": [
        # The queue is forgotten: each request only waits for its own CPU.
        """
def predict_p99_first_token_ms(cpu_ms_per_request, streams, provider_ttft_ms):
    return provider_ttft_ms + cpu_ms_per_request
""",
        # The provider is forgotten: only the queue.
        """
def predict_p99_first_token_ms(cpu_ms_per_request, streams, provider_ttft_ms):
    return streams * cpu_ms_per_request
""",
        # The provider's wait counted once per stream, as if it too were queued.
        """
def predict_p99_first_token_ms(cpu_ms_per_request, streams, provider_ttft_ms):
    return streams * (provider_ttft_ms + cpu_ms_per_request)
""",
    ],
    "tasks_per_token": [
        # Tasks per stream, not per token: the fixed ones counted as if each token made them.
        """
from lessons.toolkit.testkit import collect_sync

def tasks_per_token(counter, url):
    records = []
    tasks = counter.count(
        lambda: records.append(collect_sync(f"{url}/chat/stream", {"message": "long"}))
    )
    return tasks / len(records[0].events)
""",
    ],
    "fast_responses": [
        # Every end is a `stop`: a reply cut by max_output_tokens passes for a whole one.
        """
from lessons.relay_core import Finish, Token, Usage

def responses_items(event, items):
    kind = event.get("type")
    if kind == "response.output_text.delta" and event.get("delta"):
        items.append(Token(event["delta"]))
    elif kind in ("response.completed", "response.incomplete"):
        usage = event["response"].get("usage")
        if usage:
            items.append(Usage(usage["input_tokens"], usage["output_tokens"]))
        items.append(Finish("stop"))
""",
        # A failure read as the end of a reply.
        """
from lessons.relay_core import Finish, Token, Usage

def responses_items(event, items):
    kind = event.get("type")
    if kind == "response.output_text.delta" and event.get("delta"):
        items.append(Token(event["delta"]))
    elif kind in ("response.completed", "response.incomplete", "response.failed", "error"):
        response = event.get("response") or {}
        usage = response.get("usage")
        if usage:
            items.append(Usage(usage["input_tokens"], usage["output_tokens"]))
        reason = (response.get("incomplete_details") or {}).get("reason")
        items.append(Finish("length" if reason else "stop"))
""",
    ],
}
