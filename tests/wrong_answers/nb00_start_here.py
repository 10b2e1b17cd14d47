"""Wrong answers for notebook 00's exercises."""

NOT_STREAMED = """
from openai import AsyncOpenAI

async def stream_reply(client: AsyncOpenAI, prompt: str, model: str = "gpt-4o-mini") -> list[str]:
    reply = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    return [reply.choices[0].message.content]
"""

KEEPS_EMPTY_DELTAS = """
from openai import AsyncOpenAI

async def stream_reply(client: AsyncOpenAI, prompt: str, model: str = "gpt-4o-mini") -> list[str]:
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True
    )
    return [chunk.choices[0].delta.content async for chunk in stream]
"""

UNGUARDED_USAGE_CHUNK = """
from openai import AsyncOpenAI

async def stream_reply(client: AsyncOpenAI, prompt: str, model: str = "gpt-4o-mini") -> list[str]:
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = []
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    return pieces
"""

WRONG_ANSWERS = {"stream_reply": [NOT_STREAMED, KEEPS_EMPTY_DELTAS, UNGUARDED_USAGE_CHUNK]}
