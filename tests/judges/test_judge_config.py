"""Judge configs: bundled and file configs, strict keys, identity hash, overrides from env and flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iopo_eval.judges import JudgeConfigError, load_judge_config, resolve_judge_config
from iopo_eval.judges.config import CONFIGS_DIR


def bundled() -> dict[str, object]:
    return yaml.safe_load((CONFIGS_DIR / "trace-gpt4o-hardened.yaml").read_text())


def write(tmp_path: Path, data: dict[str, object], name: str = "judge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_hardened_config_is_pinned_gpt4o_with_structured_outputs() -> None:
    cfg = load_judge_config("trace-gpt4o-hardened")
    assert cfg.model == "gpt-4o-2024-08-06"
    assert cfg.temperature == 0.0 and cfg.response_format == "json_schema"
    assert (cfg.price.input_per_mtok, cfg.price.output_per_mtok) == (2.5, 10.0)
    assert cfg.api_key_env == "OPENAI_API_KEY" and cfg.base_url is None
    assert "{{response}}" in cfg.template_text
    assert not cfg.smoke_test
    assert load_judge_config("smollm2-smoke").smoke_test


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, {**bundled(), "temprature": 0.2})
    with pytest.raises(JudgeConfigError) as err:
        load_judge_config(path)
    assert str(path) in str(err.value) and "'temprature'" in str(err.value)


def test_missing_key_names_file_and_key(tmp_path: Path) -> None:
    data = bundled()
    del data["parser"]
    path = write(tmp_path, data)
    with pytest.raises(JudgeConfigError, match=r"missing key 'parser'") as err:
        load_judge_config(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("temperature", "hot", "temperature"),
        ("parser", "no_such_parser", "unknown parser"),
        ("response_format", "xml", "response_format"),
        ("price", {"input_per_mtok": 1}, "price.output_per_mtok"),
        ("template", "missing.txt", "missing.txt"),
        ("truncation", {"response": 0}, "truncation.response"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, key: str, value: object, match: str) -> None:
    with pytest.raises(JudgeConfigError, match=match):
        load_judge_config(write(tmp_path, {**bundled(), key: value}))


def test_unknown_bundled_name() -> None:
    with pytest.raises(JudgeConfigError, match="no-such-judge"):
        load_judge_config("no-such-judge")


def test_template_path_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("Judge {{response}} against {{constraints}} ({{n_expected}})")
    cfg = load_judge_config(write(tmp_path, {**bundled(), "template": "mine.txt"}))
    assert cfg.template_text.startswith("Judge {{response}}")


def test_identity_hash_ignores_endpoint_key_and_throughput_settings() -> None:
    cfg = load_judge_config("trace-gpt4o-hardened")
    same = cfg.with_overrides(
        base_url="http://127.0.0.1:1/v1", api_key_env="OTHER_KEY", concurrency=3, timeout_s=1.0, max_retries=0
    )
    assert same.identity_hash() == cfg.identity_hash()
    for changed in (
        cfg.with_overrides(model="gpt-4o-2024-11-20"),
        cfg.with_overrides(temperature=0.5),
        cfg.with_overrides(prompt_version="v2"),
        cfg.with_overrides(response_format="json_object"),
        cfg.with_overrides(truncation={"response": 10}),
        cfg.with_overrides(max_tokens=100),
    ):
        assert changed.identity_hash() != cfg.identity_hash()


def test_identity_hash_follows_the_template_text(tmp_path: Path) -> None:
    text = (CONFIGS_DIR.parent / "templates" / "trace_judge_v1.txt").read_text()
    (tmp_path / "t.txt").write_text(text + "\nOne more sentence.")
    cfg = load_judge_config("trace-gpt4o-hardened")
    assert cfg.with_overrides(template=str(tmp_path / "t.txt")).identity_hash() != cfg.identity_hash()


def test_resolve_applies_env_then_explicit_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOPO_EVAL_JUDGE", "smollm2-smoke")
    monkeypatch.setenv("IOPO_EVAL_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("IOPO_EVAL_JUDGE_MODEL", "env-model")
    cfg = resolve_judge_config()
    assert (cfg.name, cfg.base_url, cfg.model) == ("smollm2-smoke", "http://127.0.0.1:9/v1", "env-model")
    cfg = resolve_judge_config("trace-gpt4o-hardened", model="flag-model")
    assert (cfg.name, cfg.base_url, cfg.model) == (
        "trace-gpt4o-hardened",
        "http://127.0.0.1:9/v1",
        "flag-model",
    )


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(JudgeConfigError, match="api_key"):
        load_judge_config("trace-gpt4o-hardened").with_overrides(api_key="sk-nope")


def test_paper_protocol_survives_only_overrides_that_cannot_change_a_judgement(tmp_path: Path) -> None:
    """A config marked as the paper's judge stays so on another endpoint (Azure, a proxy) or with other
    throughput settings; another model, prompt or sampling makes it a different instrument."""
    from iopo_eval.judging import describe_config

    paper = load_judge_config(write(tmp_path, {**bundled(), "paper_protocol": True}))
    assert paper.paper_protocol
    moved = paper.with_overrides(base_url="https://my-azure.example.com/openai/v1", concurrency=64)
    assert moved.paper_protocol
    described = describe_config(moved)
    assert described["paper_comparable"] and described["endpoint_host"] == "my-azure.example.com"
    for changed in (
        paper.with_overrides(model="Qwen2.5-72B-Instruct"),
        paper.with_overrides(temperature=0.7),
        paper.with_overrides(prompt_version="mine"),
    ):
        assert not changed.paper_protocol and not describe_config(changed)["paper_comparable"]
    assert not describe_config(paper.with_overrides(smoke_test=True))["paper_comparable"]
    via_flags = resolve_judge_config(
        write(tmp_path, {**bundled(), "paper_protocol": True}, "p.yaml"),
        base_url="http://127.0.0.1:8000/v1",
        model="Qwen2.5-72B-Instruct",
    )
    described = describe_config(via_flags)
    assert (described["model"], described["endpoint_host"]) == ("Qwen2.5-72B-Instruct", "127.0.0.1:8000")
    assert not described["paper_comparable"]


def test_mode_batch_prices_and_rate_limits_are_read_and_never_enter_the_identity(tmp_path: Path) -> None:
    from iopo_eval.judges import Price
    from iopo_eval.judges.settings import BatchSettings, RateLimitSettings

    cfg = load_judge_config("trace-gpt4o")
    assert cfg.mode == "sync" and cfg.batch == BatchSettings() and cfg.rate_limit is None
    assert cfg.batch_price == Price(1.25, 5.0)  # OpenAI's Batch API: half of $2.50 / $10
    base = load_judge_config("trace-gpt4o-hardened")  # the config the file below is made from
    for name in ("cfbench-gpt4o", "complexbench-gpt4-1106", "complexbench-extract-gpt4-1106"):
        for other in (load_judge_config(name), load_judge_config(f"{name}-hardened")):
            assert other.batch_price is not None
            assert other.batch_price.input_per_mtok * 2 == other.price.input_per_mtok
            assert other.batch_price.output_per_mtok * 2 == other.price.output_per_mtok
    data = {
        **bundled(),
        "mode": "batch",
        "batch": {
            "poll_interval_s": 5,
            "max_wait_s": 3600,
            "fallback": "sync",
            "endpoint": "/chat/completions",
        },
        "batch_price": {"input_per_mtok": 1.0, "output_per_mtok": 4.0},
        "rate_limit": {"requests_per_minute": 500, "tokens_per_minute": 30000},
    }
    batch = load_judge_config(write(tmp_path, data))
    assert batch.mode == "batch" and batch.batch.fallback == "sync" and batch.batch.max_wait_s == 3600
    assert batch.batch.poll_interval_s == 5.0 and batch.batch.max_requests == 50_000
    assert batch.batch_price == Price(1.0, 4.0)
    assert batch.rate_limit == RateLimitSettings(requests_per_minute=500, tokens_per_minute=30000)
    assert batch.identity_hash() == base.identity_hash()
    # Overrides keep the sections and validate them like a file.
    moved = batch.with_overrides(base_url="http://127.0.0.1:1/v1", mode="sync")
    assert moved.mode == "sync" and moved.batch == batch.batch and moved.rate_limit == batch.rate_limit
    assert moved.identity_hash() == base.identity_hash()


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("mode", "fast", r"key 'mode' must be one of 'sync' or 'batch', got 'fast'"),
        ("batch", {"pol_interval_s": 1}, r"unknown key 'batch.pol_interval_s' \(known: \['api_timeout_s'"),
        ("batch", {"fallback": "retry"}, r"key 'batch.fallback' must be one of 'batch' or 'sync'"),
        ("batch", {"max_requests": 0}, r"batch.max_requests"),
        ("batch", {"poll_interval_s": "30"}, r"key 'batch.poll_interval_s' must be a number, got '30'"),
        ("batch_price", {"input_per_mtok": 1}, r"missing key 'batch_price.output_per_mtok'"),
        ("rate_limit", {"rpm": 5}, r"unknown key 'rate_limit.rpm' \(known: \['burst_s'"),
        ("rate_limit", {"requests_per_minute": 0}, r"rate_limit.requests_per_minute"),
    ],
)
def test_bad_sections_are_named(tmp_path: Path, key: str, value: object, match: str) -> None:
    path = write(tmp_path, {**bundled(), key: value})
    with pytest.raises(JudgeConfigError, match=match) as err:
        load_judge_config(path)
    assert str(path) in str(err.value)
