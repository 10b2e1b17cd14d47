"""Wrong: a first test client, as tutorials write it: no assertions, trusts `done`, hides errors.

It cannot notice an HTTP error (the JSON body has no `data: ` line), an error event (it has
`done: true`, so it reads as a normal end), or a stream that ends without a terminal event.
"""

from __future__ import annotations

import json

import httpx


# Named as tutorials name it; pytest never collects lessons/.
def test_stream(url: str, payload: dict) -> None:
    """Consume a streaming SSE endpoint and print each event."""
    with httpx.Client(timeout=30.0) as client, client.stream("POST", url, json=payload) as response:
        full_text = ""
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[6:])
                if "token" in data and data["token"]:  # noqa: RUF019 (as tutorials write it)
                    print(data["token"], end="", flush=True)
                    full_text += data["token"]
                if data.get("done"):
                    print(f"\n\nStream complete. Total: {len(full_text)} chars")
                    break
