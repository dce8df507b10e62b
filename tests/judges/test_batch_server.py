"""The loopback files + batches API, driven through the real openai SDK: every state, output and error files,
validation as the real API does it, expiry, cancellation, listing, and replies equal to OpenAIServer's."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from iopo_eval.testing.batch_server import BatchServer, BatchTiming
from iopo_eval.testing.openai_server import Fault, OpenAIServer
from iopo_eval.testing.replies import hashed_scores, trace_scores

URL = "/v1/chat/completions"


def body(i: int, model: str = "judge-model", n: int = 2) -> dict[str, Any]:
    prompt = f"Item {i}: give exactly {n} entries."
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def requests(count: int, **kw: Any) -> bytes:
    return jsonl(
        [{"custom_id": f"k{i}", "method": "POST", "url": URL, "body": body(i, **kw)} for i in range(count)]
    )


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with BatchServer(hashed_scores) as srv:
        yield srv


@pytest.fixture
def api(server: BatchServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-batch-test", max_retries=0)


def submit(api: openai.OpenAI, data: bytes, **kw: Any) -> Any:
    file = api.files.create(file=("requests.jsonl", data), purpose="batch")
    return api.batches.create(input_file_id=file.id, endpoint=URL, completion_window="24h", **kw)


def wait_status(server: BatchServer, batch_id: str, *statuses: str) -> dict[str, Any]:
    server.wait_for(lambda: server.batch(batch_id)["status"] in statuses)
    return server.batch(batch_id)


def lines(api: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(x) for x in api.files.content(file_id).content.splitlines()]


def test_upload_round_trips_bytes_and_reports_the_file(server: BatchServer, api: openai.OpenAI) -> None:
    data = (
        requests(3)
        + b'{"custom_id": "zh", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "messages": [{"role": "user", "content": "\xe4\xb8\xad\\r\\n"}]}}\n'
    )
    file = api.files.create(file=("in.jsonl", data), purpose="batch")
    assert file.purpose == "batch" and file.bytes == len(data) and file.filename == "in.jsonl"
    assert api.files.retrieve(file.id).id == file.id
    assert api.files.content(file.id).content == data == server.file_bytes(file.id)
    assert api.files.delete(file.id).deleted
    with pytest.raises(openai.NotFoundError):
        api.files.retrieve(file.id)


def test_a_batch_goes_through_every_state_and_answers_each_line(
    server: BatchServer, api: openai.OpenAI
) -> None:
    server.timing = BatchTiming(finalizing_s=0.3)
    server.hold(after=0)
    batch = submit(api, requests(5), metadata={"run": "r1"})
    assert batch.status == "validating" and batch.metadata == {"run": "r1"}
    state = wait_status(server, batch.id, "in_progress")
    assert state["request_counts"] == {"total": 5, "completed": 0, "failed": 0}
    assert api.batches.retrieve(batch.id).status == "in_progress"
    server.release()
    assert wait_status(server, batch.id, "finalizing", "completed")["status"] == "finalizing"
    done = api.batches.retrieve(batch.id) if wait_status(server, batch.id, "completed") else None
    assert done is not None and done.status == "completed" and done.error_file_id is None
    assert done.request_counts is not None and done.request_counts.completed == 5
    assert done.in_progress_at and done.finalizing_at and done.completed_at and done.model == "judge-model"
    out = lines(api, done.output_file_id)
    assert [row["custom_id"] for row in out] == [f"k{i}" for i in range(5)]
    for i, row in enumerate(out):
        response = row["response"]
        assert row["error"] is None and response["status_code"] == 200 and response["request_id"]
        assert response["body"]["choices"][0]["message"]["content"] == hashed_scores(body(i))
    assert done.usage is not None and done.usage.input_tokens == sum(
        r["response"]["body"]["usage"]["prompt_tokens"] for r in out
    )
    assert server.submitted == {f"k{i}": 1 for i in range(5)} and server.resubmitted == 0


def test_the_same_reply_functions_answer_as_the_synchronous_server(
    api: openai.OpenAI, server: BatchServer
) -> None:
    server.reply = trace_scores(7)
    done = wait_status(server, submit(api, requests(3, n=3)).id, "completed")
    batch_lines = {row["custom_id"]: row["response"]["body"] for row in lines(api, done["output_file_id"])}
    with OpenAIServer(trace_scores(7)) as sync:
        client = openai.OpenAI(base_url=sync.base_url, api_key="unused", max_retries=0)
        for i in range(3):
            reply = client.chat.completions.create(**body(i, n=3)).model_dump()
            line = batch_lines[f"k{i}"]
            assert line["choices"][0]["message"]["content"] == reply["choices"][0]["message"]["content"]
            usage = reply["usage"]
            assert line["usage"] == {
                k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            }


def test_faults_make_a_partial_error_file(server: BatchServer, api: openai.OpenAI) -> None:
    server.script(
        None,
        Fault.server_error(500),
        None,
        Fault.http_status(400),
        Fault.rate_limited(2),
        Fault.malformed_json(),
    )
    done = wait_status(server, submit(api, requests(7)).id, "completed")
    assert done["request_counts"] == {"total": 7, "completed": 4, "failed": 3}
    errors = {row["custom_id"]: row["response"] for row in lines(api, done["error_file_id"])}
    assert {k: v["status_code"] for k, v in errors.items()} == {"k1": 500, "k3": 400, "k4": 429}
    assert all("error" in v["body"] for v in errors.values())
    out = {row["custom_id"]: row["response"]["body"] for row in lines(api, done["output_file_id"])}
    assert sorted(out) == ["k0", "k2", "k5", "k6"] and "choices" not in out["k5"]


def test_a_cut_line_is_unreadable_and_echo_auth_quotes_the_key(
    server: BatchServer, api: openai.OpenAI
) -> None:
    server.script(Fault.cut_body(), Fault.echo_auth())
    done = wait_status(server, submit(api, requests(3)).id, "completed")
    raw = api.files.content(done["output_file_id"]).content.splitlines()
    with pytest.raises(ValueError):
        json.loads(raw[0])
    (error,) = lines(api, done["error_file_id"])
    assert (
        error["response"]["status_code"] == 401
        and "sk-batch-test" in error["response"]["body"]["error"]["message"]
    )


def test_expiry_keeps_the_answered_lines_and_reports_the_rest(
    server: BatchServer, api: openai.OpenAI
) -> None:
    server.hold(after=2)
    batch = submit(api, requests(5))
    server.wait_for(lambda: server.batch(batch.id)["request_counts"]["completed"] == 2)
    server.expire(batch.id)
    done = wait_status(server, batch.id, "expired")
    assert done["expired_at"] and done["request_counts"] == {"total": 5, "completed": 2, "failed": 3}
    assert [row["custom_id"] for row in lines(api, done["output_file_id"])] == ["k0", "k1"]
    expired = lines(api, done["error_file_id"])
    assert [row["custom_id"] for row in expired] == ["k2", "k3", "k4"]
    assert all(row["response"] is None and row["error"]["code"] == "batch_expired" for row in expired)
    server.release()


def test_the_completion_window_expires_a_batch_in_real_time(server: BatchServer, api: openai.OpenAI) -> None:
    server.timing = BatchTiming(validating_s=5.0, completion_window_s=0.2)
    done = wait_status(server, submit(api, requests(3)).id, "expired")
    assert done["output_file_id"] is None and done["request_counts"]["completed"] == 0
    assert [row["error"]["code"] for row in lines(api, done["error_file_id"])] == ["batch_expired"] * 3


def test_cancel_goes_through_cancelling_and_keeps_partial_output(
    server: BatchServer, api: openai.OpenAI
) -> None:
    server.timing = BatchTiming(cancelling_s=0.3)
    server.hold(after=3)
    batch = submit(api, requests(6))
    server.wait_for(lambda: server.batch(batch.id)["request_counts"]["completed"] == 3)
    assert api.batches.cancel(batch.id).status == "cancelling"
    done = wait_status(server, batch.id, "cancelled")
    assert done["cancelling_at"] and done["cancelled_at"] and done["error_file_id"] is None
    assert [row["custom_id"] for row in lines(api, done["output_file_id"])] == ["k0", "k1", "k2"]
    with pytest.raises(openai.ConflictError):
        api.batches.cancel(batch.id)
    server.release()


def test_cancel_while_validating(server: BatchServer, api: openai.OpenAI) -> None:
    server.timing = BatchTiming(validating_s=30.0)
    batch = submit(api, requests(2))
    assert api.batches.retrieve(batch.id).status == "validating"
    api.batches.cancel(batch.id)
    done = wait_status(server, batch.id, "cancelled")
    assert done["output_file_id"] is None and done["error_file_id"] is None


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ("not json", "invalid_json_line"),
        ('["a list"]', "invalid_json_line"),
        ({"method": "POST", "url": URL, "body": body(9)}, "missing_required_parameter"),
        ({"custom_id": "k0", "method": "POST", "url": URL, "body": body(9)}, "duplicate_custom_id"),
        ({"custom_id": "x", "method": "GET", "url": URL, "body": body(9)}, "invalid_method"),
        ({"custom_id": "x", "method": "POST", "url": "/v1/embeddings", "body": body(9)}, "invalid_url"),
        (
            {"custom_id": "x", "method": "POST", "url": URL, "body": {"messages": []}},
            "missing_required_parameter",
        ),
        (
            {"custom_id": "x", "method": "POST", "url": URL, "body": body(9, model="other")},
            "mismatched_model",
        ),
    ],
)
def test_an_invalid_input_file_fails_the_batch_naming_the_line(
    server: BatchServer, api: openai.OpenAI, row: Any, code: str
) -> None:
    bad = row.encode() + b"\n" if isinstance(row, str) else jsonl([row])
    done = wait_status(server, submit(api, requests(2) + bad).id, "failed")
    (error,) = done["errors"]["data"]
    assert error["code"] == code and error["line"] in (3, None)
    assert done["failed_at"] and done["output_file_id"] is None and done["request_counts"]["total"] == 0


def test_per_batch_limits_are_enforced(api: openai.OpenAI) -> None:
    with BatchServer("ok", max_requests=3, max_file_bytes=2_000) as small:
        client = openai.OpenAI(base_url=small.base_url, api_key="k", max_retries=0)
        done = wait_status(small, submit(client, requests(4)).id, "failed")
        assert done["errors"]["data"][0]["code"] == "too_many_requests"
        assert wait_status(small, submit(client, requests(3)).id, "completed")
        with pytest.raises(openai.BadRequestError, match="too large"):
            client.files.create(file=("big.jsonl", requests(20)), purpose="batch")


def test_bad_uploads_and_bad_batch_requests_are_refused(server: BatchServer, api: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="jsonl"):
        api.files.create(file=("requests.json", requests(1)), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        api.files.create(file=("requests.jsonl", requests(1)), purpose="nonsense")  # type: ignore[arg-type]
    other = api.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    good = api.files.create(file=("requests.jsonl", requests(1)), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
        api.batches.create(input_file_id=other.id, endpoint=URL, completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        api.batches.create(input_file_id="file-missing", endpoint=URL, completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        api.batches.create(input_file_id=good.id, endpoint="/v1/nothing", completion_window="24h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="24h"):
        api.batches.create(input_file_id=good.id, endpoint=URL, completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        api.batches.retrieve("batch_missing")
    assert server.batch_ids() == []


def test_list_is_newest_first_and_pages(server: BatchServer, api: openai.OpenAI) -> None:
    ids = [submit(api, requests(1), metadata={"n": str(i)}).id for i in range(5)]
    first = api.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
    assert [b.id for b in api.batches.list(limit=100)] == ids[::-1]  # the SDK follows the pages
    assert [b.metadata for b in api.batches.list(limit=3).data] == [{"n": "4"}, {"n": "3"}, {"n": "2"}]


def test_a_stalled_create_exists_before_its_reply(server: BatchServer, api: openai.OpenAI) -> None:
    server.stall("batches.create")
    file = api.files.create(file=("requests.jsonl", requests(2)), purpose="batch")
    replies: list[Any] = []
    caller = threading.Thread(
        target=lambda: replies.append(
            api.batches.create(input_file_id=file.id, endpoint=URL, completion_window="24h")
        )
    )
    caller.start()
    # the route is counted just after the batch is made: wait for both, then the reply is still held back
    server.wait_for(lambda: len(server.batch_ids()) == 1 and server.routes["batches.create"] == 1)
    assert replies == []
    server.release()
    caller.join(timeout=10)
    assert [b.id for b in replies] == server.batch_ids()
