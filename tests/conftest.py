"""Fixtures for the whole suite: each test gets its own mock providers (see lessons.toolkit)."""

pytest_plugins = ["lessons.toolkit.pytest_fixtures"]
