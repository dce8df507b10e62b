"""Judge prompts taken from the upstream evaluators' own files, rendered exactly as upstream renders them.

A judge config names such a prompt instead of a template file::

    prompt: {upstream: trace/upstream-template, spec: trace}
    prompt: {upstream: trace/upstream-template, spec: trace, options: {question: prompt}}

``upstream`` is a data-registry key (``iopo_eval.data.registry``): the file is fetched, cached and verified
by sha256 like the benchmark data, and an offline machine without it gets the usual "not available" error.
``spec`` names one of :data:`SPECS`: a declarative description of where upstream's prompt is in that file
(a locator, see ``upstream_source``), how a judge request's fields map to the template's fields (with
upstream's own truncation, joins and stand-ins), and the message role. The file is read with ``ast`` and
never executed; the rendered text is byte-identical to what upstream's code builds for the same inputs
(tests/judges/test_upstream_prompt_fidelity.py renders every TRACE and CFBench row through both).

The fields a request must carry, per spec:

- ``trace``: ``description``, ``row_input`` (the row's ``input`` as it is: the literal ``"NULL"`` when
  there is none), ``row_constraints`` (the row's ``constraints`` block), ``constraints_splits`` (the gold
  list; the reply parser matches scores to it), ``response``; ``prompt`` (the user message) only with
  ``question: prompt``. The two ``row_`` names keep them apart from the hardened TRACE template's own
  ``input`` and ``constraints`` fields, which mean something else: one request carries both sets.
- ``cfbench``: ``prompt``, ``gold``, ``criteria`` (the checkpoint texts, in order), ``response``.
- ``complexbench-evaluation``: ``instruction``, ``question``, ``response`` (None is sent as upstream sends
  it: the text ``None``).
- ``complexbench-extraction``: the same plus ``rule`` (a rule containing ``each`` selects upstream's
  ``_EACH`` prompt).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iopo_eval.judges.prompt import RenderedPrompt, no_surrogates
from iopo_eval.judges.upstream_source import (
    FormatTemplate,
    FStringFunction,
    FStringTemplate,
    Locator,
    StringAssignment,
    UpstreamSourceError,
    function_value,
    parse_module,
    read_template,
)


class UpstreamPromptError(ValueError):
    """A prompt config or a request does not fit an upstream prompt spec. The message names the key."""


# ---------------------------------------------------------------- where a template field comes from


@dataclass(frozen=True)
class RequestField:
    """A request field, treated as upstream treats it before formatting."""

    name: str
    max_chars: int | None = None  # upstream slices value[:max_chars] (characters, i.e. code points)
    none_as: str | None = None  # upstream's stand-in text when the value is None
    join: str | None = None  # a list of strings is joined with this (CFBench's "\n\n")


@dataclass(frozen=True)
class FunctionValue:
    """A value upstream's function computes from literals before formatting (TRACE's ``format_str``)."""

    name: str


@dataclass(frozen=True)
class TraceQuery:
    """TRACE's query: ``description``, replaced by ``question`` when ``"NULL" not in question``
    (request fields ``description`` and ``row_input``, plus ``prompt`` for ``question: prompt``).

    ``question`` comes from a dataset loader upstream never released; the ``question`` option chooses it
    (see :data:`TRACE_QUESTIONS` and tasks/trace/README.md)."""


Source = RequestField | FunctionValue | TraceQuery

# The request field holding a TRACE row's ``input`` as upstream passes it ("NULL" when there is none).
TRACE_INPUT = "row_input"

# What TRACE's unreleased ``question`` is taken to be. The first is the default (protocols.md §1.4).
TRACE_QUESTIONS: dict[str, str] = {
    "input": "the row's input (the literal NULL when it has none): the query is the input, else the description",
    "prompt": "the user message (description, constraints and input): the query is always the whole prompt",
    "none": "NULL: the query is always the description",
    "description+input": "upstream's commented-out variant: description, a newline, then the input",
}


@dataclass(frozen=True)
class ChooseTemplate:
    """One of two templates of the same file, chosen by a substring of a request field (ComplexBench's
    ``'each' in rule``)."""

    field: str
    contains: str
    then: Locator
    otherwise: Locator


@dataclass(frozen=True)
class UpstreamPromptSpec:
    name: str
    version: int  # bump when what this spec renders changes
    registry_key: str
    locator: Locator | ChooseTemplate
    sources: Mapping[str, Source]  # template field -> where its value comes from
    parser: str  # the reply parser made for upstream's reply format
    role: str = "user"  # the single chat message upstream sends
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name -> allowed (default first)
    n_expected_field: str | None = None  # a list field whose length is the number of scores; None: 1
    # The bundled config that asks the same questions with our own (hardened) prompt and a JSON answer:
    # what the embedded smoke-test judge runs in this prompt's place (a 135M model cannot keep upstream's
    # free-text reply format; its grammar-constrained JSON always parses).
    hardened_config: str = ""

    def default_options(self) -> dict[str, str]:
        return {name: allowed[0] for name, allowed in self.options.items()}


# ComplexBench's evaluator and extractor read the same three values, cut the same way (upstream's limits).
_CB_INSTRUCTION = RequestField("instruction", max_chars=6000)
_CB_RESPONSE = RequestField("response", max_chars=4000, none_as="None")
_CB_QUESTION = RequestField("question")

SPECS: dict[str, UpstreamPromptSpec] = {
    spec.name: spec
    for spec in (
        UpstreamPromptSpec(
            name="trace",
            version=1,
            registry_key="trace/upstream-template",
            locator=StringAssignment(
                "PROMPT_TEMPLATE_EVAL_TRACE", function="TraceTemplate.generate_verdicts"
            ),
            sources={
                "format_str": FunctionValue("format_str"),
                "description": TraceQuery(),
                "constraints": RequestField("row_constraints"),
                "ans": RequestField("response"),
            },
            parser="trace_upstream",
            options={"question": tuple(TRACE_QUESTIONS)},
            n_expected_field="constraints_splits",
            hardened_config="trace-gpt4o-hardened",
        ),
        UpstreamPromptSpec(
            name="cfbench",
            version=1,
            registry_key="cfbench/upstream-evaluate",
            locator=FStringFunction("gpt_judge_for_cfbench"),
            sources={
                "prompt": RequestField("prompt"),
                "gold_ans": RequestField("gold"),
                "response": RequestField("response"),
                "criteria": RequestField("criteria", join="\n\n"),
            },
            parser="cfbench_upstream",
            n_expected_field="criteria",
            hardened_config="cfbench-gpt4o-hardened",
        ),
        UpstreamPromptSpec(
            name="complexbench-evaluation",
            version=1,
            registry_key="complexbench/upstream-ral-evaluator",
            locator=StringAssignment("EVALUATION_PROMPT"),
            sources={
                "input": _CB_INSTRUCTION,
                "output": _CB_RESPONSE,
                "question": _CB_QUESTION,
            },
            parser="complexbench_yesno_upstream",
            hardened_config="complexbench-gpt4-1106-hardened",
        ),
        UpstreamPromptSpec(
            name="complexbench-extraction",
            version=1,
            registry_key="complexbench/upstream-ral-extractor",
            locator=ChooseTemplate(
                field="rule",
                contains="each",
                then=StringAssignment("EXTRACTION_PROMPT_EACH"),
                otherwise=StringAssignment("EXTRACTION_PROMPT"),
            ),
            sources={
                "instruction": _CB_INSTRUCTION,
                "response": _CB_RESPONSE,
                "question": _CB_QUESTION,
            },
            parser="complexbench_extract_upstream",
            hardened_config="complexbench-extract-gpt4-1106-hardened",
        ),
    )
}


# ---------------------------------------------------------------- the config value


@dataclass(frozen=True)
class UpstreamPromptRef:
    """A parsed ``prompt:`` config value: a spec and its options."""

    spec: UpstreamPromptSpec
    options: tuple[tuple[str, str], ...]  # sorted (name, value), every option of the spec

    @property
    def option_values(self) -> dict[str, str]:
        return dict(self.options)

    def identity(self) -> dict[str, Any]:
        """What pins the prompt: the file's sha256 (from the registry), the spec, its version and options."""
        from iopo_eval.data.registry import get_file

        entry = get_file(self.spec.registry_key)
        return {
            "upstream": entry.key,
            "repo": entry.repo,
            "commit": entry.commit,
            "path": entry.upstream_path,
            "sha256": entry.sha256,
            "spec": self.spec.name,
            "spec_version": self.spec.version,
            "options": self.option_values,
            "role": self.spec.role,
        }

    def identity_text(self) -> str:
        """A canonical text of :meth:`identity`, which a judge config hashes in place of template text."""
        return "upstream prompt " + json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return f"upstream:{self.spec.registry_key}#{self.spec.name}@{self.spec.version}" + (
            f"({opts})" if opts else ""
        )


PROMPT_KEYS = ("upstream", "spec", "options")


def parse_prompt_config(value: Any, where: str = "judge config") -> UpstreamPromptRef:
    """Read a judge config's ``prompt`` value; errors name the key that is wrong."""
    if not isinstance(value, Mapping):
        raise UpstreamPromptError(f"{where}: 'prompt' must be a mapping {{upstream: KEY, spec: NAME}}")
    for key in value:
        if key not in PROMPT_KEYS:
            raise UpstreamPromptError(f"{where}: unknown key 'prompt.{key}' (known: {list(PROMPT_KEYS)})")
    for key in ("upstream", "spec"):
        if not isinstance(value.get(key), str):
            raise UpstreamPromptError(f"{where}: 'prompt.{key}' must be a string")
    spec = SPECS.get(value["spec"])
    if spec is None:
        raise UpstreamPromptError(f"{where}: 'prompt.spec' {value['spec']!r} is not one of {sorted(SPECS)}")
    if value["upstream"] != spec.registry_key:
        raise UpstreamPromptError(
            f"{where}: 'prompt.upstream' {value['upstream']!r} does not hold spec {spec.name!r}'s prompt "
            f"(it is in {spec.registry_key!r})"
        )
    raw_options = value.get("options")
    raw_options = {} if raw_options is None else raw_options
    if not isinstance(raw_options, Mapping):
        raise UpstreamPromptError(f"{where}: 'prompt.options' must be a mapping")
    options = spec.default_options()
    for name, chosen in raw_options.items():
        allowed = spec.options.get(name)
        if allowed is None:
            raise UpstreamPromptError(
                f"{where}: unknown key 'prompt.options.{name}' for spec {spec.name!r} (known: {sorted(spec.options)})"
            )
        if chosen not in allowed:
            raise UpstreamPromptError(
                f"{where}: 'prompt.options.{name}' must be one of {list(allowed)}, got {chosen!r}"
            )
        options[name] = chosen
    return UpstreamPromptRef(spec=spec, options=tuple(sorted(options.items())))


@functools.lru_cache(maxsize=64)
def _ref_from_json(blob: str) -> UpstreamPromptRef:
    return parse_prompt_config(json.loads(blob))


def prompt_ref(value: Mapping[str, Any] | UpstreamPromptRef) -> UpstreamPromptRef:
    """A ref from a config value (parsed once per distinct value)."""
    if isinstance(value, UpstreamPromptRef):
        return value
    return _ref_from_json(json.dumps(value, sort_keys=True))


# ---------------------------------------------------------------- loading the file


@dataclass(frozen=True)
class LoadedPrompt:
    """The templates and upstream-computed values of one spec, read from the verified file."""

    templates: dict[Locator, FormatTemplate | FStringTemplate]
    values: dict[str, Any]  # FunctionValue name -> value


def _locators(spec: UpstreamPromptSpec) -> list[Locator]:
    if isinstance(spec.locator, ChooseTemplate):
        return [spec.locator.then, spec.locator.otherwise]
    return [spec.locator]


def read_spec(spec: UpstreamPromptSpec, source: str, where: str) -> LoadedPrompt:
    """Read a spec's templates out of the upstream file's source text (parsed, never executed), and check
    that each template's fields are exactly the spec's sources."""
    tree = parse_module(source, where)
    templates = {}
    for locator in _locators(spec):
        template = read_template(tree, locator, where)
        if template.fields != frozenset(spec.sources):
            raise UpstreamSourceError(
                f"{where}: {locator.name} fills {sorted(template.fields)}, but spec {spec.name!r} maps "
                f"{sorted(spec.sources)}"
            )
        templates[locator] = template
    values: dict[str, Any] = {}
    for mapped in spec.sources.values():
        if isinstance(mapped, FunctionValue):
            function = spec.locator.function if isinstance(spec.locator, StringAssignment) else None
            if function is None:
                raise UpstreamSourceError(f"spec {spec.name!r}: a function value needs a function locator")
            values[mapped.name] = function_value(tree, function, mapped.name, where)
    return LoadedPrompt(templates=templates, values=values)


@functools.lru_cache(maxsize=16)
def _load_cached(key: str, path: str, mtime_ns: int, spec_name: str) -> LoadedPrompt:
    text = Path(path).read_text(encoding="utf-8")
    return read_spec(SPECS[spec_name], text, f"{key} ({path})")


# Files verified in this process: (key, mirror, $mirror, $cache) -> (path, mtime). A file is hashed again
# when its modification time changes, so rendering many prompts does not re-hash it for each one.
_VERIFIED: dict[tuple[str, str | None, str | None, str | None], tuple[Path, int]] = {}


def _verified_path(key: str, mirror: str | None) -> tuple[Path, int]:
    from iopo_eval.data.store import MIRROR_ENV, data_path

    where = (key, mirror, os.environ.get(MIRROR_ENV), os.environ.get("IOPO_EVAL_CACHE"))
    known = _VERIFIED.get(where)
    if known is not None:
        with contextlib.suppress(OSError):
            if known[0].stat().st_mtime_ns == known[1]:
                return known
    path = data_path(key, mirror)
    _VERIFIED[where] = (path, path.stat().st_mtime_ns)
    return _VERIFIED[where]


def load_prompt(spec: UpstreamPromptSpec, mirror: str | None = None) -> LoadedPrompt:
    """The spec's templates from the fetched (or mirrored) file, sha256-verified; raises the data store's
    ``DataError`` ("... is not available ...") when the file cannot be had."""
    path, mtime_ns = _verified_path(spec.registry_key, mirror)
    return _load_cached(spec.registry_key, str(path), mtime_ns, spec.name)


# ---------------------------------------------------------------- rendering


def _text(spec: UpstreamPromptSpec, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise UpstreamPromptError(
            f"spec {spec.name!r}: request field {name!r} must be a string, got {type(value).__name__}"
        )
    return value


def _field_value(spec: UpstreamPromptSpec, source: RequestField, fields: Mapping[str, Any]) -> str:
    if source.name not in fields:
        raise UpstreamPromptError(f"spec {spec.name!r}: the request has no field {source.name!r}")
    value = fields[source.name]
    if value is None and source.none_as is not None:
        return source.none_as
    if source.join is not None:
        if (
            not isinstance(value, Sequence)
            or isinstance(value, str)
            or not all(isinstance(v, str) for v in value)
        ):
            raise UpstreamPromptError(
                f"spec {spec.name!r}: request field {source.name!r} must be a list of strings"
            )
        return source.join.join(value)
    text = _text(spec, source.name, value)
    return text[: source.max_chars] if source.max_chars is not None else text


def trace_query(description: str, input_text: str, prompt: str | None, question: str) -> str:
    """TRACE's query rule (template.py): the description, unless ``"NULL" not in question``, in which case
    ``question`` (or, in the commented-out variant, the description, a newline and ``question``)."""
    if question == "prompt":
        if prompt is None:
            raise UpstreamPromptError("spec 'trace' with question=prompt: the request has no field 'prompt'")
        chosen = prompt
    elif question == "none":
        chosen = "NULL"
    else:
        chosen = input_text
    if "NULL" in chosen:  # a substring test, as upstream's
        return description
    return description + "\n" + chosen if question == "description+input" else chosen


def _template_values(
    ref: UpstreamPromptRef, loaded: LoadedPrompt, fields: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, int]]:
    spec = ref.spec
    values: dict[str, Any] = {}
    truncated: dict[str, int] = {}
    for name, source in spec.sources.items():
        if isinstance(source, FunctionValue):
            values[name] = loaded.values[source.name]
        elif isinstance(source, TraceQuery):
            for needed in ("description", TRACE_INPUT):
                if needed not in fields:
                    raise UpstreamPromptError(f"spec {spec.name!r}: the request has no field {needed!r}")
            prompt = fields.get("prompt")
            values[name] = trace_query(
                _text(spec, "description", fields["description"]),
                _text(spec, TRACE_INPUT, fields[TRACE_INPUT]),
                _text(spec, "prompt", prompt) if prompt is not None else None,
                ref.option_values["question"],
            )
        else:
            values[name] = _field_value(spec, source, fields)
            original = fields[source.name]
            if (
                source.max_chars is not None
                and isinstance(original, str)
                and len(original) > source.max_chars
            ):
                truncated[name] = len(original)
    # Lone surrogates cannot be sent as UTF-8 (upstream's client could not send them either): U+FFFD.
    return {k: no_surrogates(v) if isinstance(v, str) else v for k, v in values.items()}, truncated


def _locator_for(spec: UpstreamPromptSpec, fields: Mapping[str, Any]) -> Locator:
    locator = spec.locator
    if isinstance(locator, ChooseTemplate):
        if locator.field not in fields:
            raise UpstreamPromptError(f"spec {spec.name!r}: the request has no field {locator.field!r}")
        chooser = _text(spec, locator.field, fields[locator.field])
        return locator.then if locator.contains in chooser else locator.otherwise
    return locator


def render_upstream(
    value: Mapping[str, Any] | UpstreamPromptRef, fields: Mapping[str, Any], mirror: str | None = None
) -> RenderedPrompt:
    """The prompt upstream's code builds for these request fields, as a :class:`RenderedPrompt`: its
    ``fields`` are the template's values as filled (after upstream's truncation: the cache key covers
    them), ``truncated`` names the fields upstream cut, and there is no nonce (upstream has none)."""
    ref = prompt_ref(value)
    loaded = load_prompt(ref.spec, mirror)
    locator = _locator_for(ref.spec, fields)
    values, truncated = _template_values(ref, loaded, fields)
    try:
        text = loaded.templates[locator].fill(values)
    except UpstreamSourceError as exc:
        raise UpstreamPromptError(f"spec {ref.spec.name!r}: {exc}") from exc
    key_fields = {name: str(v) for name, v in values.items()}
    if isinstance(ref.spec.locator, ChooseTemplate):
        key_fields["_template"] = locator.name  # which of the two prompts: part of the cache key
    return RenderedPrompt(text=text, fields=key_fields, truncated=truncated, nonce="")


def messages(
    value: Mapping[str, Any] | UpstreamPromptRef, fields: Mapping[str, Any], mirror: str | None = None
) -> list[dict[str, str]]:
    """The chat messages upstream sends: one message of the spec's role holding the rendered prompt."""
    ref = prompt_ref(value)
    return [{"role": ref.spec.role, "content": render_upstream(ref, fields, mirror).text}]


def n_expected(value: Mapping[str, Any] | UpstreamPromptRef, fields: Mapping[str, Any]) -> int:
    """How many scores the reply must carry for this request (TRACE: constraints, CFBench: checkpoints)."""
    spec = prompt_ref(value).spec
    if spec.n_expected_field is None:
        return 1
    items = fields.get(spec.n_expected_field)
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise UpstreamPromptError(
            f"spec {spec.name!r}: request field {spec.n_expected_field!r} must be a non-empty list"
        )
    return len(items)
