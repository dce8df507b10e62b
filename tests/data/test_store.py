from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from iopo_eval.data import DataError, fetch, verify
from iopo_eval.data.registry import REGISTRY, get_file
from iopo_eval.data.store import git_blob_id
from iopo_eval.data.trace import load_trace


def test_registry_pins_every_mirrored_file(mirror: Path) -> None:
    for entry in REGISTRY.values():
        path = mirror / entry.mirror_path
        if not path.is_file():
            continue
        if entry.sha256 is not None:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256, entry.key
        if entry.git_blob is not None:
            assert git_blob_id(path) == entry.git_blob, entry.key
        assert len(entry.commit) == 40 or entry.commit == "master"


def test_complexbench_data_is_pinned_by_its_git_blob_id() -> None:
    entry = get_file("complexbench/data")
    assert entry.sha256 is None and entry.git_blob == "fc1ffa9a4affcfa67603a003c75ba77e2ac6a404"


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world\n", bytes(range(256)) * 9000, "春天\r\n".encode() * 3],
    ids=lambda c: f"{len(c)}B",
)
def test_git_blob_id_is_what_git_prints(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    printed = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert git_blob_id(path) == printed.stdout.strip()
    if not content:
        assert git_blob_id(path) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


def test_a_file_pinned_by_git_blob_id_is_verified(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mirror"
    target = root / "complexbench/data/data_final.json"
    target.parent.mkdir(parents=True)
    target.write_text("[]\n", encoding="utf-8")
    # The real entry: any file but upstream's is refused, naming the kind of hash and both values.
    with pytest.raises(DataError, match=r"complexbench/data: .*data_final.json has git blob id [0-9a-f]{40}, "
                       r"expected fc1ffa9a4affcfa67603a003c75ba77e2ac6a404"):  # fmt: skip
        verify("complexbench/data", root)
    # An entry pinned to this file's blob id accepts it.
    entry = dataclasses.replace(get_file("complexbench/data"), git_blob=git_blob_id(target))
    monkeypatch.setitem(REGISTRY, "complexbench/data", entry)
    assert verify("complexbench/data", root) == target


def test_verify_accepts_the_mirror(mirror: Path, isolated_cache: Path) -> None:
    assert verify("trace/eval", mirror) == mirror / "trace/202409_trace_evaluation.jsonl"


def test_wrong_hash_names_the_file(tmp_path: Path, mirror: Path, isolated_cache: Path) -> None:
    bad = tmp_path / "mirror"
    target = bad / "trace/202409_trace_evaluation.jsonl"
    target.parent.mkdir(parents=True)
    data = (mirror / "trace/202409_trace_evaluation.jsonl").read_bytes()
    target.write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"trace/eval: .*202409_trace_evaluation.jsonl has sha256"):
        verify("trace/eval", bad)


def test_missing_file_with_a_mirror_never_downloads(tmp_path: Path, isolated_cache: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"not available .*IOPO_EVAL_DATA_MIRROR"):
        fetch("cfbench/data", empty)


def test_offline_missing_file(tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOPO_EVAL_DATA_MIRROR")
    monkeypatch.setenv("IOPO_EVAL_OFFLINE", "1")
    with pytest.raises(DataError, match="ifeval/input_data.jsonl is not available"):
        fetch("ifeval/input")


def test_unknown_key_suggests() -> None:
    with pytest.raises(KeyError, match="Did you mean: trace/eval"):
        get_file("trace/evl")


def _write_rows(path: Path, rows: list[dict]) -> None:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")


def _first_rows(mirror: Path, n: int) -> list[dict]:
    lines = (mirror / "trace/202409_trace_evaluation.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("constraints_splits"), "line 2 .*missing field 'constraints_splits'"),
        (lambda r: r.update(constraints_num="3"), "line 2 .*'constraints_num' should be int, got str"),
        (lambda r: r.update(constraints_num=r["constraints_num"] + 1), "line 2 .*constraints_num=.* but"),
        (lambda r: r.update(levels2=[]), "line 2 .*'levels2' has 0 labels"),
        (lambda r: r.update(messages=[{"role": "system", "content": "x"}]), "line 2 .*no user turn"),
        (lambda r: r.update(constraints_splits=["ok", ""]), "line 2 .*non-empty strings"),
    ],
)
def test_malformed_trace_row_is_named(tmp_path: Path, mirror: Path, mutate, message: str) -> None:
    rows = _first_rows(mirror, 3)
    mutate(rows[1])
    path = tmp_path / "trace.jsonl"
    _write_rows(path, rows)
    with pytest.raises(DataError, match=message):
        load_trace(path)


def test_broken_json_line_is_named(tmp_path: Path, mirror: Path) -> None:
    path = tmp_path / "trace.jsonl"
    shutil.copy(mirror / "trace/202409_trace_evaluation.jsonl", path)
    with path.open("ab") as fh:
        fh.write(b'{"id": "x", "messages": [\n')
    with pytest.raises(DataError, match="line 1043: not valid UTF-8 JSON"):
        load_trace(path)


def test_trace_split_matches_the_paper(mirror: Path) -> None:
    items = load_trace(mirror=str(mirror))
    assert len(items) == 1042
    assert sum(i.subset == "single" for i in items) == 200
    assert sum(i.subset == "multi" for i in items) == 842
    # The prompt is description + constraints + inputs, exactly as upstream built it.
    for item in items:
        expected = item.description + "\n" + item.constraints + "\n"
        if item.input is not None:
            expected += "# Inputs:\n" + item.input + "\n"
        assert item.user_prompt == expected, item.id


def test_a_relative_mirror_is_resolved_where_it_was_given(mirror: Path, tmp_path: Path) -> None:
    """A relative $IOPO_EVAL_DATA_MIRROR names a folder relative to where it was set; a process that
    imports iopo_eval and starts another in a different folder (as the lm_eval tests do) passes it on
    resolved."""
    import os
    import subprocess
    import sys

    base = mirror.parent
    relative = os.path.relpath(mirror, base)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    child = (
        "import subprocess, sys, iopo_eval; "
        "sys.exit(subprocess.run([sys.executable, '-c', "
        "'from iopo_eval.data import verify; print(verify(\"trace/eval\"))'], "
        f"cwd={str(elsewhere)!r}).returncode)"
    )
    env = {k: v for k, v in os.environ.items() if k != "IOPO_EVAL_DATA_MIRROR"}
    env |= {"IOPO_EVAL_DATA_MIRROR": relative, "IOPO_EVAL_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", child], cwd=base, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == mirror / "trace/202409_trace_evaluation.jsonl"


def test_the_makefile_exports_the_mirror_as_an_absolute_path(mirror: Path) -> None:
    """`make test` runs lm_eval in other folders: the mirror it exports must not be relative."""
    import os
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("IOPO_EVAL_DATA_MIRROR", "DATA_MIRROR")}
    env["IOPO_EVAL_DATA_MIRROR"] = os.path.relpath(mirror, repo)
    proc = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            "show-mirror: ; @echo $$IOPO_EVAL_DATA_MIRROR",
            "show-mirror",
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == mirror
