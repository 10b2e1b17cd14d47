"""Notebook 08's lesson: a chat product's stream on the AI SDK's UI message stream protocol.

- `protocol`: the UI message stream (v1) as a shape of the core, and the items it frames;
- `requests`: the body `useChat` sends, validated and bounded, and its conversion into OpenAI
  Responses input and Anthropic messages;
- `tools`: the server's tools (offline, deterministic), validated with pydantic;
- `turn`: one assistant turn: stream a step, assemble its tool calls, run them, stream the next;
- `chats`: each chat's messages, kept on the server (bounded, expiring), for a reloaded page;
- `routes`: `POST /api/chat`, resuming, stopping; `agent`: the same protocol from LangGraph;
- `app`: the app, which also serves the React page built from `frontend/`.
"""
