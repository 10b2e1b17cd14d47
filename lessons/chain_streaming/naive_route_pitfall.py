"""Wrong: a first LangChain route, as tutorials write it: it answers 200 before the provider does.

`llm.astream()` sends no request until it is iterated, and this route iterates it inside the
StreamingResponse, after the status line has gone out. So a 429 from the provider reaches the
client as a 200 whose body breaks off (the exception is left to the server's log), an error in
the middle of the reply cuts the response with no terminal event, and a reply the provider cut
short ends with `done`, like a whole one: nothing here reads the provider's finish reason.

The model is the lesson's own (`chat_model.py`, built in the lifespan); only the route is naive.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from lessons.chain_streaming.chat_model import ChatModel, model_lifespan

app = FastAPI(title="PITFALL: a first LangChain route", lifespan=model_lifespan())


class Question(BaseModel):
    message: str


@app.post("/langchain/stream")
async def langchain_stream(body: Question, llm: ChatModel) -> StreamingResponse:
    async def tokens() -> AsyncIterator[str]:
        # The provider is first called here, once the response has already started.
        async for chunk in llm.astream(body.message):
            yield f"data: {json.dumps({'token': chunk.text, 'done': False})}\n\n"
        # Reached whenever the stream ends without an exception, cut short or not.
        yield f"data: {json.dumps({'token': '', 'done': True})}\n\n"

    return StreamingResponse(tokens(), media_type="text/event-stream")
