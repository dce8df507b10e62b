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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iopo_eval.judges.settings import BatchSettings, JudgeMode, RateLimitSettings

CONFIGS_DIR = Path(__file__).parent / "configs"
TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_JUDGE = "trace-gpt4o"

ENV_JUDGE = "IOPO_EVAL_JUDGE"
ENV_BASE_URL = "IOPO_EVAL_JUDGE_BASE_URL"
ENV_MODEL = "IOPO_EVAL_JUDGE_MODEL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # the endpoint of a config whose base_url is null

ResponseFormat = Literal["json_schema", "json_object", "none"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)


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
    response_format: ResponseFormat
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
    # How the judge is called (none of it enters the identity): synchronously or through the Batch API,
    # the batch mode's settings and prices, and client-side pacing to the account's limits.
    mode: JudgeMode = "sync"
    batch: BatchSettings = field(default_factory=BatchSettings)
    batch_price: Price | None = None  # None: batch lines are costed at `price` (never an under-estimate)
    rate_limit: RateLimitSettings | None = None
    # Not read from YAML: where the config came from and the template's text (loaded once).
    source: str = ""
    template_text: str = ""

    # --- identity -------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """Everything that can change a judgement. Endpoint, key, concurrency, timeouts, prices, the mode
        (sync or batch) and rate limits cannot."""
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
        """A copy with some fields replaced (``None`` values are ignored), validated like a file. A new
        ``template`` is reloaded; any change that can alter a judgement clears ``paper_protocol``."""
        changes = {k: v for k, v in changes.items() if v is not None}
        where = self.source or self.name
        unknown = sorted(set(changes) - YAML_KEYS)
        if unknown:
            raise JudgeConfigError(f"judge config {where}: unknown override {unknown[0]!r}")
        values = _as_yaml({key: getattr(self, key) for key in YAML_KEYS} | changes)
        new = dataclasses.replace(
            _config_from(_check(values, where), self.source), template_text=self.template_text
        )
        if "template" in changes or "prompt" in changes:
            base = Path(self.source).parent if self.source else None
            new = dataclasses.replace(new, template_text=_template_text(new, base, new.source))
        if "paper_protocol" not in changes and new.identity() != self.identity():
            new = dataclasses.replace(new, paper_protocol=False)
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


class _PriceSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    input_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0, allow_inf_nan=False)


class _ConfigSchema(BaseModel):
    """What a judge config file may hold: the keys, their types and ranges. Strict: a string is not a
    number and a number is not a flag; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    model: str
    template: str = ""  # required unless `prompt` names an upstream prompt
    prompt_version: str
    parser: str
    response_format: ResponseFormat
    temperature: float = Field(ge=0, le=2)
    price: _PriceSchema
    base_url: str | None = None
    api_key_env: str = Field("OPENAI_API_KEY", pattern=r"\S")
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(2048, ge=1)
    seed: int | None = None
    timeout_s: float = Field(120.0, gt=0, allow_inf_nan=False)
    max_retries: int = Field(4, ge=0)
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    concurrency: int = Field(16, ge=1)
    truncation: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    smoke_test: bool = False
    paper_protocol: bool = False
    prompt: dict[str, Any] | None = None
    mode: JudgeMode = "sync"
    batch: BatchSettings = Field(default_factory=BatchSettings)
    batch_price: _PriceSchema | None = None
    rate_limit: RateLimitSettings | None = None

    @field_validator("truncation", mode="before")
    @classmethod
    def _no_truncation(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("parser")
    @classmethod
    def _known_parser(cls, value: str) -> str:
        from iopo_eval.judges.parse import PARSERS  # local import: parse does not depend on config

        if value not in PARSERS:
            raise ValueError(f"names unknown parser {value!r} (known: {sorted(PARSERS)})")
        return value

    @model_validator(mode="after")
    def _template_or_prompt(self) -> _ConfigSchema:
        if self.prompt is None and not self.template:
            raise ValueError("missing key 'template' (or an upstream 'prompt')")
        if self.prompt is not None and (self.template or self.truncation):
            raise ValueError(
                "an upstream 'prompt' takes no 'template' and no 'truncation' (upstream's own truncation applies)"
            )
        return self

    @model_validator(mode="after")
    def _backoff_order(self) -> _ConfigSchema:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s {self.backoff_max_s} is below backoff_initial_s {self.backoff_initial_s}"
            )
        return self


# Keys a YAML file may hold.
YAML_KEYS = frozenset(_ConfigSchema.model_fields)
# The mappings a config holds, by key: their own keys are checked (and listed in errors) by these schemas.
_SECTIONS: dict[str, type[BaseModel]] = {
    "price": _PriceSchema,
    "batch_price": _PriceSchema,
    "batch": BatchSettings,
    "rate_limit": RateLimitSettings,
}


def _as_yaml(values: dict[str, Any]) -> dict[str, Any]:
    """Config values as a file holds them: prices and sections as plain mappings."""
    out = dict(values)
    for key, value in values.items():
        if isinstance(value, Price):
            out[key] = dataclasses.asdict(value)
        elif isinstance(value, BaseModel):
            out[key] = value.model_dump()
    return out


def _check(values: dict[str, Any], where: str) -> _ConfigSchema:
    """The values validated, or one JudgeConfigError naming the file and the first bad key."""
    try:
        return _ConfigSchema.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        if not error["loc"]:  # a rule over several keys
            message = str(error["msg"]).removeprefix("Value error, ")
            raise JudgeConfigError(f"judge config {where}: {message}") from None
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            raise JudgeConfigError(f"judge config {where}: missing key {key!r}") from None
        if error["type"] == "extra_forbidden":
            section = _SECTIONS.get(str(error["loc"][0])) if len(error["loc"]) > 1 else None
            known = sorted(section.model_fields) if section is not None else sorted(YAML_KEYS)
            raise JudgeConfigError(f"judge config {where}: unknown key {key!r} (known: {known})") from None
        expected = _EXPECTED.get(error["type"])
        if error["type"] == "literal_error":
            expected = "one of " + str(error.get("ctx", {}).get("expected", ""))
        if expected is not None:
            raise JudgeConfigError(
                f"judge config {where}: key {key!r} must be {expected}, got {error['input']!r}"
            ) from None
        raise JudgeConfigError(
            f"judge config {where}: key {key!r} has an invalid value {error['input']!r} ({error['msg']})"
        ) from None


# pydantic's type errors, said the way the rest of iopo-eval says them.
_EXPECTED = {
    "string_type": "str",
    "int_type": "int",
    "float_type": "a number",
    "bool_type": "bool (true or false)",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _config_from(checked: _ConfigSchema, source: str) -> JudgeConfig:
    values = checked.model_dump()
    values["price"] = Price(**values["price"])
    if values["batch_price"] is not None:
        values["batch_price"] = Price(**values["batch_price"])
    values["batch"] = checked.batch
    values["rate_limit"] = checked.rate_limit
    return JudgeConfig(**values, source=source, template_text="")


def _template_text(cfg: JudgeConfig, base: Path | None, where: str) -> str:
    """The text that identifies the prompt: the template file's, or the upstream prompt's identity text."""
    if cfg.prompt is None:
        return _read_template(cfg.template, base, where)
    from iopo_eval.judges.upstream_prompt import UpstreamPromptError, parse_prompt_config

    try:
        return parse_prompt_config(cfg.prompt, f"judge config {where}").identity_text()
    except UpstreamPromptError as exc:
        raise JudgeConfigError(str(exc)) from exc


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
    cfg = _config_from(_check(raw, where), where)
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
