"""Solutions for notebook 03 (the learner's stubs are generated from the regions below)."""
# ruff: noqa: E402, F811  (each exercise region is a notebook cell of its own: it imports what it uses)

from __future__ import annotations

# %% exercise: final_answer  check: lessons.toolkit.exercise_checks.nb03_langchain_chains:check_final_answer  candidate: stream_final_answer
from collections.abc import AsyncIterator

from langchain_core.runnables import Runnable


async def stream_final_answer(chain: Runnable, question: str) -> AsyncIterator[str]:
    """Yield the text of the *final* model call's tokens (tag "final"), as they arrive.

    `chain` is build_two_step_chain(llm): it drafts an answer (tag "draft"), then rewrites it
    (tag "final"). Call it with {"question": question}. Skip empty pieces.
    """
    ### BEGIN SOLUTION
    events = chain.astream_events({"question": question}, version="v2", include_tags=["final"])
    async for event in events:
        if event["event"] == "on_chat_model_stream":
            text = event["data"]["chunk"].text
            if text:
                yield text
    ### END SOLUTION


# %% end

# %% exercise: progress  check: lessons.toolkit.exercise_checks.nb03_langchain_chains:check_progress  candidate: relay_with_progress
from collections.abc import AsyncIterator

from langchain_core.runnables import Runnable

from lessons.relay_core import sse_event


async def relay_with_progress(chain: Runnable, message: str) -> AsyncIterator[str]:
    """Yield SSE text for a client, made with sse_event(name, data):
    - "progress" with {"step": "lookup_notes", "output": <that step's output>} when it ends,
    - "token" with {"text": ...} for each non-empty model token,
    - "done" with {} at the end.

    `chain` is build_notes_chain(llm); call it with {"message": message}.
    """
    ### BEGIN SOLUTION
    async for event in chain.astream_events({"message": message}, version="v2"):
        if event["event"] == "on_chain_end" and event["name"] == "lookup_notes":
            output = event["data"]["output"]
            yield sse_event("progress", {"step": "lookup_notes", "output": output})
        elif event["event"] == "on_chat_model_stream":
            text = event["data"]["chunk"].text
            if text:
                yield sse_event("token", {"text": text})
    yield sse_event("done", {})
    ### END SOLUTION


# %% end
