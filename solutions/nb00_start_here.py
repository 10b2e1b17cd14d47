"""Solutions for notebook 00 (the learner's stubs are generated from the regions below)."""

from __future__ import annotations

# %% exercise: stream_reply  check: lessons.toolkit.exercise_checks.nb00_start_here:check_stream_reply
from openai import AsyncOpenAI


async def stream_reply(client: AsyncOpenAI, prompt: str, model: str = "gpt-4o-mini") -> list[str]:
    """Stream a chat completion for `prompt`; return the text pieces in the order they arrived."""
    ### BEGIN SOLUTION
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    async with stream:  # closes the HTTP response even if the loop stops early
        async for chunk in stream:
            # The usage chunk at the end has no choices; role and finish chunks have no content.
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    return pieces
    ### END SOLUTION


# %% end
