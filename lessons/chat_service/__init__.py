"""Notebook 07: one service to deploy. Resumable generations on Redis, several workers.

- `app`: the service (`create_app`), on the production core, deployed by default (fail closed);
- `routes`: start and stream a generation, resume it from any worker, stop it, readiness;
- `calls`: the conversation sent to Chat Completions, Responses or Anthropic Messages;
- `redis_store`: the core's `GenerationStore` interface on Redis Streams;
- `redis_tail`: one blocking XREAD per worker for all the streams its readers follow;
- `redis_budgets`: the core's `Budgets` interface on Redis, so limits hold across workers;
- `metrics`: OpenTelemetry's GenAI client metrics, exported for Prometheus per worker;
- `settings`: the service's own settings, from `CHAT_SERVICE_*` variables;
- `__main__`: `python -m lessons.chat_service --workers N --redis-url ...` (the draining server).

`*_pitfall.py` modules are wrong on purpose, to be measured in the notebook.
"""
