"""TRACE's constraint taxonomy (5 categories, 26 dimensions) as data, extendable by a user file.

The packaged ``taxonomy.yaml`` holds, per dimension, its category, English and Chinese names (the Chinese
name is TRACE's ``levels2`` label), a description, examples and ``eval_count`` (its count in TRACE's
evaluation set, the default sampling weight). A user file has the same shape and is merged by ``id``:

```yaml
categories: [{id: safety, en: Safety, zh: 安全约束, description: ...}]   # new or overriding categories
dimensions:
  - {id: inclusion, weight: 300}                   # an existing dimension: only the keys given change
  - {id: legal_disclaimer, category: safety, en: Legal Disclaimer, zh: 免责声明约束, weight: 50,
     description: ..., examples: [...]}            # a new dimension: every key is required
remove: [privacy]                                  # dimensions never drawn
```
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from iopo_eval.training.databuild.errors import BuildError

PACKAGED = Path(__file__).parent / "taxonomy.yaml"
_CATEGORY_KEYS = {"id", "en", "zh", "description"}
_DIMENSION_KEYS = {"id", "category", "en", "zh", "description", "examples", "eval_count", "weight"}
_REQUIRED_NEW = ("category", "en", "zh", "description", "examples")


@dataclass(frozen=True)
class Category:
    id: str
    en: str
    zh: str
    description: str


@dataclass(frozen=True)
class Dimension:
    id: str
    category: str
    en: str
    zh: str  # TRACE's levels2 label for the packaged dimensions
    description: str
    examples: tuple[str, ...]
    eval_count: int | None = None  # constraints with this label in TRACE's evaluation set
    weight: float | None = None  # sampling weight; None: eval_count

    @property
    def sampling_weight(self) -> float:
        return float(self.weight if self.weight is not None else (self.eval_count or 0))

    def prompt_line(self, examples: bool = True) -> str:
        """How a dimension is shown to the LLM: id, both names, what it means, and (for the few dimensions
        an expansion uses) its first two examples."""
        line = f"{self.id} — {self.en} ({self.zh}): {self.description}"
        return line + (f" Examples: {' | '.join(self.examples[:2])}" if examples else "")


@dataclass(frozen=True)
class Taxonomy:
    version: str
    categories: dict[str, Category]
    dimensions: dict[str, Dimension]  # in file order
    sources: tuple[str, ...] = field(default=())

    def category_of(self, dimension_id: str) -> Category:
        return self.categories[self.dimensions[dimension_id].category]

    def by_label(self) -> dict[str, Dimension]:
        """Chinese label (levels2) -> dimension."""
        return {d.zh: d for d in self.dimensions.values()}

    def prompt_block(self, ids: list[str] | None = None, examples: bool = True) -> str:
        """The dimensions (all, or ``ids`` in that order) as lines for a prompt."""
        chosen = [self.dimensions[i] for i in ids] if ids is not None else list(self.dimensions.values())
        return "\n".join(f"- {d.prompt_line(examples)}" for d in chosen)

    def fingerprint(self) -> str:
        """sha256 of everything that changes prompts or draws; recorded in the build manifest."""
        blob = json.dumps(
            {
                "version": self.version,
                "categories": [asdict(c) for c in self.categories.values()],
                "dimensions": [asdict(d) for d in self.dimensions.values()],
            },
            ensure_ascii=False,
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(f"taxonomy file {path}: no such file") from None
    except yaml.YAMLError as exc:
        raise BuildError(f"taxonomy file {path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise BuildError(f"taxonomy file {path}: the top level must be a mapping")
    unknown = sorted(set(raw) - {"version", "categories", "dimensions", "remove"})
    if unknown:
        raise BuildError(f"taxonomy file {path}: unknown key {unknown[0]!r}")
    return raw


def _entries(raw: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BuildError(f"{where}: {key!r} must be a list of mappings")
    for i, entry in enumerate(value):
        if not isinstance(entry.get("id"), str) or not entry["id"].strip():
            raise BuildError(f"{where}: {key}[{i}] needs a string 'id'")
    return value


def _check_types(entry: dict[str, Any], where: str) -> None:
    for name in ("category", "en", "zh", "description"):
        if name in entry and (not isinstance(entry[name], str) or not entry[name].strip()):
            raise BuildError(f"{where}: {name!r} must be a non-empty string")
    if "examples" in entry:
        ex = entry["examples"]
        if not isinstance(ex, list) or not ex or not all(isinstance(e, str) and e.strip() for e in ex):
            raise BuildError(f"{where}: 'examples' must be a non-empty list of strings")
    for name in ("eval_count", "weight"):
        value = entry.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            raise BuildError(f"{where}: {name!r} must be a number >= 0, got {value!r}")


def _merge(base: Taxonomy | None, raw: dict[str, Any], path: Path) -> Taxonomy:
    where = f"taxonomy file {path}"
    categories = dict(base.categories) if base else {}
    dimensions = dict(base.dimensions) if base else {}
    for i, entry in enumerate(_entries(raw, "categories", where)):
        at = f"{where}: categories[{i}] (id {entry['id']!r})"
        unknown = sorted(set(entry) - _CATEGORY_KEYS)
        if unknown:
            raise BuildError(f"{at}: unknown key {unknown[0]!r}")
        _check_types(entry, at)
        known = categories.get(entry["id"])
        if known is None:
            missing = [k for k in ("en", "zh", "description") if k not in entry]
            if missing:
                raise BuildError(f"{at}: a new category needs {missing[0]!r}")
            categories[entry["id"]] = Category(entry["id"], entry["en"], entry["zh"], entry["description"])
        else:
            categories[entry["id"]] = replace(known, **{k: v for k, v in entry.items() if k != "id"})
    for i, entry in enumerate(_entries(raw, "dimensions", where)):
        at = f"{where}: dimensions[{i}] (id {entry['id']!r})"
        unknown = sorted(set(entry) - _DIMENSION_KEYS)
        if unknown:
            raise BuildError(f"{at}: unknown key {unknown[0]!r}")
        _check_types(entry, at)
        changes: dict[str, Any] = {
            k: (tuple(v) if k == "examples" else v) for k, v in entry.items() if k != "id"
        }
        old = dimensions.get(entry["id"])
        if old is None:
            missing = [k for k in _REQUIRED_NEW if k not in entry]
            if missing:
                raise BuildError(f"{at}: a new dimension needs {missing[0]!r}")
            if entry.get("weight") is None and entry.get("eval_count") is None:
                raise BuildError(f"{at}: a new dimension needs a 'weight' (how often it is drawn)")
            dimensions[entry["id"]] = Dimension(id=entry["id"], **changes)
        else:
            dimensions[entry["id"]] = replace(old, **changes)
    removed = raw.get("remove") or []
    if not isinstance(removed, list) or not all(isinstance(r, str) for r in removed):
        raise BuildError(f"{where}: 'remove' must be a list of dimension ids")
    for rid in removed:
        if rid not in dimensions:
            raise BuildError(f"{where}: 'remove' names unknown dimension {rid!r}")
        del dimensions[rid]
    for dim in dimensions.values():
        if dim.category not in categories:
            raise BuildError(f"{where}: dimension {dim.id!r} names unknown category {dim.category!r}")
    labels: dict[str, str] = {}
    for dim in dimensions.values():
        if dim.zh in labels:
            raise BuildError(
                f"{where}: dimensions {labels[dim.zh]!r} and {dim.id!r} share the label {dim.zh!r}"
            )
        labels[dim.zh] = dim.id
    if not dimensions or not any(d.sampling_weight > 0 for d in dimensions.values()):
        raise BuildError(f"{where}: no dimension left with a positive weight")
    version = raw.get("version", base.version if base else "")
    if not isinstance(version, str) or not version:
        raise BuildError(f"{where}: 'version' must be a non-empty string")
    if base is not None and "version" not in raw:
        version = f"{base.version}+{path.stem}"
    sources = (*(base.sources if base else ()), str(path))
    return Taxonomy(version, categories, dimensions, sources)


def load_taxonomy(user_file: str | Path | None = None) -> Taxonomy:
    """The packaged taxonomy, with ``user_file`` merged on top when given."""
    taxonomy = _merge(None, _read_yaml(PACKAGED), PACKAGED)
    if user_file is not None:
        path = Path(user_file)
        taxonomy = _merge(taxonomy, _read_yaml(path), path)
    return taxonomy


def taxonomy_to_yaml(taxonomy: Taxonomy) -> str:
    """The whole taxonomy (user changes applied) in the packaged file's shape; a build keeps a copy."""
    data = {
        "version": taxonomy.version,
        "categories": [asdict(c) for c in taxonomy.categories.values()],
        "dimensions": [
            {k: (list(v) if k == "examples" else v) for k, v in asdict(d).items() if v is not None}
            for d in taxonomy.dimensions.values()
        ],
    }
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def taxonomy_from_snapshot(path: str | Path) -> Taxonomy:
    """A taxonomy written by ``taxonomy_to_yaml`` (not merged onto the packaged one)."""
    path = Path(path)
    return _merge(None, _read_yaml(path), path)
