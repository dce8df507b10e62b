"""Test support shared by the test suite and the benchmarks: a real scripted OpenAI-compatible server
on 127.0.0.1 (:mod:`iopo_eval.testing.openai_server`) and reply functions for it."""
