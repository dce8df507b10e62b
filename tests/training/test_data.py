"""Training data formats: the upstream IOPO sample, JSONL quadruples, TRL pairs, and errors that name the row."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from iopo_eval.training.data import (
    PreferencePair,
    Quadruple,
    TrainingDataError,
    as_pairs,
    as_quadruples,
    as_sft,
    fingerprint,
    load_examples,
    source_sha256,
    write_quadruples,
)

SAMPLE = (
    Path(os.environ.get("IOPO_EVAL_DATA_MIRROR", "/work/shared/data")) / "trace/iopo_train_format_sample.json"
)


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.skipif(not SAMPLE.is_file(), reason="data mirror not available")
def test_upstream_sample_reads_as_one_quadruple() -> None:
    (q,) = load_examples(SAMPLE)
    assert isinstance(q, Quadruple)
    assert q.x1[-1]["role"] == q.x2[-1]["role"] == "user"
    assert "10至15" in q.x1[-1]["content"] and "16至20" in q.x2[-1]["content"]
    assert q.y1.startswith('"高考前夜') and "大学入学" in q.y2
    pairs = as_pairs([q])
    assert (pairs[0].prompt, pairs[0].chosen, pairs[0].rejected) == (q.x1, q.y1, q.y2)
    assert (pairs[1].prompt, pairs[1].chosen, pairs[1].rejected) == (q.x2, q.y2, q.y1)


def test_upstream_multi_turn_halves_and_system(tmp_path) -> None:
    row = {
        "system": "be brief",
        "conversations": [
            {"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c1"},
            {"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c2"},
        ],
        "chosen": {"from": "gpt", "value": "y1"},
        "rejected": {"from": "gpt", "value": "y2"},
    }  # fmt: skip
    path = tmp_path / "u.json"
    path.write_text(json.dumps([row]))
    (q,) = load_examples(path)
    assert [m["role"] for m in q.x1] == ["system", "user", "assistant", "user"]
    assert q.x2[-1]["content"] == "c2"


def test_quadruple_roundtrip_and_fingerprint(tmp_path) -> None:
    quads = [
        Quadruple([{"role": "user", "content": "x1"}], [{"role": "user", "content": "x2"}], "y1", "y2", "a")
    ]
    path = tmp_path / "q.jsonl"
    write_quadruples(path, quads)
    back = load_examples(path)
    assert back == quads
    assert fingerprint(back) == fingerprint(quads)
    assert fingerprint(as_sft(back)) != fingerprint(back)
    assert [s.response for s in as_sft(back)] == ["y1", "y2"]


def test_trl_pairs_conversational_and_plain(tmp_path) -> None:
    path = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "hi", "chosen": "a", "rejected": "b"},
            {"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
             "rejected": [{"role": "assistant", "content": "b"}]},
        ],
    )  # fmt: skip
    pairs = load_examples(path)
    assert all(isinstance(p, PreferencePair) and p.chosen == "a" for p in pairs)
    with pytest.raises(TrainingDataError, match="IOPO needs quadruples"):
        as_quadruples(pairs)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"x1": "a", "x2": "b", "y1": "c"}, "line 2: missing key 'y2'"),
        ({"x1": "a", "x2": "a", "y1": "c", "y2": "d"}, "line 2: x1 and x2 are the same"),
        ({"x1": "a", "x2": "b", "y1": "", "y2": "d"}, "line 2: y1 must be a non-empty string"),
        (
            {"x1": [{"role": "assistant", "content": "a"}], "x2": "b", "y1": "c", "y2": "d"},
            "line 2: x1 must end",
        ),
        ({"prompt": "a", "chosen": 3, "rejected": "b"}, "line 2: chosen must be a non-empty string"),
        ({"question": "a"}, "line 2: unrecognised row"),
        (["not", "an", "object"], "line 2: expected a JSON object"),
    ],
)
def test_malformed_rows_are_named(tmp_path, row, message) -> None:
    good = {"x1": "a", "x2": "b", "y1": "c", "y2": "d"}
    path = _jsonl(tmp_path / "bad.jsonl", [good, row])
    with pytest.raises(TrainingDataError, match=message) as err:
        load_examples(path)
    assert str(path) in str(err.value)


def test_bad_files(tmp_path) -> None:
    (tmp_path / "broken.jsonl").write_text('{"x1": "a"\n')
    with pytest.raises(TrainingDataError, match="line 1: not valid JSON"):
        load_examples(tmp_path / "broken.jsonl")
    with pytest.raises(TrainingDataError, match="no such training file"):
        load_examples(tmp_path / "missing.jsonl")
    (tmp_path / "u.json").write_text(json.dumps([{"conversations": [{"from": "human", "value": "a"}]}]))
    with pytest.raises(TrainingDataError, match=r"u.json row 0: conversations must be .* even number"):
        load_examples(tmp_path / "u.json")


def _quad_rows(n: int) -> list[dict[str, object]]:
    return [
        {"id": f"q{i}", "x1": f"do A{i}", "x2": f"do B{i}", "y1": f"a{i}", "y2": f"b{i}"} for i in range(n)
    ]


def test_parquet_and_saved_datasets_read_like_jsonl(tmp_path) -> None:
    import datasets

    rows = _quad_rows(3)
    want = fingerprint(load_examples(_jsonl(tmp_path / "q.jsonl", rows)))
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "q.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dict"))
    datasets.DatasetDict({"only": ds}).save_to_disk(str(tmp_path / "single"))
    (tmp_path / "one").mkdir()
    ds.to_parquet(str(tmp_path / "one" / "data.parquet"))
    for source in ("q.parquet", "saved", "dict", "single", "one"):
        assert fingerprint(load_examples(tmp_path / source)) == want, source


def test_dataset_containers_fail_with_one_clear_message(tmp_path) -> None:
    import datasets

    ds = datasets.Dataset.from_list(_quad_rows(2))
    datasets.DatasetDict({"a": ds, "b": ds}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(TrainingDataError, match=r"splits a, b and no 'train': give the split's folder"):
        load_examples(tmp_path / "dict")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(TrainingDataError, match=r"junk.parquet: not a readable parquet file"):
        load_examples(tmp_path / "junk.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingDataError, match=r"empty: a folder that is neither a saved dataset"):
        load_examples(tmp_path / "empty")
    with pytest.raises(TrainingDataError, match=r"nowhere: no such training file or dataset folder"):
        load_examples(tmp_path / "nowhere")
    bad = _quad_rows(3)
    bad[2]["x2"] = bad[2]["x1"]
    datasets.Dataset.from_list(bad).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(TrainingDataError, match=r"bad.parquet row 2: x1 and x2 are the same instruction"):
        load_examples(tmp_path / "bad.parquet")


def test_source_hash_follows_the_data_in_a_folder(tmp_path) -> None:
    import datasets

    datasets.Dataset.from_list(_quad_rows(2)).save_to_disk(str(tmp_path / "a"))
    datasets.Dataset.from_list(_quad_rows(2)).save_to_disk(str(tmp_path / "b"))
    datasets.Dataset.from_list(_quad_rows(3)).save_to_disk(str(tmp_path / "c"))
    assert source_sha256(tmp_path / "a") == source_sha256(tmp_path / "b")
    assert source_sha256(tmp_path / "a") != source_sha256(tmp_path / "c")
    load_examples(tmp_path / "a")  # reading leaves the hash alone
    assert source_sha256(tmp_path / "a") == source_sha256(tmp_path / "b")
