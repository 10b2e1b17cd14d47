"""The chains the lesson apps stream: prompt | model | parser, and one with a non-streaming step."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

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


def build_two_step_chain(llm: BaseChatModel) -> Runnable[dict[str, str], str]:
    """Draft an answer, then rewrite it: two model calls, tagged "draft" and "final".

    Its .astream yields only the last step's output; astream_events shows both calls, and the
    tags tell them apart.
    """
    draft = (
        ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", "{question}")])
        | llm.with_config(tags=["draft"])
        | StrOutputParser()
    )
    final = (
        ChatPromptTemplate.from_messages(
            [
                ("system", "Rewrite the draft answer so that it is short and clear."),
                ("human", "Question: {question}\nDraft answer: {draft}"),
            ]
        )
        | llm.with_config(tags=["final"])
        | StrOutputParser()
    )
    return RunnablePassthrough.assign(draft=draft) | final


NOTES_STEP = "lookup_notes"
NOTES = {
    "stream": "Server-Sent Events carry a reply as it is generated.",
    "token": "A token is a piece of a word; providers bill by tokens.",
    "chain": "A LangChain chain pipes a prompt into a model and a parser.",
}


def lookup_notes(inputs: dict[str, str]) -> list[str]:
    """A retrieval-like step: it needs the whole question before it can answer, so it cannot
    stream (a stand-in for a vector-store lookup)."""
    words = inputs["message"].lower()
    return [note for keyword, note in NOTES.items() if keyword in words]


def build_notes_chain(llm: BaseChatModel) -> Runnable[dict[str, str], str]:
    """A non-streaming lookup step, then prompt | llm | parser using what it found."""
    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM_PROMPT + " Notes: {notes}"), ("human", "{message}")]
    )
    lookup = RunnableLambda(lookup_notes, name=NOTES_STEP)
    return RunnablePassthrough.assign(notes=lookup) | prompt | llm | StrOutputParser()
