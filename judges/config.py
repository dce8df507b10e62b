"""Judge configurations: a YAML file says which model judges, how it samples, which prompt template and
which reply parser it uses, and what a token costs. Swapping the judge means swapping the YAML.

A config is referred to by a path or by the name of a bundled file in ``judges/configs/``
(``trace-gpt4o`` -> ``judges/configs/trace-gpt4o.yaml``). The API key is never part of a config: the
config names the environment variable that holds it (``api_key_env``) and the client reads that
variable at call time only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIGS_DIR = Path(__file__).parent / "configs"
TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_JUDGE = "trace-gpt4o"

ENV_JUDGE = "IOPO_EVAL_JUDGE"
ENV_BASE_URL = "IOPO_EVAL_JUDGE_BASE_URL"
ENV_MODEL = "IOPO_EVAL_JUDGE_MODEL"

RESPONSE_FORMATS = ("json_schema", "json_object", "none")


class JudgeConfigError(ValueError):
    """A judge config file is missing, malformed, or has an unknown, missing or ill-typed key."""


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True)
class JudgeConfig:
    name: str
    model: str
    template: str  # file name in judges/templates, or a path (relative to the config file or absolute)
    prompt_version: str
    parser: str  # a name in iopo_eval.judges.parse.PARSERS
    response_format: str  # "json_schema" | "json_object" | "none"
    temperature: float
    price: Price
    base_url: str | None = None  # None: the OpenAI API
    api_key_env: str = "OPENAI_API_KEY"
    top_p: float | None = None  # None: not sent (the server's default)
    max_tokens: int = 2048
    seed: int | None = None
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    concurrency: int = 16
    truncation: dict[str, int] = field(default_factory=dict)  # template field -> max characters
    smoke_test: bool = False  # a tiny offline judge: its verdicts are labelled as a smoke test
    # The paper's own judge: the model, prompt and sampling of the benchmark's upstream evaluator, so its
    # numbers sit beside the paper's. Cleared by any override that can change a judgement (another model,
    # template or sampling); the endpoint (OpenAI, Azure) is not part of it.
    paper_protocol: bool = False
    # An upstream evaluator's own prompt instead of a template file: {upstream: <registry key>, spec: <name>}
    # (judges/upstream_prompt.py). Its identity text stands in for the template text.
    prompt: dict[str, Any] | None = None
    # Not read from YAML: where the config came from and the template's text (loaded once).
    source: str = ""
    template_text: str = ""

    # --- identity -------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """Everything that can change a judgement. Endpoint, key, concurrency and timeouts cannot."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "template_text": self.template_text,
            "prompt_version": self.prompt_version,
            "parser": self.parser,
            "response_format": self.response_format,
            "truncation": dict(sorted(self.truncation.items())),
        }

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def with_overrides(self, **changes: Any) -> JudgeConfig:
        """A copy with some fields replaced (``None`` values are ignored). A new ``template`` is reloaded."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - _YAML_KEYS)
        if unknown:
            raise JudgeConfigError(
                f"judge config {self.source or self.name}: unknown override {unknown[0]!r}"
            )
        if "price" in changes and isinstance(changes["price"], dict):
            changes["price"] = _price(changes["price"], self.source or self.name)
        new = dataclasses.replace(self, **changes)
        if "template" in changes or "prompt" in changes:
            base = Path(self.source).parent if self.source else None
            new = dataclasses.replace(new, template_text=_template_text(new, base, new.source))
        if "paper_protocol" not in changes and new.identity() != self.identity():
            new = dataclasses.replace(new, paper_protocol=False)
        _validate(new, self.source or self.name)
        return new

    def api_key(self) -> str | None:
        """Read at call time; the key is never stored on the config or anywhere else."""
        return os.environ.get(self.api_key_env) or None

    def summary(self) -> dict[str, Any]:
        """What a results file records about the judge (no endpoint, no key)."""
        return {
            "name": self.name,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "parser": self.parser,
            "identity_hash": self.identity_hash(),
            "smoke_test": self.smoke_test,
        }


# Keys a YAML file may hold, and which of them it must hold.
_YAML_KEYS = {f.name for f in dataclasses.fields(JudgeConfig)} - {"source", "template_text"}
_REQUIRED = {
    "name",
    "model",
    "template",
    "prompt_version",
    "parser",
    "response_format",
    "temperature",
    "price",
}
_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "model": (str,),
    "template": (str,),
    "prompt_version": (str,),
    "parser": (str,),
    "response_format": (str,),
    "temperature": (int, float),
    "base_url": (str, type(None)),
    "api_key_env": (str,),
    "top_p": (int, float, type(None)),
    "max_tokens": (int,),
    "seed": (int, type(None)),
    "timeout_s": (int, float),
    "max_retries": (int,),
    "backoff_initial_s": (int, float),
    "backoff_max_s": (int, float),
    "concurrency": (int,),
    "truncation": (dict,),
    "smoke_test": (bool,),
    "paper_protocol": (bool,),
    "prompt": (dict, type(None)),
    "price": (dict, Price),
}


def _price(raw: Any, where: str) -> Price:
    if isinstance(raw, Price):
        return raw
    if not isinstance(raw, dict):
        raise JudgeConfigError(f"judge config {where}: 'price' must be a mapping")
    keys = {"input_per_mtok", "output_per_mtok"}
    for key in sorted(set(raw) - keys):
        raise JudgeConfigError(f"judge config {where}: unknown key 'price.{key}'")
    for key in sorted(keys - set(raw)):
        raise JudgeConfigError(f"judge config {where}: missing key 'price.{key}'")
    values = {}
    for key in sorted(keys):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise JudgeConfigError(
                f"judge config {where}: 'price.{key}' must be a number >= 0, got {value!r}"
            )
        values[key] = float(value)
    return Price(**values)


def _validate(cfg: JudgeConfig, where: str) -> None:
    for name, types in _TYPES.items():
        value = getattr(cfg, name)
        # bool is an int in Python; only the flags may be one.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise JudgeConfigError(f"judge config {where}: key {name!r} must be {expected}, got {value!r}")
    if cfg.response_format not in RESPONSE_FORMATS:
        raise JudgeConfigError(
            f"judge config {where}: key 'response_format' must be one of {RESPONSE_FORMATS}, "
            f"got {cfg.response_format!r}"
        )
    from iopo_eval.judges.parse import PARSERS  # local import: parse does not depend on config

    if cfg.parser not in PARSERS:
        raise JudgeConfigError(
            f"judge config {where}: key 'parser' names unknown parser {cfg.parser!r} (known: {sorted(PARSERS)})"
        )
    checks = [
        ("temperature", 0 <= cfg.temperature <= 2),
        ("top_p", cfg.top_p is None or 0 < cfg.top_p <= 1),
        ("max_tokens", cfg.max_tokens >= 1),
        ("timeout_s", cfg.timeout_s > 0 and math.isfinite(cfg.timeout_s)),
        ("max_retries", cfg.max_retries >= 0),
        ("backoff_initial_s", cfg.backoff_initial_s >= 0),
        ("backoff_max_s", cfg.backoff_max_s >= cfg.backoff_initial_s),
        ("concurrency", cfg.concurrency >= 1),
        ("api_key_env", bool(cfg.api_key_env.strip())),
    ]
    for key, ok in checks:
        if not ok:
            raise JudgeConfigError(
                f"judge config {where}: key {key!r} has an invalid value {getattr(cfg, key)!r}"
            )
    for fname, limit in cfg.truncation.items():
        if not isinstance(fname, str) or isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise JudgeConfigError(
                f"judge config {where}: 'truncation.{fname}' must map a field name to a positive integer "
                f"number of characters, got {limit!r}"
            )


def _read_template(template: str, base: Path | None, where: str) -> str:
    candidates = []
    path = Path(template)
    if path.is_absolute():
        candidates.append(path)
    else:
        if base is not None:
            candidates.append(base / path)
        candidates.append(TEMPLATES_DIR / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise JudgeConfigError(
        f"judge config {where}: template {template!r} not found (looked in {', '.join(map(str, candidates))})"
    )


def _template_text(cfg: JudgeConfig, base: Path | None, where: str) -> str:
    if cfg.prompt is None:
        return _read_template(cfg.template, base, where)
    if cfg.template or cfg.truncation:
        raise JudgeConfigError(
            f"judge config {where}: an upstream 'prompt' takes no 'template' and no 'truncation' "
            "(upstream's own truncation applies)"
        )
    from iopo_eval.judges.upstream_prompt import UpstreamPromptError, parse_prompt_config

    try:
        return parse_prompt_config(cfg.prompt, f"judge config {where}").identity_text()
    except UpstreamPromptError as exc:
        raise JudgeConfigError(str(exc)) from exc


def config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A path as given when it exists, else a bundled config by name (with or without ``.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    bundled = CONFIGS_DIR / f"{stem}.yaml"
    if str(path) == path.name and bundled.is_file():
        return bundled
    known = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
    raise JudgeConfigError(
        f"judge config {str(name_or_path)!r}: no such file, and not a bundled judge {known}"
    )


def load_judge_config(name_or_path: str | os.PathLike[str]) -> JudgeConfig:
    path = config_path(name_or_path)
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise JudgeConfigError(f"judge config {where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise JudgeConfigError(f"judge config {where}: the top level must be a mapping of keys")
    for key in sorted(set(raw) - _YAML_KEYS):
        raise JudgeConfigError(f"judge config {where}: unknown key {key!r} (known: {sorted(_YAML_KEYS)})")
    for key in sorted(_REQUIRED - set(raw) - ({"template"} if raw.get("prompt") is not None else set())):
        raise JudgeConfigError(f"judge config {where}: missing key {key!r}")
    values = dict(raw)
    values.setdefault("template", "")
    values["price"] = _price(values["price"], where)
    if values.get("truncation") is None:
        values["truncation"] = {}
    for key in ("temperature", "top_p", "timeout_s", "backoff_initial_s", "backoff_max_s"):
        if isinstance(values.get(key), int) and not isinstance(values.get(key), bool):
            values[key] = float(values[key])
    cfg = JudgeConfig(**values, source=where, template_text="")
    _validate(cfg, where)
    return dataclasses.replace(cfg, template_text=_template_text(cfg, path.parent, where))


def resolve_judge_config(
    name_or_path: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    model: str | None = None,
) -> JudgeConfig:
    """The judge to use: ``name_or_path``, else ``$IOPO_EVAL_JUDGE``, else the bundled default; then
    ``$IOPO_EVAL_JUDGE_BASE_URL`` / ``$IOPO_EVAL_JUDGE_MODEL``, then the explicit overrides."""
    cfg = load_judge_config(name_or_path or os.environ.get(ENV_JUDGE) or DEFAULT_JUDGE)
    cfg = cfg.with_overrides(
        base_url=os.environ.get(ENV_BASE_URL) or None, model=os.environ.get(ENV_MODEL) or None
    )
    return cfg.with_overrides(base_url=base_url, model=model)
