"""Upstream prompts as judge config values: reading a file without executing it, the config value and its
errors, the registry and the offline error, and the judge configs that use them end to end through a real
OpenAI-compatible server on 127.0.0.1 (the bytes on the wire are upstream's prompt)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import upstream_oracles as oracle
import yaml

from iopo_eval.data import DataError
from iopo_eval.data.registry import REGISTRY
from iopo_eval.judges import JudgeCache, JudgeConfig, JudgeRequest, judge_batch, load_judge_config
from iopo_eval.judges.config import CONFIGS_DIR, JudgeConfigError
from iopo_eval.judges.upstream_prompt import (
    SPECS,
    UpstreamPromptError,
    parse_prompt_config,
    read_spec,
    render_upstream,
    trace_query,
)
from iopo_eval.judges.upstream_source import (
    FStringFunction,
    StringAssignment,
    UpstreamSourceError,
    function_value,
    parse_module,
    read_template,
)
from iopo_eval.testing.openai_server import Fault, OpenAIServer

KEY_ENV = "IOPO_TEST_UPSTREAM_JUDGE_KEY"
# The benchmarks' default judges: upstream's prompts, the paper's protocol.
UPSTREAM_CONFIGS = (
    "trace-gpt4o",
    "cfbench-gpt4o",
    "complexbench-gpt4-1106",
    "complexbench-extract-gpt4-1106",
)

# ---------------------------------------------------------------- reading source without running it


def test_a_file_is_read_without_being_executed() -> None:
    """A module that would fail or do harm when imported is still read: nothing in it runs."""
    source = (
        "import does_not_exist\n"
        "raise SystemExit('executed!')\n"
        "open('/tmp/should-not-exist', 'w')\n"
        "PROMPT = '''Q: {question}\\nA: {answer}'''\n"
        "def make(a, b):\n"
        "    format_dict = [{'键': 1, 'b': [True, None]}]\n"
        "    format_str = json.dumps(format_dict, ensure_ascii=False, indent=2)\n"
        "    LOCAL = 'x {format_str} {a}'\n"
        "    return LOCAL.format(format_str=format_str, a=a)\n"
        "judge = lambda p, q: f'<{p}>{q!r}{p:>6}'\n"
        "def judge2(p):\n"
        "    '''doc'''\n"
        "    return f'[{p!a}]'\n"
        "import json\n"
    )
    tree = parse_module(source, "hostile.py")
    template = read_template(tree, StringAssignment("PROMPT"), "hostile.py")
    assert template.fill({"question": "{answer}", "answer": "\\n"}) == "Q: {answer}\nA: \\n"
    local = read_template(tree, StringAssignment("LOCAL", function="make"), "hostile.py")
    assert local.fields == {"format_str", "a"}
    value = function_value(tree, "make", "format_str", "hostile.py")
    assert value == json.dumps([{"键": 1, "b": [True, None]}], ensure_ascii=False, indent=2)
    fstring = read_template(tree, FStringFunction("judge"), "hostile.py")
    ns: dict[str, Any] = {}
    exec("judge = lambda p, q: f'<{p}>{q!r}{p:>6}'", ns)  # the same lambda, to compare with Python's f-string
    assert fstring.fill({"p": "ab", "q": "é'"}) == ns["judge"]("ab", "é'")
    assert read_template(tree, FStringFunction("judge2"), "x").fill({"p": "é"}) == "['\\xe9']"
    assert not Path("/tmp/should-not-exist").exists()


@pytest.mark.parametrize(
    ("source", "locator", "message"),
    [
        ("P = 'a {x.__class__}'", StringAssignment("P"), "not a plain name"),
        ("P = 'a {}'", StringAssignment("P"), "not a plain name"),
        ("P = 'a {0}'", StringAssignment("P"), "not a plain name"),
        ("P = 'a {x'", StringAssignment("P"), "not a valid str.format template"),
        ("P = f'{x}'", StringAssignment("P"), "not assigned a string literal"),
        ("P = 'a'\nP = 'b'", StringAssignment("P"), "exactly one assignment"),
        ("Q = 'a'", StringAssignment("P"), "exactly one assignment"),
        ("def f():\n    P = 'a'", StringAssignment("P", function="g"), "no function or class 'g'"),
        ("J = lambda p: f'{p.upper()}'", FStringFunction("J"), "not one of the parameters"),
        ("J = lambda p: f'{open(p)}'", FStringFunction("J"), "not one of the parameters"),
        ("J = lambda p, *a: f'{p}'", FStringFunction("J"), "plain positional"),
        ("J = lambda p: p + 'x'", FStringFunction("J"), "does not return an f-string"),
        ("def J(p):\n    x = 1\n    return f'{p}'", FStringFunction("J"), "one return statement"),
        ("J = 1", FStringFunction("J"), "not assigned a lambda"),
        ("P = 'a", StringAssignment("P"), "not Python"),
    ],
)
def test_shapes_that_cannot_be_read_safely_are_refused(source: str, locator: Any, message: str) -> None:
    with pytest.raises(UpstreamSourceError, match=message):
        read_template(parse_module(source, "f.py"), locator, "f.py")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("    d = compute()\n    s = json.dumps(d)", "only json.dumps"),
        ("    s = json.dumps([1], default=str)", "keyword 'default'"),
        ("    s = json.loads('[1]')", "only json.dumps"),
        ("    s = json.dumps(d)\n    d = [1]", "assigns no 'd' before"),
        ("    s = [x for x in range(3)]", "neither a literal"),
    ],
)
def test_function_values_are_literals_or_json_dumps_of_them(body: str, message: str) -> None:
    tree = parse_module(f"import json\ndef f():\n{body}\n", "f.py")
    with pytest.raises(UpstreamSourceError, match=message):
        function_value(tree, "f", "s", "f.py")
    other = parse_module("import simplejson as json\ndef f():\n    s = json.dumps([1])\n", "g.py")
    with pytest.raises(UpstreamSourceError, match="only json.dumps"):
        function_value(other, "f", "s", "g.py")  # "json" must be the json module


def test_each_spec_reads_its_mirrored_file_and_maps_exactly_its_fields(mirror: Path) -> None:
    for spec in SPECS.values():
        entry = REGISTRY[spec.registry_key]
        loaded = read_spec(spec, (mirror / entry.mirror_path).read_text(encoding="utf-8"), entry.key)
        for template in loaded.templates.values():
            assert template.fields == set(spec.sources), spec.name
    trace = read_spec(
        SPECS["trace"], (mirror / "trace/upstream/template.py").read_text(encoding="utf-8"), "t"
    )
    # format_str is upstream's json.dumps(..., ensure_ascii=False) of its example's literal: Chinese kept
    assert json.loads(trace.values["format_str"])[0] and "\\u" not in trace.values["format_str"]


def test_a_spec_that_does_not_fit_the_file_is_an_error(mirror: Path) -> None:
    import dataclasses

    from iopo_eval.judges.upstream_prompt import RequestField

    spec = dataclasses.replace(
        SPECS["complexbench-evaluation"], sources={"input": RequestField("instruction")}
    )
    text = (mirror / "complexbench/upstream/evaluation/prompts/RAL_evaluator.py").read_text(encoding="utf-8")
    with pytest.raises(UpstreamSourceError, match="fills .*'output'.* but spec"):
        read_spec(spec, text, "RAL_evaluator.py")


# ---------------------------------------------------------------- the config value


def test_the_config_value_is_parsed_with_defaults_and_named_errors() -> None:
    ref = parse_prompt_config({"upstream": "trace/upstream-template", "spec": "trace"})
    assert ref.option_values == {"question": "input"} and ref.spec.parser == "trace_upstream"
    other = parse_prompt_config(
        {"upstream": "trace/upstream-template", "spec": "trace", "options": {"question": "prompt"}}
    )
    assert other.identity() != ref.identity() and other.identity()["options"] == {"question": "prompt"}
    identity = ref.identity()
    assert identity["sha256"] == REGISTRY["trace/upstream-template"].sha256 and identity["role"] == "user"
    assert ref.describe() == "upstream:trace/upstream-template#trace@1(question=input)"
    bad = [
        ("x", "must be a mapping"),
        ({"upstream": "trace/upstream-template"}, "'prompt.spec' must be a string"),
        ({"upstream": "trace/upstream-template", "spec": "tracee"}, "'prompt.spec' 'tracee' is not one of"),
        ({"upstream": "cfbench/upstream-evaluate", "spec": "trace"}, "does not hold spec 'trace'"),
        (
            {"upstream": "trace/upstream-template", "spec": "trace", "template": "x"},
            "unknown key 'prompt.template'",
        ),
        (
            {"upstream": "trace/upstream-template", "spec": "trace", "options": {"q": "input"}},
            "'prompt.options.q'",
        ),
        (
            {"upstream": "trace/upstream-template", "spec": "trace", "options": {"question": "input2"}},
            r"'prompt.options.question' must be one of \['input', 'prompt', 'none', 'description\+input'\]",
        ),
        ({"upstream": "cfbench/upstream-evaluate", "spec": "cfbench", "options": []}, "must be a mapping"),
    ]
    for value, message in bad:
        with pytest.raises(UpstreamPromptError, match=message):
            parse_prompt_config(value, "cfg.yaml")


def test_traces_query_rule() -> None:
    assert trace_query("写诗", "NULL", "P", "input") == "写诗"
    assert trace_query("写诗", "春天", "P", "input") == "春天"
    assert (
        trace_query("写诗", "SELECT NULL FROM t", "P", "input") == "写诗"
    )  # a substring test, as upstream's
    assert trace_query("写诗", "春天", "P", "prompt") == "P"
    assert trace_query("写诗", "春天", "P", "none") == "写诗"
    assert trace_query("写诗", "春天", "P", "description+input") == "写诗\n春天"
    assert trace_query("写诗", "NULL", "P", "description+input") == "写诗"
    with pytest.raises(UpstreamPromptError, match="no field 'prompt'"):
        trace_query("写诗", "春天", None, "prompt")


@pytest.mark.parametrize(
    ("spec", "fields", "message"),
    [
        ("trace", {"row_input": "x", "row_constraints": "c", "response": "r"}, "no field 'description'"),
        (
            "trace",
            {"description": "d", "row_input": "x", "row_constraints": ["c"], "response": "r"},
            "'row_constraints' must be a string",
        ),
        ("cfbench", {"prompt": "p", "gold": "", "criteria": "c", "response": "r"}, "list of strings"),
        (
            "cfbench",
            {"prompt": "p", "gold": None, "criteria": ["c"], "response": "r"},
            "'gold' must be a string",
        ),
        (
            "complexbench-extraction",
            {"instruction": "i", "question": "q", "response": "r"},
            "no field 'rule'",
        ),
    ],
)
def test_a_request_that_does_not_fit_the_spec_is_named(
    spec: str, fields: dict[str, Any], message: str
) -> None:
    ref = {"upstream": SPECS[spec].registry_key, "spec": spec}
    with pytest.raises(UpstreamPromptError, match=message):
        render_upstream(ref, fields)


def test_lone_surrogates_become_replacement_characters() -> None:
    ref = {"upstream": "cfbench/upstream-evaluate", "spec": "cfbench"}
    text = render_upstream(ref, {"prompt": "p", "gold": "", "criteria": ["c"], "response": "a\ud800b"}).text
    assert "a\ufffdb" in text
    text.encode("utf-8")


def test_an_offline_machine_without_the_file_gets_the_not_available_error(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch, mirror: Path
) -> None:
    partial = tmp_path / "mirror"
    (partial / "trace").mkdir(parents=True)
    shutil.copy(mirror / "trace/202409_trace_evaluation.jsonl", partial / "trace")
    ref = {"upstream": "cfbench/upstream-evaluate", "spec": "cfbench"}
    fields = {"prompt": "p", "gold": "", "criteria": ["c"], "response": "r"}
    with pytest.raises(
        DataError, match=r"cfbench/upstream-evaluate: cfbench/upstream/evalaute.py is not available"
    ):
        render_upstream(ref, fields, mirror=str(partial))
    # a tampered copy is refused by its sha256 before it is read
    (partial / "cfbench/upstream").mkdir(parents=True)
    (partial / "cfbench/upstream/evalaute.py").write_text(
        "gpt_judge_for_cfbench = lambda prompt, gold_ans, response, criteria: f'{prompt}'\n"
    )
    with pytest.raises(DataError, match="has sha256 .* expected 07d0c0f9"):
        render_upstream(ref, fields, mirror=str(partial))


def test_a_file_changed_after_it_was_read_is_verified_again(
    tmp_path: Path, isolated_cache: Path, mirror: Path
) -> None:
    import os

    copy = tmp_path / "mirror"
    (copy / "cfbench/upstream").mkdir(parents=True)
    target = copy / "cfbench/upstream/evalaute.py"
    shutil.copy(mirror / "cfbench/upstream/evalaute.py", target)
    ref = {"upstream": "cfbench/upstream-evaluate", "spec": "cfbench"}
    fields = {"prompt": "p", "gold": "", "criteria": ["c"], "response": "r"}
    first = render_upstream(ref, fields, mirror=str(copy)).text
    assert render_upstream(ref, fields, mirror=str(copy)).text == first
    with target.open("a", encoding="utf-8") as fh:
        fh.write("\n# changed\n")
    os.utime(target, ns=(1, 1))
    with pytest.raises(DataError, match="has sha256"):
        render_upstream(ref, fields, mirror=str(copy))


def test_the_registry_pins_every_upstream_protocol_file(mirror: Path) -> None:
    table = (mirror / "README.md").read_text(encoding="utf-8").split("## Upstream protocol files", 1)[1]
    listed = {
        line.split("|")[1].strip()
        for line in table.splitlines()
        if line.startswith("| ") and "/upstream/" in line
    }
    ours = {entry.mirror_path: entry for entry in REGISTRY.values() if "/upstream/" in entry.mirror_path}
    assert set(ours) == listed and len(ours) == 12
    for path, entry in ours.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {path} "))
        assert entry.sha256 in row and entry.upstream_path in row, path
        assert entry.commit in table, path  # a repository's commit is named once, in its first row
        assert entry.key.startswith(f"{entry.benchmark}/upstream-")


# ---------------------------------------------------------------- judge configs


def test_the_default_judges_are_the_upstream_configs_with_upstreams_sampling() -> None:
    from iopo_eval.benchmarks import BENCHMARKS

    defaults = {role.default_config for b in BENCHMARKS.values() for role in b.judges}
    assert defaults == set(UPSTREAM_CONFIGS)
    configs = {name: load_judge_config(name) for name in UPSTREAM_CONFIGS}
    trace, cfbench, yesno, extract = configs.values()
    assert (trace.model, trace.temperature, trace.top_p, trace.parser) == (
        "gpt-4o-2024-08-06",
        0.0,
        0.8,
        "trace_upstream",
    )
    assert (cfbench.model, cfbench.temperature, cfbench.top_p, cfbench.max_retries) == (
        "gpt-4o-2024-05-13",
        0.01,
        None,
        9,
    )
    assert (yesno.model, yesno.temperature, yesno.top_p) == ("gpt-4-1106-preview", 0.0, None)
    assert extract.parser == "complexbench_extract_upstream" and yesno.parser == "complexbench_yesno_upstream"
    for cfg in configs.values():
        assert cfg.paper_protocol and cfg.response_format == "none" and cfg.truncation == {}
        ref = parse_prompt_config(cfg.prompt)
        assert cfg.parser == ref.spec.parser and cfg.template_text == ref.identity_text()
    assert len({cfg.identity_hash() for cfg in configs.values()}) == 4


def test_another_question_reading_is_another_judge(tmp_path: Path) -> None:
    cfg = load_judge_config("trace-gpt4o")
    other = cfg.with_overrides(
        prompt={"upstream": "trace/upstream-template", "spec": "trace", "options": {"question": "prompt"}}
    )
    assert other.identity_hash() != cfg.identity_hash() and not other.paper_protocol
    assert cfg.with_overrides(base_url="http://127.0.0.1:1/v1").paper_protocol


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"template": "trace_judge_v1.txt"}, "takes no 'template' and no 'truncation'"),
        ({"truncation": {"response": 100}}, "takes no 'template' and no 'truncation'"),
        ({"prompt": {"upstream": "trace/upstream-template", "spec": "nope"}}, "'prompt.spec' 'nope'"),
        ({"prompt": "trace"}, "key 'prompt' must be a mapping"),
    ],
)
def test_bad_upstream_config_files_are_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    raw = yaml.safe_load((CONFIGS_DIR / "trace-gpt4o.yaml").read_text(encoding="utf-8"))
    path = tmp_path / "judge.yaml"
    path.write_text(yaml.safe_dump({**raw, **change}), encoding="utf-8")
    with pytest.raises(JudgeConfigError, match=message) as err:
        load_judge_config(path)
    assert str(path) in str(err.value)
    del raw["prompt"]
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(JudgeConfigError, match="missing key 'template'"):
        load_judge_config(path)


# ---------------------------------------------------------------- end to end through a real server


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(lambda _request: "unused") as srv:
        yield srv


def aimed(name: str, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> JudgeConfig:
    monkeypatch.setenv(KEY_ENV, "sk-test-not-secret")
    return load_judge_config(name).with_overrides(
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        timeout_s=5.0,
    )


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[JudgeCache]:
    with JudgeCache(tmp_path / "judge.sqlite") as c:
        yield c


def trace_request(mirror: Path, min_constraints: int, response: str) -> tuple[dict[str, Any], JudgeRequest]:
    """The first TRACE row with an input and at least ``min_constraints`` constraints."""
    lines = (mirror / "trace/202409_trace_evaluation.jsonl").read_text(encoding="utf-8").splitlines()
    row = next(
        r for r in map(json.loads, lines) if r["constraints_num"] >= min_constraints and r["input"] != "NULL"
    )
    fields = {
        "description": row["description"],
        "row_input": row["input"],
        "row_constraints": row["constraints"],
        "constraints_splits": row["constraints_splits"],
        "response": response,
    }
    return row, JudgeRequest(key=row["id"], fields=fields, n_expected=row["constraints_num"])


def test_trace_upstream_judge_sends_upstreams_prompt_and_reads_its_reply(
    mirror: Path, server: OpenAIServer, cache: JudgeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    row, request = trace_request(mirror, 3, "回答 {ans}")
    n = row["constraints_num"]
    fine = json.dumps([{c: 10 for c in row["constraints_splits"]}], ensure_ascii=False)
    unmatched = json.dumps([{c: 10 for c in row["constraints_splits"][:-1]}], ensure_ascii=False)
    server.script(
        Fault.reply_text(f"Fine Grained Score: {unmatched}\nConstraints Overall Score: [[10]]"),
        Fault.reply_text(
            "\n".join(f"{i}. ok" for i in range(1, n + 1))
            + f"\nFine Grained Score: {fine}\nConstraints Overall Score: [[10]]"
        ),
    )
    cfg = aimed("trace-gpt4o", server, monkeypatch)
    run = judge_batch([request], cfg, cache, progress=False)
    got = run.outcomes[0]
    assert got.status == "ok" and got.scores == [10.0] * n and got.overall == 10.0 and got.attempts == 2
    assert got.reasons == [f"{i}. ok" for i in range(1, n + 1)]
    body = server.bodies[0]
    theirs = oracle.trace_prompt(row["input"], row["description"], row["constraints"], "回答 {ans}")
    assert body["messages"] == [{"role": "user", "content": theirs}]
    assert body["temperature"] == 0.0 and body["top_p"] == 0.8 and "seed" not in body
    assert "response_format" not in body
    again = judge_batch([request], cfg, cache, progress=False)
    assert again.outcomes[0].cached and server.calls == 2


def test_trace_reply_that_cannot_be_matched_is_asked_again_then_a_failure(
    mirror: Path, server: OpenAIServer, cache: JudgeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    row, request = trace_request(mirror, 4, "回答")
    splits = row["constraints_splits"]
    crossed = json.dumps(
        [{splits[1]: 10, "something else": 0, **{c: 10 for c in splits[2:]}}], ensure_ascii=False
    )
    server.script(*[Fault.reply_text(f"Fine Grained Score: {crossed}\nConstraints Overall Score: [[7]]")] * 3)
    cfg = aimed("trace-gpt4o", server, monkeypatch).with_overrides(max_retries=2)
    got = judge_batch([request], cfg, cache, progress=False).outcomes[0]
    assert got.status == "failed" and got.error_kind == "parse_error" and got.scores is None
    assert got.attempts == 3 and "cannot be matched" in (got.error or "") and len(cache) == 0


def test_cfbench_upstream_judge_asks_again_until_the_checkpoints_are_echoed_exactly(
    mirror: Path, server: OpenAIServer, cache: JudgeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = json.loads((mirror / "cfbench/cfbench_data.json").read_text(encoding="utf-8"))
    row = next(r for r in rows if r["idx"] == 5)  # a checkpoint with a leading space
    criteria = [c[0] for c in row["criteria"]]
    assert any(c != c.lstrip() for c in criteria)
    fields = {"prompt": row["prompt"], "gold": row["gold"], "criteria": criteria, "response": "回答\t1"}
    request = JudgeRequest(key="5", fields=fields, n_expected=len(criteria))
    stripped = "\n\n".join(f"{c.strip()}\t1" for c in criteria)
    exact = "\n\n".join(f"{c}\t{i % 2}" for i, c in enumerate(criteria))
    server.script(Fault.reply_text(stripped), Fault.reply_text(exact))
    cfg = aimed("cfbench-gpt4o", server, monkeypatch)
    got = judge_batch([request], cfg, cache, progress=False).outcomes[0]
    assert got.status == "ok" and got.attempts == 2
    assert got.scores == [float(i % 2) for i in range(len(criteria))]
    body = server.bodies[0]
    assert body["messages"] == [{"role": "user", "content": oracle.cfbench_prompt(row, "回答\t1")}]
    assert body["temperature"] == 0.01 and "top_p" not in body and "seed" not in body


def test_complexbench_upstream_judges_send_upstreams_payload_and_read_as_upstream(
    server: OpenAIServer, cache: JudgeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = {
        "instruction": "写一首诗" * 2000,
        "question": "是否押韵？",
        "output": "床前明月光" * 1000,
        "rule": "model_length_each:[1,9]",
    }
    fields = {
        "instruction": line["instruction"],
        "question": line["question"],
        "response": line["output"],
        "rule": line["rule"],
    }
    server.script(
        Fault.reply_text("分析：押韵。\n答案：是"), Fault.reply_text("【解释】\n评分对象：床前明月光||床前")
    )
    yes = judge_batch(
        [JudgeRequest("q", fields, 1)],
        aimed("complexbench-gpt4-1106", server, monkeypatch),
        cache,
        progress=False,
    )
    assert yes.outcomes[0].scores == [1.0] and yes.outcomes[0].truncated == {"input": 8000, "output": 5000}
    assert server.bodies[0]["messages"] == oracle.complexbench_messages("evaluation", line)
    assert server.bodies[0]["temperature"] == 0.0 and "top_p" not in server.bodies[0]
    cfg = aimed("complexbench-extract-gpt4-1106", server, monkeypatch)
    extracted = judge_batch([JudgeRequest("q", fields, 1)], cfg, cache, progress=False).outcomes[0]
    assert extracted.status == "ok" and extracted.raw == "【解释】\n评分对象：床前明月光||床前"
    assert server.bodies[1]["messages"] == oracle.complexbench_messages("extraction", line)
