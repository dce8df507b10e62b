"""What the package asks of its installer: ranges that let it sit beside current vLLM on a GPU machine,
while the CPU install script pins the CPU wheel of torch."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]

# From vLLM 0.33.0's wheel METADATA (Requires-Dist), read 2026-11-30: what it pins that we also require.
VLLM_0_33_PINS = {
    "torch": "==2.14.0",
    "transformers": ">=5.16.1,<5.21.0",
    "openai": ">=2.25.0",
}


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return {r.name: r for r in reqs}


def _extra(name: str) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["optional-dependencies"][name]]


def _imported_modules(*folders: str) -> set[str]:
    """Top-level names of every module imported by the Python files under ``folders``."""
    names: set[str] = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"iopo_eval", "__future__"}


def _distribution(module: str) -> str:
    dists = importlib.metadata.packages_distributions().get(module, [module])
    return canonicalize_name(next((d for d in dists if canonicalize_name(d) != "iopo-eval"), dists[0]))


# Declared for a library that imports them itself: transformers reads the embedded model's GGUF file
# with gguf.
USED_INDIRECTLY = {"gguf"}


def test_declared_dependencies_are_what_the_package_imports() -> None:
    """Every library the package imports is declared (the core, plus the embedded extra for the optional
    smoke-test judge server; the training extra for training/), and every core dependency is imported,
    or named above with the reason."""
    core = {canonicalize_name(name) for name in _requirements()}
    embedded = core | {canonicalize_name(r.name) for r in _extra("embedded")}
    training = core | {canonicalize_name(r.name) for r in _extra("training")}
    evaluation = {_distribution(m) for m in _imported_modules("iopo_eval", "judges", "leaderboard", "tasks")}
    assert evaluation <= embedded, sorted(evaluation - embedded)
    assert {_distribution(m) for m in _imported_modules("training")} <= training
    assert core - evaluation == USED_INDIRECTLY, sorted(core - evaluation)


def test_the_openai_sdk_serves_batch_mode_only() -> None:
    """One LLM client: chat completions go through the judge engine's own (aiohttp) client; the official
    SDK is used for the Batch API's files and batches endpoints, in judges/batch.py, and nowhere else."""
    users = set()
    for folder in ("iopo_eval", "judges", "leaderboard", "tasks", "training"):
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(n.split(".")[0] == "openai" for n in names):
                    users.add(str(path.relative_to(REPO)))
    assert users == {"judges/batch.py"}


def test_core_torch_is_a_range_that_admits_the_cpu_pin_and_vllms_torch() -> None:
    torch = _requirements()["torch"]
    assert not any(spec.operator == "==" for spec in torch.specifier), "a library must not pin torch"
    install_sh = (REPO / "scripts" / "install.sh").read_text(encoding="utf-8")
    cpu_pin = re.search(r'"torch==([0-9.]+)"', install_sh)
    assert cpu_pin, "scripts/install.sh pins the CPU wheel of torch before installing the package"
    assert torch.specifier.contains(Version(cpu_pin.group(1)))
    assert torch.specifier.contains(Version("2.14.0"))


def test_every_shared_dependency_admits_what_vllm_0_33_pins() -> None:
    """For each package both require, some release satisfies both: the resolver can install them together."""
    reqs = _requirements()
    candidates = {
        "torch": ["2.14.0"],
        "transformers": ["5.16.1", "5.17.0", "5.18.0", "5.19.0", "5.20.0"],
        "openai": ["2.25.0", "3.51.0"],
    }
    for name, pin in VLLM_0_33_PINS.items():
        ours = reqs[name].specifier
        theirs = Requirement(f"{name}{pin}").specifier
        assert any(ours.contains(Version(v)) and theirs.contains(Version(v)) for v in candidates[name]), name


def test_the_vllm_extra_asks_for_a_current_vllm() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (vllm,) = (Requirement(r) for r in project["optional-dependencies"]["vllm"])
    assert vllm.name == "vllm" and vllm.specifier.contains(Version("0.33.0"))
    assert not vllm.specifier.contains(Version("0.6.0"))
