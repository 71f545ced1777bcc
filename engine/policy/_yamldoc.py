"""YAML documents read exactly as a reviewer reads them, remembering where each key came from.

A reviewer reads a policy file top to bottom and believes what is written. Three YAML features
let a file say something other than what the reviewer sees, so they are refused with the file
and line: a key written twice in one mapping (a parser keeps the last; the reviewer saw the
first), anchors and aliases (a ``*ref`` expands text written elsewhere — and a "billion laughs"
file expands to gigabytes), and ``<<`` merge keys (values copied in from elsewhere). The node
tree is checked before anything is constructed, in time linear in the file's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slmgate.evidence.errors import InputError

KeyPath = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it (about 10x faster), the pure-Python one if not.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Numbers a policy may hold: finite, and no larger than a float holds exactly as an integer
# (2**53), so Python, JSON and Rego all compare the number the reviewer read.
MAX_MAGNITUDE = 2**53


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    data: Any
    lines: dict[KeyPath, int]  # key path -> 1-based line

    def line_of(self, key_path: KeyPath) -> int | None:
        """The line of ``key_path`` or of its nearest ancestor that exists."""
        for n in range(len(key_path), -1, -1):
            if key_path[:n] in self.lines:
                return self.lines[key_path[:n]]
        return None

    def where(self, key_path: KeyPath) -> str:
        line = self.line_of(key_path)
        return f"{self.path}:{line}" if line else str(self.path)


def _dotted(path: KeyPath) -> str:
    return ".".join(str(k) for k in path)


class _Indexer:
    """One walk over the node tree: lines of every key path, and the refusals above. A node met
    twice is an alias (the composer shares the anchored node), so the walk stops there at once."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.lines: dict[KeyPath, int] = {}
        self.seen: set[int] = set()

    def refuse(self, line: int, message: str, key_path: KeyPath, advice: str) -> None:
        raise InputError(message, file=f"{self.source}:{line}", field=_dotted(key_path) or None,
                         advice=advice)

    def walk(self, node: yaml.Node, path: KeyPath, line: int) -> None:
        if id(node) in self.seen:  # backstop: _refuse_aliases already saw every alias
            self.refuse(line, "an alias (*name) repeats an anchored value; anchors and aliases "
                        "are not allowed in policy files", path,
                        "write the value out in full where it applies, so a reviewer reads it there")
        self.seen.add(id(node))
        self.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key, value in node.value:
                key_line = key.start_mark.line + 1
                if key.tag == _MERGE_TAG:
                    self.refuse(key_line, "a merge key (<<) copies values from elsewhere; merge "
                                "keys are not allowed in policy files", path,
                                "write every key out in this mapping")
                k = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                if k in first:
                    self.refuse(key_line, f"duplicate key {k!r}: written at line {first[k]} and "
                                f"again at line {key_line}; a parser would silently keep only the "
                                "second", (*path, k), "keep exactly one of them")
                first[k] = key_line
                self.lines[(*path, k)] = key_line
                self.walk(value, (*path, k), key_line)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.lines[(*path, i)] = item.start_mark.line + 1
                self.walk(item, (*path, i), item.start_mark.line + 1)

    def walk_root(self, node: yaml.Node) -> None:
        self.walk(node, (), node.start_mark.line + 1)


def _refuse_aliases(text: str, source: Path) -> None:
    """A first pass over the parser's events (linear, nothing built): the first alias is refused
    at its own line (the composed node would carry the anchor's)."""
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            raise InputError(f"an alias (*{event.anchor}) repeats an anchored value; anchors and "
                             "aliases are not allowed in policy files",
                             file=f"{source}:{event.start_mark.line + 1}",
                             advice="write the value out in full where it applies, so a reviewer "
                                    "reads it there")


def _check_numbers(data: Any, path: KeyPath, doc: YamlDocument) -> None:
    """Refuse ``.nan``, ``.inf`` and numbers beyond ``MAX_MAGNITUDE``, naming file and key."""
    if isinstance(data, dict):
        for k, v in data.items():
            _check_numbers(v, (*path, k), doc)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _check_numbers(v, (*path, i), doc)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        if isinstance(data, float) and not math.isfinite(data):
            raise InputError(f"{data} is not a finite number", file=doc.where(path),
                             field=_dotted(path), advice="write a finite number")
        if abs(data) > MAX_MAGNITUDE:
            raise InputError(f"{data:g} is out of range: policy numbers are at most "
                             f"{MAX_MAGNITUDE} in magnitude", file=doc.where(path),
                             field=_dotted(path))


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path`` as one YAML document; ``InputError`` naming file and line for a syntax
    error, a duplicate key, an alias, a merge key or a non-finite or out-of-range number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("file not found", file=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read ({exc})", file=str(path)) from exc
    loader = _Loader(text)
    indexer = _Indexer(path)
    try:
        _refuse_aliases(text, path)
        # one parse: the node tree is checked and gives the lines, the same tree gives the data
        node = loader.get_single_node()
        if node is not None:
            indexer.walk_root(node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=where) from exc
    finally:
        loader.dispose()
    doc = YamlDocument(path, data if data is not None else {}, indexer.lines)
    _check_numbers(doc.data, (), doc)
    return doc
