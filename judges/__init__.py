"""Where responses are judged: judge configs and prompt templates as data, an async client for any
OpenAI-compatible endpoint, a content-addressed SQLite cache, and strict reply parsers."""
