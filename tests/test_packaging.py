"""What the package asks of its installer: ranges that let it sit beside current vLLM on a GPU machine,
while the CPU install script pins the CPU wheel of torch."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
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
