"""What a build writes is what `iopo-eval train` reads: one training step of each method on a tiny model."""

from __future__ import annotations

import json

import pytest
import yaml

from iopo_eval.cli import main as cli_main
from iopo_eval.training.data import TrainingDataError, fingerprint, load_examples
from iopo_eval.training.toy_models import random_model
from tests.training.databuild.conftest import build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from iopo_eval.testing.build_replies import ScriptedBuilder
    from iopo_eval.testing.openai_server import OpenAIServer

    out = tmp_path_factory.mktemp("build") / "out"
    with OpenAIServer(ScriptedBuilder()) as server:
        code, report = build(server, out, limit=20)
    assert code == 0 and min(report["outputs"].values()) > 0
    return out


@pytest.mark.parametrize(
    ("method", "train_file"),
    [
        ("iopo", "quadruples.jsonl"),
        ("iopo", "iopo_train.json"),
        ("dpo", "dpo_pairs.jsonl"),
        ("sft", "sft.jsonl"),
        ("iopo", "hf/iopo.parquet"),
        ("dpo", "hf/dpo.parquet"),
        ("sft", "hf/sft.parquet"),
        ("iopo", "saved/iopo"),
    ],
)
def test_train_reads_the_built_files(tmp_path, built, tokenizer, method, train_file) -> None:
    if train_file.startswith("saved/"):  # the Hugging Face dataset as save_to_disk writes it
        import datasets

        name = train_file.split("/")[1]
        ds = datasets.load_dataset("parquet", data_files={"train": str(built / "hf" / f"{name}.parquet")})
        ds.save_to_disk(str(built / train_file))
    model_dir = tmp_path / "tiny"
    random_model("tiny", vocab_size=len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    recipe = {
        "method": method, "model_name_or_path": str(model_dir), "train_file": str(built / train_file),
        "output_dir": str(tmp_path / "run"), "use_cpu": True, "per_device_train_batch_size": 2, "max_steps": 1,
        "learning_rate": 1e-3, "save_strategy": "no", "logging_steps": 1, "lora_r": 4, "disable_tqdm": True,
        "max_length": 512,
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert cli_main(["train", "--method", method, "--config", str(path)]) == 0
    info = json.loads((tmp_path / "run" / "final" / "training_info.json").read_text())
    assert info["method"] == method and info["global_step"] == 1


def test_every_container_of_a_set_reads_as_the_same_examples(built, tmp_path) -> None:
    import datasets

    saved = tmp_path / "saved"
    datasets.load_dataset("parquet", data_files={"train": str(built / "hf/iopo.parquet")})[
        "train"
    ].save_to_disk(str(saved))
    jsonl = fingerprint(load_examples(built / "quadruples.jsonl"))
    assert fingerprint(load_examples(built / "hf/iopo.parquet")) == jsonl
    assert fingerprint(load_examples(saved)) == jsonl
    assert fingerprint(load_examples(built / "hf/dpo.parquet")) == fingerprint(
        load_examples(built / "dpo_pairs.jsonl")
    )
    assert fingerprint(load_examples(built / "hf/sft.parquet")) == fingerprint(
        load_examples(built / "sft.jsonl")
    )
    # the hf/ folder holds three sets: naming the folder asks which one
    with pytest.raises(TrainingDataError, match=r"3 parquet sets .*dpo.parquet, iopo.parquet, sft.parquet"):
        load_examples(built / "hf")


def test_a_folder_of_several_sets_is_refused_with_exit_2(tmp_path, built, tokenizer, capsys) -> None:
    model_dir = tmp_path / "tiny"
    random_model("tiny", vocab_size=len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    recipe = {"method": "iopo", "model_name_or_path": str(model_dir), "train_file": str(built / "hf"),
              "output_dir": str(tmp_path / "run"), "use_cpu": True, "max_steps": 1}  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert cli_main(["train", "--method", "iopo", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "give one as the training file" in err, err
    assert not (tmp_path / "run" / "final").exists()
