"""Wrong: ChatOpenAI against a custom base URL without stream_usage=True streams no usage at all."""

from __future__ import annotations

import openai
from langchain_openai import ChatOpenAI

from lessons.relay_core import model_name


def build_chat_model_without_usage() -> ChatOpenAI:
    # With OPENAI_BASE_URL set (a gateway, a proxy, the mock) langchain-openai leaves
    # stream_usage off, sends no stream_options, and every chunk's usage_metadata is None.
    return ChatOpenAI(
        model=model_name("openai"),
        http_async_client=openai.DefaultAsyncHttpxClient(),
        http_socket_options=(),
    )
