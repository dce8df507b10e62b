"""Issue 6.4: the bad-input matrix. Each bad input gets a clear error naming it (file, line, key), or is
handled and recorded; none is a crash that loses finished work."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.cli import main as cli_main
from iopo_eval.data.store import DataError, data_path
from iopo_eval.data.trace import TRACE_FILE_KEY, load_trace
from iopo_eval.judges import JudgeCache, JudgeConfigError, judge_batch, load_judge_config
from iopo_eval.judges.parse import PARSERS, ParserSpec, parse_trace_scores, register_parser, trace_schema
from iopo_eval.results import ResultsError, read_items
from iopo_eval.scoring.trace import judge_request
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import hashed_scores

from .conftest import judge_config_file, judge_stage, trace_items, write_generations

# --------------------------------------------------------------------------- data rows


def first_rows(n: int) -> list[dict[str, Any]]:
    lines = data_path(TRACE_FILE_KEY).read_text(encoding="utf-8").splitlines()[:n]
    return [json.loads(line) for line in lines]


def _drop(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != key}


ROW_DEFECTS = {
    "missing field": (lambda r: _drop(r, "constraints_splits"), "missing field 'constraints_splits'"),
    "missing messages": (lambda r: _drop(r, "messages"), "missing field 'messages'"),
    "wrong type (count as text)": (
        lambda r: {**r, "constraints_num": str(r["constraints_num"])},
        "'constraints_num'",
    ),
    "wrong type (splits not a list)": (lambda r: {**r, "constraints_splits": "a; b"}, "'constraints_splits'"),
    "wrong type (bool count)": (lambda r: {**r, "constraints_num": True}, "'constraints_num'"),
    "wrong constraint count": (
        lambda r: {**r, "constraints_num": r["constraints_num"] + 1},
        "constraints_num=",
    ),
    "labels not aligned": (lambda r: {**r, "levels2": r["levels2"][:-1]}, "'levels2' has"),
    "empty constraint": (
        lambda r: {**r, "constraints_splits": ["", *r["constraints_splits"][1:]]},
        "non-empty",
    ),
    "no user turn": (
        lambda r: {**r, "messages": [m for m in r["messages"] if m["role"] != "user"]},
        "no user turn",
    ),
}


@pytest.mark.parametrize("defect", sorted(ROW_DEFECTS))
def test_bad_data_row_is_named(tmp_path: Path, defect: str) -> None:
    mutate, message = ROW_DEFECTS[defect]
    rows = first_rows(4)
    rows[3] = mutate(rows[3])
    path = tmp_path / "trace_eval.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_trace(path)
    assert "trace_eval.jsonl line 4" in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b'{"id": 9, "messages": [', b"not valid UTF-8 JSON"),
        (b'{"id": "\xff\xfe"}', b"not valid UTF-8 JSON"),
        (b"[1, 2]", b"expected a JSON object"),
    ],
    ids=["truncated line", "invalid utf-8", "not an object"],
)
def test_unreadable_data_line_is_named(tmp_path: Path, tail: bytes, message: bytes) -> None:
    path = tmp_path / "trace_eval.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in first_rows(2)) + tail + b"\n")
    with pytest.raises(DataError) as err:
        load_trace(path)
    assert f"{path} line 3" in str(err.value) and message.decode() in str(err.value)


def test_duplicate_id_is_named(tmp_path: Path) -> None:
    rows = first_rows(2)
    path = tmp_path / "trace_eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, rows[0]]), encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3: duplicate id"):
        load_trace(path)


# --------------------------------------------------------------------------- responses

ONE_MB = "长" * 350_000 + "x" * (1_000_000 - 350_000)
ODD_RESPONSES = {
    "empty": "",
    "blank": "  \n\t ",
    "one_mb": ONE_MB,
    "nul_bytes": "before\x00after\x00\x00",
    "lone_surrogates": "bytes that were not UTF-8: \udcff\udcfe and a lone high \ud800 end",
    "line_separators": "one\u2028two\u2029three\x85four",
}


def test_odd_responses_through_the_judge_stage(tmp_path: Path, judge_key: str) -> None:
    items = trace_items()[: len(ODD_RESPONSES) + 1]
    responses = dict(zip((i.id for i in items), ODD_RESPONSES.values(), strict=False))
    kind_of = dict(zip((i.id for i in items), ODD_RESPONSES, strict=False))
    gen = write_generations(tmp_path / "gen", items[:-1], responses)
    # A line of raw bytes that are not UTF-8 (what a broken tool might write).
    last = items[-1]
    with (gen / "trace.generations.jsonl").open("ab") as fh:
        fh.write(b'{"id": "' + last.id.encode() + b'", "response": "caf\xe9 \xff ok"}\n')
    kind_of[last.id] = "invalid_utf8_bytes"
    config = judge_config_file(tmp_path / "cfg")
    cache = tmp_path / "c.sqlite"
    with OpenAIServer(hashed_scores) as server:
        results, records = judge_stage(gen, config, server.base_url, cache, tmp_path / "runs")
        asked = server.calls
        prompts = [b["messages"][-1]["content"] for b in server.bodies]
        # A rerun gives the same prompts (truncation is deterministic), so everything is cached.
        _, again = judge_stage(gen, config, server.base_url, cache, tmp_path / "again")
        assert server.calls == asked
    by_kind = {kind_of[k]: r for k, r in records.items()}
    for kind in ("empty", "blank"):
        # The model answered nothing: recorded as such and rated 0 without asking the judge.
        assert by_kind[kind].judge["error_kind"] == "empty_response" and by_kind[kind].judge["attempts"] == 0
        assert by_kind[kind].values["empty_response"] == 1.0 and by_kind[kind].values["if_all"] == 0.0
    assert asked == len(items) - 2  # no call for the empty responses
    for kind in ("one_mb", "nul_bytes", "lone_surrogates", "line_separators", "invalid_utf8_bytes"):
        assert by_kind[kind].status == "ok", kind
        assert again[by_kind[kind].item_id].judge["cached"], kind
    # Kept exactly in the items file; the judge saw a deterministic, marked cut of the 1 MB response.
    assert by_kind["one_mb"].response == ONE_MB
    assert by_kind["one_mb"].judge["truncated"] == {"response": 1_000_000}
    assert all(len(p) < 40_000 for p in prompts)
    assert any("[... truncated: 984000 more characters not shown]" in p for p in prompts)
    assert by_kind["nul_bytes"].response == ODD_RESPONSES["nul_bytes"]
    assert by_kind["lone_surrogates"].response == ODD_RESPONSES["lone_surrogates"]
    assert by_kind["line_separators"].response == ODD_RESPONSES["line_separators"]
    assert by_kind["invalid_utf8_bytes"].response == b"caf\xe9 \xff ok".decode("utf-8", "surrogateescape")
    assert any("\ufffd\ufffd and a lone high \ufffd end" in p for p in prompts)
    assert results.benchmarks["trace"].n_failed == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"id": "1", "resp', "not JSON"),
        (b'{"id": "1"}', "expected"),
        (b'{"id": "1", "response": 7}', "expected"),
    ],
    ids=["truncated", "no response", "not text"],
)
def test_bad_generations_line_is_named(
    tmp_path: Path, line: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "trace.generations.jsonl").write_bytes(b'{"id": "0", "response": "fine"}\n' + line + b"\n")
    assert re.search(
        rf"trace.generations.jsonl line 2: {message}",
        cli_error(
            capsys,
            [
                "judge",
                str(gen),
                "--judge-base-url",
                "http://127.0.0.1:9/v1",
                "--no-embedded-judge",
                "-o",
                str(tmp_path / "o"),
            ],
        ),
    )


# --------------------------------------------------------------------------- judge configs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temprature": 0.0}, "unknown key 'temprature'"),
        (
            {"price": {"input_per_mtok": 1.0, "output_per_mtok": 1.0, "cached_per_mtok": 0.5}},
            "unknown key 'price.cached_per_mtok'",
        ),
        ({"model": None}, "key 'model' must be str"),
        ({"max_retries": "4"}, "key 'max_retries' must be int"),
        ({"truncation": {"response": 0}}, "'truncation.response'"),
        ({"parser": "no_such_parser"}, "unknown parser 'no_such_parser'"),
        ({"template": "missing_template.txt"}, "template 'missing_template.txt' not found"),
    ],
)
def test_bad_judge_config_is_named(
    tmp_path: Path, judge_key: str, change: dict[str, Any], message: str
) -> None:
    config = judge_config_file(tmp_path, **change)
    with pytest.raises(JudgeConfigError) as err:
        load_judge_config(config)
    assert str(config) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("key", ["model", "template", "price", "parser"])
def test_judge_config_missing_key_fails_before_any_call(
    tmp_path: Path, judge_key: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = judge_config_file(tmp_path / "cfg")
    raw = {k: v for k, v in (json.loads(json.dumps(_yaml(config)))).items() if k != key}
    config.write_text(json.dumps(raw), encoding="utf-8")  # JSON is YAML
    gen = write_generations(tmp_path / "gen", trace_items()[:2])
    with OpenAIServer(hashed_scores) as server:
        argv = ["judge", str(gen), "--judge", str(config), "--judge-base-url", server.base_url]
        argv += [
            "--judge-cache",
            str(tmp_path / "c.sqlite"),
            "--no-embedded-judge",
            "-o",
            str(tmp_path / "runs"),
        ]
        assert f"{config}: missing key '{key}'" in cli_error(capsys, argv)
        assert server.calls == 0


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- results files


@pytest.fixture
def finished_run(tmp_path: Path, judge_key: str) -> Path:
    gen = write_generations(tmp_path / "gen", trace_items()[:6])
    with OpenAIServer(hashed_scores) as server:
        judge_stage(
            gen,
            judge_config_file(tmp_path / "cfg"),
            server.base_url,
            tmp_path / "c.sqlite",
            tmp_path / "runs",
        )
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_truncated_results_json_is_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = finished_run / "results.json"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    err = cli_error(capsys, ["score", "run", str(finished_run), "-o", str(tmp_path / "rescored")])
    assert re.search(rf"{re.escape(str(path))}: not valid JSON .* truncated", err)
    assert cli_main(["leaderboard", str(finished_run), "-o", str(tmp_path / "site")]) == 2
    assert str(path) in capsys.readouterr().err


def test_truncated_items_file_is_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = finished_run / "trace.items.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])  # the last line is cut in the middle
    lines = data[: len(data) - 200].count(b"\n") + 1
    with pytest.raises(ResultsError, match=rf"{path} line {lines}: .*truncated"):
        read_items(path)
    assert f"{path} line {lines}" in cli_error(
        capsys, ["score", "run", str(finished_run), "-o", str(tmp_path / "rescored")]
    )
    judge_argv = [
        "judge",
        str(finished_run),
        "--judge-base-url",
        "http://127.0.0.1:9/v1",
        "-o",
        str(tmp_path / "o"),
    ]
    assert f"{path} line {lines}" in cli_error(capsys, judge_argv)


def test_missing_items_file_is_named(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = finished_run / "trace.items.jsonl"
    shutil.move(path, tmp_path / "elsewhere.jsonl")
    err = cli_error(capsys, ["score", "run", str(finished_run), "-o", str(tmp_path / "rescored")])
    assert f"{path}: items file not found" in err


def cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI on bad input: it must end with exit code 2 and one message on stderr, no traceback."""
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("iopo-eval: error: ") and "Traceback" not in err
    return err


# --------------------------------------------------------------------------- a crash keeps finished work

BUGGY = "trace_scores_crashes_on_marker"
if BUGGY not in PARSERS:

    def _buggy_parse(text: str, n_expected: int) -> Any:
        if "CRASH-THE-PARSER" in text:
            raise RuntimeError("a bug in a third-party parser")
        return parse_trace_scores(text, n_expected)

    register_parser(ParserSpec(name=BUGGY, parse=_buggy_parse, schema=trace_schema))


def test_a_stage_that_dies_on_item_900_has_cached_the_899_before(tmp_path: Path, judge_key: str) -> None:
    items = trace_items()
    requests = [judge_request(item, f"answer {item.id}") for item in items]
    marker = requests[899].fields["response"]
    crash = {"on": True}

    def reply(request: dict[str, Any]) -> str:
        if crash["on"] and f"\n{marker}\n" in request["messages"][-1]["content"]:
            return "CRASH-THE-PARSER"
        return hashed_scores(request)

    with OpenAIServer(reply) as server:
        config = load_judge_config(judge_config_file(tmp_path / "cfg", parser=BUGGY)).with_overrides(
            base_url=server.base_url
        )
        with JudgeCache(tmp_path / "c.sqlite") as cache:
            with pytest.raises(RuntimeError, match="third-party parser"):
                judge_batch(requests, config.with_overrides(concurrency=1), cache, progress=False)
            assert len(cache) == 899 and server.calls == 900
            assert cache.leases() == []  # the dying run let go of what it held
            crash["on"] = False
            run = judge_batch(requests, config.with_overrides(concurrency=4), cache, progress=False)
        assert run.judged == 1042 and run.cache_hits == 899 and server.calls == 900 + 143
