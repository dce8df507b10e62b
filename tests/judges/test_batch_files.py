"""Batch API files (request lines, splitting, result lines classified like synchronous replies) and the batch
ledger in the cache's SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.judges import JudgeCache
from iopo_eval.judges.batch_jsonl import (
    BatchFileError,
    LineResult,
    classify,
    first_by_id,
    read_results,
    request_line,
    split_lines,
)
from iopo_eval.judges.batch_ledger import BatchLedger, HeldKey
from iopo_eval.judges.types import ERROR_KINDS, Usage


def test_a_request_line_is_one_compact_utf8_json_object() -> None:
    line = request_line(
        "key-1",
        {"model": "m", "messages": [{"role": "user", "content": "中文\n\u2028"}]},
        "/v1/chat/completions",
    )
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # U+2028 and \n stay escaped or inside the string
    row = json.loads(line)
    assert row == {
        "custom_id": "key-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "中文\n\u2028"}]},
    }
    assert "中文".encode() in line  # not \u escapes: a third of the bytes for Chinese


def lines_of(sizes: list[int]) -> list[tuple[str, bytes]]:
    return [(f"k{i}", b"x" * (size - 1) + b"\n") for i, size in enumerate(sizes)]


def test_split_respects_both_limits_and_keeps_order() -> None:
    chunks = split_lines(lines_of([10] * 7), max_requests=3, max_bytes=1000)
    assert [[k for k, _ in c] for c in chunks] == [["k0", "k1", "k2"], ["k3", "k4", "k5"], ["k6"]]
    chunks = split_lines(lines_of([40, 40, 30, 50, 10]), max_requests=100, max_bytes=100)
    assert [sum(len(line) for _, line in c) for c in chunks] == [80, 90]
    assert split_lines(lines_of([100]), max_requests=1, max_bytes=100) == [lines_of([100])]
    assert split_lines([], max_requests=1, max_bytes=1) == []
    with pytest.raises(BatchFileError, match="k1 is 101 bytes"):
        split_lines(lines_of([10, 101]), max_requests=5, max_bytes=100)


def completion(text: Any, usage: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"choices": [{"message": {"role": "assistant", "content": text}}]}
    if usage is not None:
        body["usage"] = usage
    return body


def row(status: int | None, body: Any = None, error: Any = None) -> dict[str, Any]:
    response = None if status is None else {"status_code": status, "request_id": "r", "body": body}
    return {"id": "batch_req_1", "custom_id": "k", "response": response, "error": error}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            row(200, completion("hi", {"prompt_tokens": 5, "completion_tokens": 2})),
            ("hi", Usage(5, 2), None, False, False),
        ),
        (row(200, completion("hi")), ("hi", None, None, False, False)),  # no usage reported: estimated later
        (row(200, {"id": "x"}), (None, None, "server_error", True, False)),  # not a chat completion
        (row(200, completion(["a list"])), (None, None, "server_error", True, False)),
        (row(500, {"error": {"message": "boom"}}), (None, None, "server_error", True, False)),
        (row(503, {"error": {"message": "busy"}}), (None, None, "server_error", True, False)),
        (row(429, {"error": {"message": "slow down"}}), (None, None, "rate_limited", True, False)),
        (row(408, {"error": {"message": "late"}}), (None, None, "timeout", True, False)),
        (row(400, {"error": {"message": "bad"}}), (None, None, "bad_request", False, False)),
        (
            row(None, error={"code": "batch_expired", "message": "window"}),
            (None, None, "batch_expired", False, True),
        ),
        (
            row(None, error={"code": "batch_cancelled", "message": "c"}),
            (None, None, "batch_cancelled", False, True),
        ),
        (row(None, error={"code": "other", "message": "?"}), (None, None, "server_error", True, False)),
        (row(None), (None, None, "server_error", True, False)),
    ],
)
def test_result_lines_are_classified_as_the_synchronous_client_would(
    line: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    result = classify(line)
    assert (result.text, result.usage, result.error_kind, result.retryable, result.unanswered) == expected
    assert result.error_kind is None or result.error_kind in ERROR_KINDS
    if result.error_kind is not None:
        assert result.error


def test_the_error_message_of_a_status_line_is_the_servers() -> None:
    result = classify(row(500, {"error": {"message": "the model crashed"}}))
    assert result.error == "HTTP 500 from the judge endpoint: the model crashed"


def test_unreadable_lines_are_skipped_and_answers_win_over_errors(caplog: pytest.LogCaptureFixture) -> None:
    good = json.dumps({**row(200, completion("yes")), "custom_id": "a"})
    error = json.dumps({**row(500, {"error": {"message": "x"}}), "custom_id": "a"})
    other = json.dumps({**row(500, {"error": {"message": "x"}}), "custom_id": "b"})
    data = "\n".join([error, '{"custom_id": "c", "resp', good, "[1]", other, ""]).encode()
    results = read_results(data, "output file f")
    assert [r.custom_id for r in results] == ["a", "a", "b"]
    assert "output file f line 2: not JSON" in caplog.text and "line 4: no custom_id" in caplog.text
    found = first_by_id(results)
    assert found["a"].text == "yes" and found["b"].error_kind == "server_error" and "c" not in found
    assert first_by_id([LineResult("z", text="1"), LineResult("z", text="2")])["z"].text == "1"


# --- the ledger ------------------------------------------------------------------------------------------
def held(*keys: str) -> list[HeldKey]:
    return [HeldKey(k, 2, {"response": 99} if k == "b" else {}) for k in keys]


def begin(ledger: BatchLedger, submission: str, keys: list[HeldKey], **kw: Any) -> list[str]:
    args = {
        "judge_identity": "id1",
        "judge_name": "j",
        "endpoint": "http://x/v1",
        "owner": "h/1/t",
        "round": 1,
    }
    return ledger.begin(submission, keys=keys, n_bytes=10, **{**args, **kw})


def test_the_ledger_shares_the_cache_file_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with JudgeCache(path) as cache, BatchLedger(cache.path) as ledger:
        assert begin(ledger, "s1", held("a", "b")) == ["a", "b"]
        ledger.set_input_file("s1", "file-1")
        ledger.set_batch("s1", "batch_1", "validating")
        assert len(cache) == 0
    with BatchLedger(path) as ledger:
        (job,) = ledger.jobs()
        assert (job.state, job.input_file_id, job.batch_id, job.remote_status, job.n_requests) == (
            "submitted",
            "file-1",
            "batch_1",
            "validating",
            2,
        )
        assert ledger.keys("s1") == held("a", "b")
    tables = {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {"judgements", "failures", "leases", "batch_jobs", "batch_items"} <= tables
    JudgeCache(path).close()  # the cache still opens: its schema is untouched


def test_keys_held_by_an_open_submission_are_not_taken_again(tmp_path: Path) -> None:
    with BatchLedger(tmp_path / "c.sqlite") as ledger:
        assert begin(ledger, "s1", held("a", "b")) == ["a", "b"]
        assert begin(ledger, "s2", held("b", "c")) == ["c"]
        assert begin(ledger, "s3", held("a")) == [] and ledger.job("s3") is None  # nothing left: no record
        assert begin(ledger, "s4", held("a"), judge_identity="id2") == ["a"]  # another judge
        assert begin(ledger, "s5", held("a"), endpoint="http://y/v1") == ["a"]  # another endpoint
        assert [j.submission for j in ledger.open_jobs("id1", "http://x/v1", ["c"])] == ["s2"]
        assert [j.submission for j in ledger.open_jobs("id1", "http://x/v1")] == ["s1", "s2"]
        ledger.close_job("s1", "done")
        assert begin(ledger, "s6", held("a", "b", "c")) == ["a", "b"]  # c is still in s2
        ledger.close_job("s2", "abandoned")
        assert begin(ledger, "s7", held("c")) == ["c"]
        assert ledger.submissions_of("c") == 2 and ledger.submissions_of("zzz") == 0
        with pytest.raises(ValueError):
            ledger.close_job("s6", "completed")
