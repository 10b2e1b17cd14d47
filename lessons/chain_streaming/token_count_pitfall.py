"""Wrong: get_num_tokens downloads tiktoken's tables from the internet; offline it raises."""

from __future__ import annotations

from langchain_openai import ChatOpenAI


def count_tokens(llm: ChatOpenAI, text: str) -> int:
    # The first call per encoding fetches it from openaipublic.blob.core.windows.net (cached
    # under TIKTOKEN_CACHE_DIR afterwards). In an offline CI job or a locked-down server this
    # raises requests' ConnectionError, or waits on the network. Count with the provider's own
    # usage (stream_usage=True) instead.
    return llm.get_num_tokens(text)
