"""Rendering a judge prompt template: ``{{field}}`` placeholders filled in one pass, with deterministic
truncation and a per-render nonce that marks the blocks of untrusted text.

Safety of untrusted fields (the model's response above all): substitution is a single pass over the
template, so a field that contains ``{{constraints}}`` is left as literal text; and the reserved
``{{nonce}}`` is derived from a hash of all field values and re-derived if any field happens to contain
it, so a response cannot forge the closing tag of its own block (it would have to contain a hash of
itself). The nonce is deterministic, so the same inputs always give the same prompt text.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
RESERVED = ("nonce", "n_expected")
# Lone UTF-16 surrogates (text decoded with errors="surrogateescape", or JSON \u escapes of them) cannot be
# encoded as UTF-8 for the request body or the cache key; the judge sees U+FFFD in their place.
_SURROGATE = re.compile("[\ud800-\udfff]")
_OWN_NUMBER = re.compile(r"\s*(\d+)\s*[.、．)](?!\d)\s*")


class TemplateError(ValueError):
    """A template and its fields do not fit together (a missing field, a reserved name, a bad value)."""


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    fields: dict[str, str]  # the template's fields as rendered, after truncation (the cache key covers them)
    truncated: dict[str, int]  # field -> original length in characters, for the fields that were cut
    nonce: str


def template_fields(template_text: str) -> list[str]:
    """Field names a template uses, in order of first use, without the reserved ones."""
    return list(_template_fields(template_text))


@functools.lru_cache(maxsize=64)
def _template_fields(template_text: str) -> tuple[str, ...]:
    seen: list[str] = []
    for name in PLACEHOLDER.findall(template_text):
        if name not in seen and name not in RESERVED:
            seen.append(name)
    return tuple(seen)


@functools.lru_cache(maxsize=64)
def _pieces(template_text: str) -> tuple[tuple[str, bool], ...]:
    """The template split once into literal text and placeholder names (``True``), in order: filling it
    is then a join, the same single pass as a substitution."""
    pieces: list[tuple[str, bool]] = []
    at = 0
    for match in PLACEHOLDER.finditer(template_text):
        pieces.append((template_text[at : match.start()], False))
        pieces.append((match.group(1), True))
        at = match.end()
    pieces.append((template_text[at:], False))
    return tuple(pieces)


def no_surrogates(text: str) -> str:
    """The text with any lone surrogate (not encodable as UTF-8) replaced by U+FFFD."""
    try:
        text.encode("utf-8")  # fails exactly when the text holds a surrogate; much faster than a scan
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def format_field(name: str, value: Any) -> str:
    """Strings as they are; lists as numbered lines ``1. item`` (an item that already starts with its own
    number, as TRACE's ``constraints_splits`` do, keeps it once); numbers as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        items = []
        for i, item in enumerate(value, start=1):
            if not isinstance(item, str):
                raise TemplateError(
                    f"template field {name!r}: item {i} must be a string, got {type(item).__name__}"
                )
            own = _OWN_NUMBER.match(item)
            if own and int(own.group(1)) == i:
                item = item[own.end() :]  # already numbered with its position: do not number it twice
            items.append(f"{i}. {item}")
        return "\n".join(items)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise TemplateError(f"template field {name!r}: cannot render a {type(value).__name__}")


def truncate(text: str, limit: int) -> str:
    """Keep the first ``limit`` characters and say how many were dropped (the judge sees the note)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... truncated: {len(text) - limit} more characters not shown]"


def _nonce(fields: Mapping[str, str]) -> str:
    blob = json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")
    counter = 0
    while True:
        nonce = hashlib.sha256(b"iopo-eval-nonce:%d:" % counter + blob).hexdigest()[:16]
        if not any(nonce in value for value in fields.values()):
            return nonce
        counter += 1  # astronomically unlikely; kept so the guarantee does not rest on luck


def render(
    template_text: str,
    fields: Mapping[str, Any],
    *,
    n_expected: int,
    truncation: Mapping[str, int] | None = None,
) -> RenderedPrompt:
    names = _template_fields(template_text)
    for reserved in RESERVED:
        if reserved in fields:
            raise TemplateError(f"template field {reserved!r} is reserved and filled in by the renderer")
    missing = [name for name in names if name not in fields]
    if missing:
        raise TemplateError(f"template needs field(s) {missing} that the request does not provide")
    limits = dict(truncation or {})
    rendered: dict[str, str] = {}
    truncated: dict[str, int] = {}
    for name in names:
        text = no_surrogates(format_field(name, fields[name]))
        limit = limits.get(name)
        if limit is not None and len(text) > limit:
            truncated[name] = len(text)
            text = truncate(text, limit)
        rendered[name] = text
    nonce = _nonce(rendered)
    values = {**rendered, "nonce": nonce, "n_expected": str(n_expected)}
    text = "".join(values[piece] if is_name else piece for piece, is_name in _pieces(template_text))
    return RenderedPrompt(text=text, fields=rendered, truncated=truncated, nonce=nonce)


def cache_key(identity_hash: str, rendered: RenderedPrompt, n_expected: int) -> str:
    """Content address of a judgement: the judge's identity plus the inputs as the judge saw them."""
    blob = json.dumps(
        {"judge": identity_hash, "fields": rendered.fields, "n_expected": n_expected},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
