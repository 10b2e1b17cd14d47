"""The chains the lesson apps stream: prompt | model | parser, and one with a non-streaming step."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda

from lessons.chain_streaming.chat_model import SYSTEM_PROMPT

STATS_STEP = "answer_stats"


def answer_prompt() -> ChatPromptTemplate:
    # The message is a template *variable*: braces in what a user types are sent as they are.
    return ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", "{message}")])


def build_answer_chain(llm: BaseChatModel) -> Runnable[dict[str, str], str]:
    """prompt | llm | StrOutputParser(): every step streams, so .astream yields text pieces."""
    return answer_prompt() | llm | StrOutputParser()


def answer_stats(answer: str) -> dict[str, int]:
    """Facts about the whole answer: a plain function, so LangChain hands it the joined input."""
    return {"words": len(answer.split()), "characters": len(answer)}


def build_stats_chain(llm: BaseChatModel) -> Runnable[dict[str, str], dict[str, int]]:
    """The answer chain followed by a step that needs its whole input (it cannot stream)."""
    return build_answer_chain(llm) | RunnableLambda(answer_stats, name=STATS_STEP)
