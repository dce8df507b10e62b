"""Training data: the three accepted file formats, normalised to quadruples, pairs or SFT examples.

Formats (detected from the keys of each row, or named with ``data_format``):

``iopo-upstream``  the released IOPO sample (``trace/iopo_train_format_sample.json``, a JSON list)::

    {"conversations": [{"from": "human", "value": X1}, {"from": "human", "value": X2}],
     "chosen": {"from": "gpt", "value": Y1}, "rejected": {"from": "gpt", "value": Y2}, "system": optional}

  The conversation list is split in half: the first half is x1, the second x2 (LLaMA-Factory's intent;
  its sharegpt aligner drops such rows as "Invalid role tag", protocols.md §1.7 (b), so we read them here).
  Each half may hold several turns (human/gpt alternating) and must end with a human turn.

``quadruple``  one JSON object per line (JSONL), this project's own format::

    {"id": "q1", "x1": "..." | [messages], "x2": "..." | [messages], "y1": "...", "y2": "...",
     "system": "optional system prompt"}

  y1 follows x1 and not x2; y2 follows x2 and not x1.

``pairs``  TRL's preference rows: ``{"prompt": str | [messages], "chosen": str | [messages],
  "rejected": str | [messages]}`` (conversational ``chosen``/``rejected`` hold one assistant message).

``sft``  ``{"messages": [...]}`` (the last message is the assistant target) or ``{"prompt", "completion"}``.

Containers: rows in any of these formats come from a ``.json`` list, a ``.jsonl`` file, a ``.parquet`` file
(``train build-data`` writes ``hf/iopo.parquet``, ``hf/dpo.parquet``, ``hf/sft.parquet``), a folder holding one
parquet file, or a folder written by ``datasets``' ``save_to_disk`` (a ``DatasetDict`` gives its ``train`` split,
or its only split).

Every malformed row raises ``TrainingDataError`` naming the file and the row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iopo_eval.data.store import DataError, sha256_of

Messages = list[dict[str, str]]
FORMATS = ("auto", "iopo-upstream", "quadruple", "pairs", "sft")
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class TrainingDataError(DataError):
    """A training file or row is malformed; the message names the file and the row."""


@dataclass
class Quadruple:
    """(x1, y1, x2, y2): y1 follows x1 and not x2, y2 follows x2 and not x1."""

    x1: Messages
    x2: Messages
    y1: str
    y2: str
    id: str = ""


@dataclass
class PreferencePair:
    prompt: Messages
    chosen: str
    rejected: str
    id: str = ""


@dataclass
class SFTExample:
    prompt: Messages
    response: str
    id: str = ""


Example = Quadruple | PreferencePair | SFTExample


def _fail(where: str, msg: str) -> TrainingDataError:
    return TrainingDataError(f"{where}: {msg}")


def _text(value: Any, where: str, name: str) -> str:
    if isinstance(value, dict) and "value" in value:  # sharegpt turn {"from": "gpt", "value": ...}
        value = value["value"]
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):  # [{"role": "assistant"}]
        msg = value[0]
        if msg.get("role") not in (None, "assistant"):
            raise _fail(where, f"{name} must be one assistant message, got role {msg.get('role')!r}")
        value = msg.get("content")
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"{name} must be a non-empty string, got {type(value).__name__} {value!r:.60}")
    return value


def _messages(value: Any, where: str, name: str, system: str | None = None) -> Messages:
    if isinstance(value, str):
        if not value.strip():
            raise _fail(where, f"{name} is empty")
        msgs = [{"role": "user", "content": value}]
    elif isinstance(value, list) and value:
        msgs = []
        for i, m in enumerate(value):
            if not isinstance(m, dict):
                raise _fail(where, f"{name}[{i}] must be a message object, got {type(m).__name__}")
            role = _ROLES.get(str(m.get("role", m.get("from", ""))))
            content = m.get("content", m.get("value"))
            if role is None or not isinstance(content, str):
                raise _fail(
                    where, f"{name}[{i}] needs a role (user/assistant/system) and string content: {m!r:.80}"
                )
            msgs.append({"role": role, "content": content})
    else:
        raise _fail(where, f"{name} must be a string or a non-empty list of messages, got {value!r:.60}")
    if msgs[-1]["role"] != "user":
        raise _fail(where, f"{name} must end with a user turn, ends with {msgs[-1]['role']!r}")
    if system and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def _system(row: dict[str, Any], where: str) -> str | None:
    system = row.get("system")
    if system is not None and not isinstance(system, str):
        raise _fail(where, f"system must be a string, got {type(system).__name__}")
    return system or None


def detect_format(row: dict[str, Any]) -> str:
    keys = set(row)
    if "conversations" in keys:
        return "iopo-upstream"
    if keys & {"x1", "x2"}:
        return "quadruple"
    if keys & {"chosen", "rejected"}:
        return "pairs"
    if "messages" in keys or {"prompt", "completion"} <= keys:
        return "sft"
    return "unknown"


def _parse_upstream(row: dict[str, Any], where: str) -> Quadruple:
    conv = row.get("conversations")
    if not isinstance(conv, list) or len(conv) < 2 or len(conv) % 2:
        raise _fail(
            where, "conversations must be a list of an even number (>= 2) of turns: x1's half, then x2's"
        )
    half = len(conv) // 2
    system = _system(row, where)
    x1 = _messages(conv[:half], where, "conversations (first half, x1)", system)
    x2 = _messages(conv[half:], where, "conversations (second half, x2)", system)
    for key in ("chosen", "rejected"):
        if key not in row:
            raise _fail(where, f"missing {key!r}")
    y1 = _text(row["chosen"], where, "chosen (y1)")
    y2 = _text(row["rejected"], where, "rejected (y2)")
    return Quadruple(x1, x2, y1, y2, str(row.get("id", "")))


def _parse_quadruple(row: dict[str, Any], where: str) -> Quadruple:
    system = _system(row, where)
    q = Quadruple(
        _messages(row["x1"], where, "x1", system),
        _messages(row["x2"], where, "x2", system),
        _text(row["y1"], where, "y1"),
        _text(row["y2"], where, "y2"),
        str(row.get("id", "")),
    )
    if q.x1 == q.x2:
        raise _fail(where, "x1 and x2 are the same instruction; IOPO needs two different inputs")
    if q.y1 == q.y2:
        raise _fail(where, "y1 and y2 are the same response")
    return q


def _parse_pair(row: dict[str, Any], where: str) -> PreferencePair:
    system = _system(row, where)
    return PreferencePair(
        _messages(row["prompt"], where, "prompt", system),
        _text(row["chosen"], where, "chosen"),
        _text(row["rejected"], where, "rejected"),
        str(row.get("id", "")),
    )


def _parse_sft(row: dict[str, Any], where: str) -> SFTExample:
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or len(msgs) < 2 or not isinstance(msgs[-1], dict):
            raise _fail(where, "messages must list the prompt turns and end with the assistant target")
        if msgs[-1].get("role") != "assistant":
            raise _fail(where, f"the last message must be the assistant target, got {msgs[-1].get('role')!r}")
        return SFTExample(
            _messages(msgs[:-1], where, "messages", _system(row, where)),
            _text(msgs[-1].get("content"), where, "messages[-1].content"),
            str(row.get("id", "")),
        )
    return SFTExample(
        _messages(row["prompt"], where, "prompt", _system(row, where)),
        _text(row["completion"], where, "completion"),
        str(row.get("id", "")),
    )


_PARSERS: dict[str, Callable[[dict[str, Any], str], Example]] = {
    "iopo-upstream": _parse_upstream,
    "quadruple": _parse_quadruple,
    "pairs": _parse_pair,
    "sft": _parse_sft,
}


def read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(row label, row object) from a training file or dataset folder; labels say which file and row."""
    path = Path(path)
    if path.is_dir():
        rows = _folder_rows(path)
    elif not path.is_file():
        raise TrainingDataError(f"{path}: no such training file or dataset folder")
    elif path.suffix == ".parquet":
        rows = _parquet_rows(path)
    else:
        rows = _json_rows(path)
    for where, row in rows:
        if not isinstance(row, dict):
            raise TrainingDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if not rows:
        raise TrainingDataError(f"{path}: no rows")
    return rows


def _json_rows(path: Path) -> list[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path}: not UTF-8 ({exc})") from exc
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{path}: not valid JSON ({exc})") from exc
        return [(f"{path} row {i}", r) for i, r in enumerate(data)]
    rows: list[tuple[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path} line {lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{path} line {lineno}: not valid JSON ({exc})") from exc
    return rows


def _parquet_rows(path: Path) -> list[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TrainingDataError(f"{path}: not a readable parquet file ({exc})") from exc
    return [(f"{path} row {i}", r) for i, r in enumerate(table.to_pylist())]


def _folder_rows(path: Path) -> list[tuple[str, Any]]:
    """A ``save_to_disk`` folder (Dataset or DatasetDict), or a folder with exactly one parquet file."""
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        import datasets

        try:
            loaded = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as exc:
            raise TrainingDataError(f"{path}: not a readable saved dataset ({exc})") from exc
        label = str(path)
        if isinstance(loaded, datasets.DatasetDict):
            splits = sorted(loaded)
            split = "train" if "train" in loaded else splits[0] if len(splits) == 1 else None
            if split is None:
                raise TrainingDataError(
                    f"{path}: a DatasetDict with splits {', '.join(splits)} and no 'train': "
                    f"give the split's folder, e.g. {path / splits[0]}"
                )
            loaded, label = loaded[split], f"{path} split {split}"
        return [(f"{label} row {i}", r) for i, r in enumerate(loaded.to_list())]
    parquets = sorted(path.glob("*.parquet"))
    if len(parquets) == 1:
        return _parquet_rows(parquets[0])
    if parquets:
        names = ", ".join(p.name for p in parquets)
        raise TrainingDataError(
            f"{path} holds {len(parquets)} parquet sets ({names}): give one as the training file, "
            f"e.g. {parquets[0]}"
        )
    raise TrainingDataError(
        f"{path}: a folder that is neither a saved dataset (save_to_disk) nor holds a parquet file"
    )


def source_sha256(path: str | Path) -> str:
    """sha256 of a training file's bytes, or of a dataset folder's files (relative names and bytes), so a
    run key changes when the data does. Cache files that ``datasets`` may add are left out."""
    path = Path(path)
    if not path.is_dir():
        return sha256_of(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("cache-", "."))):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def parse_rows(rows: Iterable[tuple[str, dict[str, Any]]], data_format: str = "auto") -> list[Example]:
    if data_format not in FORMATS:
        raise ValueError(f"unknown data_format {data_format!r}; choose one of {', '.join(FORMATS)}")
    out: list[Example] = []
    for where, row in rows:
        fmt = detect_format(row) if data_format == "auto" else data_format
        if fmt == "unknown":
            raise _fail(
                where,
                f"unrecognised row (keys {sorted(row)}); expected conversations/chosen/rejected, "
                "x1/x2/y1/y2, prompt/chosen/rejected, messages or prompt/completion",
            )
        try:
            out.append(_PARSERS[fmt](row, where))
        except KeyError as exc:
            raise _fail(where, f"missing key {exc.args[0]!r} for format {fmt!r}") from None
    return out


def load_examples(path: str | Path, data_format: str = "auto") -> list[Example]:
    return parse_rows(read_rows(Path(path)), data_format)


def as_quadruples(examples: list[Example]) -> list[Quadruple]:
    bad = next((e for e in examples if not isinstance(e, Quadruple)), None)
    if bad is not None:
        raise TrainingDataError(
            f"IOPO needs quadruples (two inputs and two responses per example); example {bad.id or '?'} is a "
            f"{type(bad).__name__}. Use the iopo-upstream or quadruple format."
        )
    return list(examples)  # type: ignore[arg-type]


def as_pairs(examples: list[Example]) -> list[PreferencePair]:
    """DPO pairs. A quadruple gives two: (x1; y1 ≻ y2) and (x2; y2 ≻ y1), so DPO sees the same
    sequences as IOPO and differs only in the loss."""
    out: list[PreferencePair] = []
    for e in examples:
        if isinstance(e, Quadruple):
            out.append(PreferencePair(e.x1, e.y1, e.y2, f"{e.id}/x1"))
            out.append(PreferencePair(e.x2, e.y2, e.y1, f"{e.id}/x2"))
        elif isinstance(e, PreferencePair):
            out.append(e)
        else:
            raise TrainingDataError(f"DPO needs preference data; example {e.id or '?'} is an SFT example")
    return out


def as_sft(examples: list[Example]) -> list[SFTExample]:
    """SFT targets: a quadruple gives (x1, y1) and (x2, y2); a pair gives (prompt, chosen)."""
    out: list[SFTExample] = []
    for e in examples:
        if isinstance(e, Quadruple):
            out.append(SFTExample(e.x1, e.y1, f"{e.id}/x1"))
            out.append(SFTExample(e.x2, e.y2, f"{e.id}/x2"))
        elif isinstance(e, PreferencePair):
            out.append(SFTExample(e.prompt, e.chosen, e.id))
        else:
            out.append(e)
    return out


def fingerprint(examples: Iterable[Example]) -> str:
    """sha256 of the normalised examples (order matters): names the training data in cards and caches."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(type(e).__name__.encode())
        digest.update(json.dumps(asdict(e), ensure_ascii=False, sort_keys=True).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def write_quadruples(path: str | Path, quads: Iterable[Quadruple]) -> int:
    """Write the JSONL quadruple format; returns the number of rows."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for q in quads:
            fh.write(
                json.dumps({"id": q.id, "x1": q.x1, "x2": q.x2, "y1": q.y1, "y2": q.y2}, ensure_ascii=False)
            )
            fh.write("\n")
            n += 1
    return n
