"""The taxonomy as data, the constraint-count distribution, seeds and shards."""

from __future__ import annotations

from collections import Counter

import pytest

from iopo_eval.data.trace import TAXONOMY
from iopo_eval.training.databuild.distribution import PAPER_TRAIN, draw_dimensions, parse_distribution
from iopo_eval.training.databuild.errors import BuildError
from iopo_eval.training.databuild.seeds import PACKAGED_SEEDS, in_shard, parse_shard, read_seeds, text_id
from iopo_eval.training.databuild.taxonomy import load_taxonomy, taxonomy_from_snapshot, taxonomy_to_yaml


def test_packaged_taxonomy_is_traces_26_dimensions_in_5_categories() -> None:
    tax = load_taxonomy()
    assert [c.en for c in tax.categories.values()] == ["Content", "Situation", "Style", "Format", "Example"]
    assert len(tax.dimensions) == 26
    # Chinese names are TRACE's levels2 labels, English names those the scorer reports (data/trace.py).
    assert {d.zh: (tax.categories[d.category].en, d.en) for d in tax.dimensions.values()} == TAXONOMY
    assert sum(d.eval_count or 0 for d in tax.dimensions.values()) == 5085  # 5,087 minus the 2 noisy labels
    for dim in tax.dimensions.values():
        assert dim.description and len(dim.examples) >= 2
        assert any(ord(ch) > 0x3000 for ex in dim.examples for ch in ex)  # a Chinese example


def test_user_file_changes_adds_and_removes(tmp_path) -> None:
    user = tmp_path / "mine.yaml"
    user.write_text(
        "categories: [{id: safety, en: Safety, zh: 安全约束, description: Safe answers.}]\n"
        "dimensions:\n"
        "  - {id: inclusion, weight: 1}\n"
        "  - {id: disclaimer, category: safety, en: Disclaimer, zh: 免责声明约束, weight: 5000,\n"
        "     description: Ends with a disclaimer., examples: [Add a disclaimer., 结尾附上免责声明。]}\n"
        "remove: [privacy]\n",
        encoding="utf-8",
    )
    tax = load_taxonomy(user)
    assert "privacy" not in tax.dimensions and tax.dimensions["inclusion"].sampling_weight == 1
    assert tax.category_of("disclaimer").en == "Safety" and tax.version == "trace-taxonomy-v1+mine"
    assert tax.fingerprint() != load_taxonomy().fingerprint()
    picks = Counter(d for i in range(200) for d in draw_dimensions(tax, 1, 0, str(i)))
    assert picks["disclaimer"] > picks["inclusion"]
    # a build keeps a snapshot that reloads to the same taxonomy
    snap = tmp_path / "snap.yaml"
    snap.write_text(taxonomy_to_yaml(tax), encoding="utf-8")
    assert taxonomy_from_snapshot(snap).fingerprint() == tax.fingerprint()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "dimensions: [{id: inclusion, colour: red}]",
            "dimensions[0] (id 'inclusion'): unknown key 'colour'",
        ),
        (
            "dimensions: [{id: new_one, category: content, en: X, zh: 新约束, description: d, examples: [e]}]",
            "needs a 'weight'",
        ),
        ("dimensions: [{id: new_one, en: X}]", "a new dimension needs 'category'"),
        ("dimensions: [{id: inclusion, category: nowhere}]", "unknown category 'nowhere'"),
        ("dimensions: [{id: inclusion, zh: 主题约束}]", "share the label"),
        ("remove: [nothing]", "unknown dimension 'nothing'"),
        ("dimensions: [{id: inclusion, weight: -1}]", "'weight' must be a number >= 0"),
        ("[1, 2]", "the top level must be a mapping"),
    ],
)
def test_bad_taxonomy_files_name_the_key(tmp_path, text, message) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BuildError, match="bad.yaml") as err:
        load_taxonomy(path)
    assert message in str(err.value)


def test_paper_distribution_and_draws() -> None:
    paper = parse_distribution("paper")
    assert sum(PAPER_TRAIN.values()) == 119345 and round(paper.mean, 2) == 4.36
    assert round(parse_distribution("eval").mean, 2) == 4.88
    draws = Counter(paper.draw(0, f"item-{i}") for i in range(30000))
    for k, share in paper.shares.items():
        assert abs(draws[k] / 30000 - share) < 0.01, k
    # a draw depends on the item and the build seed only (a shard draws what the whole build would)
    assert [paper.draw(0, "x")] * 3 == [paper.draw(0, "x") for _ in range(3)]
    assert len({paper.draw(s, "x") for s in range(40)}) > 1
    assert parse_distribution("2-3").shares == {2: 0.5, 3: 0.5}
    assert parse_distribution("1:3,4:1").shares == {1: 0.75, 4: 0.25}


def test_distribution_file_and_errors(tmp_path) -> None:
    path = tmp_path / "dist.yaml"
    path.write_text("1: 1\n2: 3\n", encoding="utf-8")
    assert parse_distribution(str(path)).shares == {1: 0.25, 2: 0.75}
    for bad, message in (
        ("0-3", "counts must be 1-15"),
        ("3-1", "empty"),
        ("1:x", "not count:weight"),
        ("lots", "use paper"),
    ):
        with pytest.raises(BuildError, match=message):
            parse_distribution(bad)


def test_dimensions_are_distinct_and_weighted() -> None:
    tax = load_taxonomy()
    dims = draw_dimensions(tax, 15, 0, "a")
    assert len(dims) == len(set(dims)) == 15
    firsts = Counter(draw_dimensions(tax, 1, 0, str(i))[0] for i in range(3000))
    assert firsts["inclusion"] > 10 * firsts["negative_example"]


def test_packaged_seeds_and_seed_errors(tmp_path) -> None:
    packaged = read_seeds(PACKAGED_SEEDS)
    langs = Counter(s.fields["lang"] for s in packaged.seeds)
    assert langs == {"en": 20, "zh": 20} and packaged.duplicates == 0
    path = tmp_path / "seeds.jsonl"
    path.write_text(
        '{"prompt": "Say hi."}\n\n{"prompt": "say   HI."}\n{"prompt": "Count to three."}\n', encoding="utf-8"
    )
    seeds = read_seeds(path, "prompt")
    assert [s.id for s in seeds.seeds] == [
        text_id("Say hi."),
        text_id("Count to three."),
    ] and seeds.duplicates == 1
    for text, message in (
        ('{"prompt": "x"}\n', "line 1: no 'instruction' field"),
        ('{"instruction": "a"}\n{"instruction": \n', "line 2: not valid JSON"),
        ('{"instruction": ""}\n', "line 1: 'instruction' must be a non-empty string"),
        (
            '{"id": 1, "instruction": "a"}\n{"id": "1", "instruction": "b"}\n',
            "line 2: id '1' was already used on line 1",
        ),
        ("\n", "no seed instructions"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(BuildError, match=message):
            read_seeds(path)


def test_shards_partition_the_seeds() -> None:
    ids = [s.id for s in read_seeds(PACKAGED_SEEDS).seeds]
    parts = [[i for i in ids if in_shard(i, (k, 3))] for k in range(3)]
    assert sorted(i for part in parts for i in part) == sorted(ids) and all(parts)
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "1", "a/b"):
        with pytest.raises(BuildError, match="--shard"):
            parse_shard(bad)
