"""The benchmark files iopo-eval knows: upstream repository, pinned commit, path and sha256 (or, for a
file never obtained here, its git blob id at the pinned commit, which git publishes for every file).

The registry is the only place upstream locations live. A mirror folder has the same layout as the
``mirror_path`` column (``<benchmark>/<file>``), which is the layout of ``../shared/data``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataFile:
    key: str  # registry key, e.g. "trace/eval"
    benchmark: str
    repo: str  # GitHub "owner/name"
    commit: str  # pinned commit (or a ref, where upstream publishes none; the sha256 pins the bytes)
    upstream_path: str
    mirror_path: str  # relative path inside the cache and inside a mirror folder
    sha256: str | None  # None: not yet pinned (file never obtained); then git_blob, if known, verifies it
    license: str
    redistributable: bool = True
    note: str = ""
    git_blob: str | None = None  # `git hash-object` of the file at the pinned commit (sha1 of its blob)

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.upstream_path}"


_COMPLEX_IF = "29d58622ad8ad361830cc8a522f78099db928bc0"
_CFBENCH = "0bcbf9b0bcf21113a9813f86ed51a2135b328e41"
_COMPLEXBENCH = "749f4575d5dc981182ecaebb8c292b2a61213cf3"

_FILES = [
    DataFile(
        key="trace/eval",
        benchmark="trace",
        repo="Tongyi-CCAI/Complex-IF",
        commit=_COMPLEX_IF,
        upstream_path="TRACE/TRACE/202409_trace_evaluation.jsonl",
        mirror_path="trace/202409_trace_evaluation.jsonl",
        sha256="ca9e7577ee0732021db49ba7cb6ad3632eadb8398b1129fe54d104ded41b78f4",
        license="MIT",
    ),
    DataFile(
        key="trace/iopo_sample",
        benchmark="trace",
        repo="Tongyi-CCAI/Complex-IF",
        commit=_COMPLEX_IF,
        upstream_path="IOPO/data/trace.json",
        mirror_path="trace/iopo_train_format_sample.json",
        sha256=None,
        license="MIT",
        note="the only released IOPO training example (quadruple format)",
    ),
    DataFile(
        key="ifeval/input",
        benchmark="ifeval",
        repo="google-research/google-research",
        # Upstream publishes no release for this file; the sha256 pins its bytes.
        commit="master",
        upstream_path="instruction_following_eval/data/input_data.jsonl",
        mirror_path="ifeval/input_data.jsonl",
        sha256="67ffeee0fcb87c317c5b08a2de85557b4a7e96ada6178aa645b4954fe4b53d49",
        license="Apache-2.0",
    ),
    DataFile(
        key="cfbench/data",
        benchmark="cfbench",
        repo="PKU-Baichuan-MLSystemLab/CFBench",
        commit=_CFBENCH,
        upstream_path="data/cfbench_data.json",
        mirror_path="cfbench/cfbench_data.json",
        sha256="f28bfe94420ff61063183712179988718c6caedcdd3d0635cc6d0383289796fc",
        license="none upstream: downloaded for the user, never redistributed",
        redistributable=False,
    ),
    DataFile(
        key="complexbench/data",
        benchmark="complexbench",
        repo="thu-coai/ComplexBench",
        commit=_COMPLEXBENCH,
        upstream_path="data/data_final.json",
        mirror_path="complexbench/data/data_final.json",
        sha256=None,
        license="MIT",
        note="scoring questions, rules and dependencies; never obtained here, so verified by its git blob id",
        git_blob="fc1ffa9a4affcfa67603a003c75ba77e2ac6a404",
    ),
    DataFile(
        key="complexbench/gpt4_1106",
        benchmark="complexbench",
        repo="thu-coai/ComplexBench",
        commit=_COMPLEXBENCH,
        upstream_path="llm_generations/gpt4_1106.jsonl",
        mirror_path="complexbench/llm_generations/gpt4_1106.jsonl",
        sha256="3044327f0198a514eab9206156a68046f4e80e9c7b32e037f8b624dfcafcb71d",
        license="MIT",
    ),
    # The upstream evaluators' own protocol files (judge prompts, parsing, rules), fetched and verified like
    # data and read without being executed (iopo_eval.judges.upstream_prompt); never copied into the package.
    *(
        DataFile(
            key=f"trace/upstream-{name}",
            benchmark="trace",
            repo="Tongyi-CCAI/Complex-IF",
            commit=_COMPLEX_IF,
            upstream_path=f"TRACE/Eval_script/{path}",
            mirror_path=f"trace/upstream/{path.rsplit('/', 1)[1]}",
            sha256=sha256,
            license="MIT",
            note=note,
        )
        for name, path, sha256, note in (
            (
                "template",
                "src/evaluators/trace/template.py",
                "8608ff6bc491cf72f47c960a43998c5af3992df75fb5dbc57b112dbe75fa7049",
                "TRACE's GPT-4o judge prompt",
            ),
            (
                "trace",
                "src/evaluators/trace/trace.py",
                "caaaa87ba3a320d4bd9768bc60471fde26d9937293818eeb4c3f02c59ffd5d0e",
                "how TRACE's judge reply is parsed",
            ),
            (
                "evaluator-config",
                "config/models/evaluator_gpt4o.yaml",
                "822957123d67185284df75f0db387da25c2f4b8cf227d5699dd937ad6ac2b43c",
                "TRACE's judge sampling",
            ),
        )
    ),
    DataFile(
        key="cfbench/upstream-evaluate",
        benchmark="cfbench",
        repo="PKU-Baichuan-MLSystemLab/CFBench",
        commit=_CFBENCH,
        upstream_path="code/evalaute.py",
        mirror_path="cfbench/upstream/evalaute.py",
        sha256="07d0c0f95bf8ebf232121a33f68f189b6a47a47cdff4f3f3e4fec63e4b0510c8",
        license="none upstream: downloaded for the user, never redistributed",
        redistributable=False,
        note="CFBench's judge prompt, reply parsing and CSR/ISR/PSR",
    ),
    *(
        DataFile(
            key=f"complexbench/upstream-{name}",
            benchmark="complexbench",
            repo="thu-coai/ComplexBench",
            commit=_COMPLEXBENCH,
            upstream_path=path,
            mirror_path=f"complexbench/upstream/{path}",
            sha256=sha256,
            license="MIT",
            note=note,
        )
        for name, path, sha256, note in (
            (
                "con-rule",
                "evaluation/con_rule.py",
                "eb9b539b3ffeae79c82fea6d7b10aab571af726de3f22fe02b114c30ffa59d50",
                "the rule checker",
            ),
            (
                "rule-based-evaluation",
                "evaluation/rule_based_evaluation.py",
                "295816516903cc3a9e6111dd7cb57cbd1f958f773510dd3f8525a064263ab339",
                "extraction post-processing",
            ),
            (
                "aggregation",
                "evaluation/aggregation.py",
                "a03c66a001fa041e7f8b4c3e62b349b4d6537d810c0f97dba7f61be399962fda",
                "DRFR and dependencies",
            ),
            (
                "llm-based-evaluation",
                "evaluation/llm_based_evaluation.py",
                "6e8ae5ce40e731fa0a92a731f561640ed0badf178360ce9ebdea619839bed5d1",
                "how the yes/no judge is asked and read",
            ),
            (
                "llm-based-extraction",
                "evaluation/llm_based_extraction.py",
                "e5b307f0c22f6b9d35809c80e5d84f746597e0e0b6fa3c17f04533c9b1fa90a8",
                "how the extraction judge is asked",
            ),
            (
                "ral-evaluator",
                "evaluation/prompts/RAL_evaluator.py",
                "1a518974083f614abc31ba6e8352b1d740c29a41b176b688a1bd1f13c16a2106",
                "the yes/no judge prompt",
            ),
            (
                "ral-extractor",
                "evaluation/prompts/RAL_extractor.py",
                "a5a112e0528317903136c85440c46f0a6d3a50e7adf6b161be3b1099833e3382",
                "the extraction prompts",
            ),
            (
                "eval-sh",
                "eval.sh",
                "e2dcafe8d6de809b455f5669c35a73d5b115a7b6dec0bd3ddeccf92746c415da",
                "the order of the evaluation stages",
            ),
        )
    ),
]

REGISTRY: dict[str, DataFile] = {f.key: f for f in _FILES}


def get_file(key: str) -> DataFile:
    try:
        return REGISTRY[key]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(key, REGISTRY, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown data file {key!r}.{hint} Known: {', '.join(REGISTRY)}") from None
