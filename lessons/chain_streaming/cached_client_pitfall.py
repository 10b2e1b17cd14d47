"""Wrong: ChatOpenAI's default HTTP client is cached process-wide and breaks on a second loop."""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from lessons.relay_core import model_name


async def ask(message: str) -> str:
    """Stream a reply with a ChatOpenAI built here, on whichever event loop runs this.

    Building the model per call does not help: without `http_async_client=`, every ChatOpenAI
    with the same base URL and timeout shares one cached httpx AsyncClient, whose pooled
    connections belong to the loop that opened them. The next loop gets "Event loop is closed".
    """
    # (http_socket_options=() only silences a proxy warning; the cached client is the same.)
    llm = ChatOpenAI(model=model_name("openai"), stream_usage=True, http_socket_options=())
    return "".join([chunk.text async for chunk in llm.astream(message)])
