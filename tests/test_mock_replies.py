"""The mock's tokenizer and replies: realistic pieces, deterministic text, honest usage."""

import json

from hypothesis import given
from hypothesis import strategies as st

from lessons.mock_providers.conversation import Conversation, ToolSpec
from lessons.mock_providers.replies import (
    CANNED_REPLIES,
    PERTURB_MARKER,
    compose_reply,
    generated_reply,
    perturbed,
)
from lessons.mock_providers.tokens import count_input_tokens, split_json_fragments, split_pieces


def conversation(prompt: str, **extra: object) -> Conversation:
    fields: dict[str, object] = {
        "provider": "openai",
        "model": "m",
        "stream": True,
        "message_texts": [prompt],
        "prompt": prompt,
    }
    fields.update(extra)
    return Conversation(**fields)  # type: ignore[arg-type]


@given(st.text())
def test_pieces_join_back_to_the_text(text: str) -> None:
    assert "".join(split_pieces(text)) == text
    assert "".join(split_json_fragments(text)) == text


def test_pieces_look_like_tokens() -> None:
    assert split_pieces("Streaming isn't slow, it's 1500 tokens!\n\nReally.") == [
        "Stream",
        "ing",
        " isn",
        "'t",
        " slow",
        ",",
        " it",
        "'s",
        " 150",
        "0",
        " tokens",
        "!",
        "\n\n",
        "Really",
        ".",
    ]


def test_canned_replies_have_realistic_lengths() -> None:
    for prompt, reply in CANNED_REPLIES.items():
        assert prompt == prompt.lower()
        assert 5 <= len(split_pieces(reply)) <= 120


def test_generated_reply_is_deterministic_readable_and_varied() -> None:
    reply = generated_reply("How do tides work?")
    assert reply == generated_reply("How do tides work?")
    assert reply.startswith('You asked: "How do tides work".')
    assert 30 <= len(split_pieces(reply)) <= 80
    closings = {generated_reply(f"Question number {n}").rsplit(". ", 1)[-1] for n in range(20)}
    assert len(closings) > 1


def test_usage_counts_the_streamed_pieces() -> None:
    reply = compose_reply(conversation("What is machine learning?"), None, perturb=False)
    assert reply.full_text == CANNED_REPLIES["what is machine learning?"]
    assert reply.output_tokens == len(split_pieces(reply.full_text)) == len(reply.text)
    assert count_input_tokens(["What is machine learning?"]) == 3 + 4 + 6


def test_max_tokens_truncates_in_generation_order() -> None:
    reply = compose_reply(conversation("Say hello.", max_tokens=3), None, perturb=False)
    assert (reply.text, reply.truncated) == (("Hello", "!", " How"), True)
    exact = compose_reply(conversation("Say hello.", max_tokens=9), None, perturb=False)
    assert not exact.truncated


def test_tool_call_arguments_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"enum": ["C", "F"]},
            "detailed": {"type": "boolean"},
        },
    }
    tools = (ToolSpec("forecast", schema), ToolSpec("other", {}))
    reply = compose_reply(
        conversation("Weather in Lisbon this week?", tools=tools), None, perturb=False
    )
    assert reply.tool_call is not None
    assert reply.tool_call.name == "forecast"
    assert json.loads(reply.tool_call.arguments) == {
        "city": "Lisbon",
        "days": 1,
        "unit": "C",
        "detailed": True,
    }
    assert reply.text == ()
    forced = compose_reply(
        conversation("hi", tools=tools, tool_choice="other"), None, perturb=False
    )
    assert forced.tool_call is not None and forced.tool_call.name == "other"
    declined = compose_reply(
        conversation("hi", tools=tools, tool_choice="none"), None, perturb=False
    )
    assert declined.tool_call is None


def test_perturb_replaces_the_last_word() -> None:
    assert (
        perturbed("Hello! How can I help you today?")
        == f"Hello! How can I help you {PERTURB_MARKER}?"
    )
    assert perturbed("...") == "..."
    reply = compose_reply(conversation("Say hello."), None, perturb=True)
    assert reply.full_text.endswith(f"{PERTURB_MARKER}?")
