"""A build killed with SIGKILL in the middle resumes where it stopped and pays nothing twice; the command
line: dry run, bad input, merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from iopo_eval.cli import main as cli_main
from iopo_eval.testing.build_replies import ScriptedBuilder
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.training.databuild.seeds import PACKAGED_SEEDS
from tests.training.databuild.conftest import generator_yaml


def _command(out, gen, url, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "iopo_eval.cli", "train", "build-data", str(PACKAGED_SEEDS), "-o", str(out),
        "--llm", str(gen), "--judge", "trace-gpt4o", "--judge-base-url", url, "--limit", "20",
        "--concurrency", "4", "--chunk-size", "5", *extra,
    ]  # fmt: skip


def test_killed_build_resumes_without_paying_twice(tmp_path) -> None:
    with OpenAIServer(ScriptedBuilder(), latency_s=0.01) as server:
        gen = generator_yaml(tmp_path, server.base_url)
        out = tmp_path / "killed"
        proc = subprocess.Popen(
            _command(out, gen, server.base_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while server.calls < 150 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_calls = server.calls
        assert (out / "state" / "expand.jsonl").is_file() and not (out / "report.json").exists()
        done = subprocess.run(
            _command(out, gen, server.base_url), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        resumed_calls = server.calls - killed_calls
        report = json.loads((out / "report.json").read_text())
        assert (
            report["cost"]["this_run"]["total"]["cache_hits"] > 0
            or resumed_calls < report["cost"]["all_runs"]["total"]["calls"]
        )

        server.reset_counters()
        clean = tmp_path / "clean"
        assert (
            subprocess.run(_command(clean, gen, server.base_url), capture_output=True, timeout=300).returncode
            == 0
        )
        clean_calls = server.calls
    # together the killed run and its resumption asked what one clean build asks, plus at most the calls
    # that were in flight when the kill came (4 at a time)
    assert clean_calls <= killed_calls + resumed_calls <= clean_calls + 4
    for name in ("quadruples.jsonl", "dpo_pairs.jsonl", "sft.jsonl", "instructions.jsonl"):
        assert (out / name).read_text() == (clean / name).read_text(), name


def test_dry_run_makes_no_call_and_writes_nothing(tmp_path, server, capsys) -> None:
    gen = generator_yaml(tmp_path, server.base_url)
    out = tmp_path / "dry"
    args = ["train", "build-data", str(PACKAGED_SEEDS), "-o", str(out), "--llm", str(gen), "--judge", "trace-gpt4o",
            "--judge-base-url", server.base_url, "--limit", "10", "--dry-run"]  # fmt: skip
    assert cli_main(args) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert server.calls == 0 and not out.exists()
    assert estimate["items"] == 10 and estimate["steps"]["expand"]["requests"] == 10
    assert estimate["steps"]["respond"]["requests"] == 40 and estimate["steps"]["judge"]["requests"] == 40
    assert estimate["total"]["usd"] > 0 and estimate["total"]["prompt_tokens"] > 0
    # after a build, the estimate counts what is cached
    assert cli_main(args[:-1]) == 0
    capsys.readouterr()
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out)["steps"]["expand"]["cached"] == 10


@pytest.mark.parametrize("key", [None, "sk-test-not-used"])
def test_dry_run_offline_starts_no_server(tmp_path, capsys, monkeypatch, key) -> None:
    """The embedded generator's smoke data is judged by the embedded judge, even when an API key is set."""
    if key:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    else:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("IOPO_EVAL_JUDGE_BASE_URL", raising=False)
    monkeypatch.delenv("IOPO_EVAL_JUDGE", raising=False)
    started = time.monotonic()
    assert (
        cli_main(
            [
                "train",
                "build-data",
                str(PACKAGED_SEEDS),
                "-o",
                str(tmp_path / "o"),
                "--dry-run",
                "--limit",
                "3",
            ]
        )
        == 0
    )
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["total"]["usd"] == 0 and time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("extra", "seeds_text", "message"),
    [
        (
            [],
            '{"instruction": "ok"}\n{"instruction": 3}\n',
            "seeds.jsonl line 2: 'instruction' must be a non-empty string",
        ),
        (["--llm", "no-such-generator"], '{"instruction": "ok"}\n', "--llm"),
        (["--llm", "gpt-4o"], '{"instruction": "ok"}\n', "needs $OPENAI_API_KEY"),
        (["--shard", "3/3"], '{"instruction": "ok"}\n', "--shard '3/3'"),
        (
            ["--taxonomy", "missing.yaml"],
            '{"instruction": "ok"}\n',
            "taxonomy file missing.yaml: no such file",
        ),
    ],
)
def test_bad_input_exits_2_with_one_message(
    tmp_path, capsys, monkeypatch, extra, seeds_text, message
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seeds.jsonl").write_text(seeds_text, encoding="utf-8")
    args = [
        "train",
        "build-data",
        "seeds.jsonl",
        "-o",
        "out",
        "--judge-base-url",
        "http://127.0.0.1:9/v1",
        "--dry-run",
        *extra,
    ]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_merge_command(tmp_path, server, capsys) -> None:
    gen = generator_yaml(tmp_path, server.base_url)
    common = [
        "--llm",
        str(gen),
        "--judge",
        "trace-gpt4o",
        "--judge-base-url",
        server.base_url,
        "--distribution",
        "1-2",
    ]
    for i in range(2):
        assert (
            cli_main(
                [
                    "train",
                    "build-data",
                    str(PACKAGED_SEEDS),
                    "-o",
                    str(tmp_path / f"s{i}"),
                    "--shard",
                    f"{i}/2",
                    *common,
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert (
        cli_main(
            ["train", "merge-data", str(tmp_path / "s0"), str(tmp_path / "s1"), "-o", str(tmp_path / "m")]
        )
        == 0
    )
    assert "40 seeds ->" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "report.json").read_text())["manifest"]["merged_from"] == 2


@pytest.mark.slow
def test_offline_smoke_build_on_the_embedded_model(tmp_path, capsys, monkeypatch) -> None:
    """No endpoint, no key: the embedded SmolLM2-135M generates and judges; everything says SMOKE TEST."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("IOPO_EVAL_JUDGE_BASE_URL", raising=False)
    out = tmp_path / "smoke"
    args = ["train", "build-data", str(PACKAGED_SEEDS), "-o", str(out), "--limit", "1", "--candidates", "1",
            "--distribution", "1"]  # fmt: skip
    assert cli_main(args) in (0, 3)
    assert capsys.readouterr().out.startswith("SMOKE TEST")
    report = json.loads((out / "report.json").read_text())
    assert report["smoke_test"] and report["manifest"]["judge"]["smoke_test"]
    assert report["manifest"]["judge"]["temperature"] == 1.0 and report["manifest"]["generator"]["smoke_test"]
    # the 135M judge answers met or not (its own template and parser), recorded as such
    assert report["manifest"]["judge"]["prompt_version"] == "smoke_judge_v1"
    # what survives a 135M model's replies varies; every item that entered a step left it kept, dropped or failed
    assert (
        report["cost"]["all_runs"]["total"]["calls"] >= 1 and report["cost"]["all_runs"]["total"]["usd"] == 0
    )
    assert (
        "SMOKE TEST" in (out / "report.html").read_text()
        and "SMOKE TEST" in (out / "hf" / "README.md").read_text()
    )
    assert not any(p["pending"] for p in report["phases"])
