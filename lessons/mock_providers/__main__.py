"""Run the mock providers in a terminal: `python -m lessons.mock_providers --port 8001`."""

import argparse

import uvicorn

from lessons.mock_providers.control import MockProviders


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lessons.mock_providers",
        description="Fake OpenAI and Anthropic APIs for the streaming lessons.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8001, help="port to listen on (default 8001)")
    parser.add_argument(
        "--ttft-ms", type=float, default=400, help="time to first token in ms (default 400)"
    )
    parser.add_argument(
        "--token-interval-ms",
        type=float,
        default=30,
        help="time between tokens in ms (default 30)",
    )
    parser.add_argument(
        "--log-level", default="info", help="uvicorn log level (default info: one line a request)"
    )
    return parser.parse_args(argv)


def environment_lines(base_url: str) -> list[str]:
    """The shell lines that point the SDKs (and so any lesson app) at the mock."""
    return [
        f"export OPENAI_BASE_URL={base_url}/v1",
        "export OPENAI_API_KEY=mock-key",
        f"export ANTHROPIC_BASE_URL={base_url}",
        "export ANTHROPIC_API_KEY=mock-key",
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    mock = MockProviders(ttft_ms=args.ttft_ms, token_interval_ms=args.token_interval_ms)
    base_url = f"http://{args.host}:{args.port}"
    print(f"Mock OpenAI and Anthropic APIs on {base_url}")
    print(f"  OpenAI:    {base_url}/v1   (chat/completions, responses)")
    print(f"  Anthropic: {base_url}      (v1/messages)")
    print(f"  Pace: {args.ttft_ms:g} ms to first token, then {args.token_interval_ms:g} ms a token")
    print("Point the SDKs at it, in the terminal that runs your app:")
    for line in environment_lines(base_url):
        print(f"  {line}")
    uvicorn.run(mock.app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
