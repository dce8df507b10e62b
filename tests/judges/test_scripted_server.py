"""The scripted OpenAI-compatible server itself: many concurrent connections, counters, routes."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable

from iopo_eval.judges import JudgeCache, JudgeConfig, JudgeRequest, judge_batch
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import trace_scores


def test_hundreds_of_concurrent_connections(
    config: JudgeConfig, cache: JudgeCache, make_requests: Callable[..., list[JudgeRequest]]
) -> None:
    # 2 s per answer: on a busy 2-core machine issuing 300 calls can itself take most of a second.
    with OpenAIServer(trace_scores(10), latency_s=2.0) as server:
        run = judge_batch(
            make_requests(300, n_constraints=1),
            config.with_overrides(base_url=server.base_url, timeout_s=30.0, concurrency=300),
            cache,
            progress=False,
        )
        assert run.judged == 300 and server.calls == 300
        assert server.max_in_flight >= 200  # answered side by side, not one after another


def test_routes_and_bad_bodies() -> None:
    with OpenAIServer("hello") as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/v1/models")
        assert json.loads(conn.getresponse().read())["object"] == "list"
        conn.request(
            "POST", "/v1/chat/completions", body=b"{not json", headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        assert response.status == 400 and b"bad request body" in response.read()
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "abcd" * 10}]})
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        reply = json.loads(conn.getresponse().read())
        assert reply["choices"][0]["message"]["content"] == "hello"
        assert reply["usage"] == {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        conn.close()
        assert server.calls == 1  # the malformed request never reached the scripted behaviour
