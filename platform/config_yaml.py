"""Reading config YAML safely: no object construction, no duplicate keys, bounded size.

YAML anchors and aliases share one node, so a short file can stand for an exponentially large
document ("billion laughs"): the node graph is measured as if every alias were expanded before
anything is built from it, and refused past :data:`MAX_NODES` nodes or :data:`MAX_DEPTH` levels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from neurocomm.platform.errors import ConfigError

MAX_NODES = 100_000  # scalars, lists and mappings after expanding every alias
MAX_DEPTH = 64  # nesting levels
MAX_BYTES = 10 * 2**20  # a config file's size


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads YAML 1.2 floats such as 1e-3."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_size(root: yaml.Node) -> str | None:
    """Why the document is too large once aliases are expanded, or None.

    Sizes are memoised per node, so a bomb is measured in time linear in its *unexpanded* size;
    a node reached again while it is being measured is a recursive alias."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    active: set[int] = set()
    # iterative post-order walk: a deeply nested document must not exhaust Python's stack
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            kids = _children(node)
            sizes[key] = 1 + sum(sizes[id(k)] for k in kids)
            depths[key] = 1 + max((depths[id(k)] for k in kids), default=0)
            active.discard(key)
            if sizes[key] > MAX_NODES:
                return f"the document expands to more than {MAX_NODES} values (YAML aliases?)"
            if depths[key] > MAX_DEPTH:
                return f"the document is nested deeper than {MAX_DEPTH} levels"
            continue
        if key in sizes:
            continue
        if key in active:
            return "a YAML alias refers to a node that contains it (recursive document)"
        active.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in sizes)
    return None


def parse_yaml(text: str, source: str) -> Any:
    """The plain data of a YAML document; ConfigError (one line) for anything unsafe or invalid."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"the document is larger than {MAX_BYTES // 2**20} MB", source=source)
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        problem = _check_size(node)
        if problem:
            raise ConfigError(problem, source=source)
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as err:
        where = f" (line {err.problem_mark.line + 1})" if err.problem_mark else ""
        problem = err.problem or "cannot construct"
        if "could not determine a constructor" in problem:
            problem = "YAML tags that construct objects are not allowed" + (
                f": {problem.split('tag ')[-1]}" if "tag " in problem else ""
            )
        raise ConfigError(f"{problem}{where}", source=source) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"YAML syntax error{where}: {problem}", source=source) from None
    except RecursionError:
        # PyYAML's composer recurses once per nesting level
        raise ConfigError(f"the document is nested deeper than {MAX_DEPTH} levels",
                          source=source) from None
    finally:
        loader.dispose()


def load_mapping(path: str | Path) -> dict[str, Any]:
    source = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"the file is larger than {MAX_BYTES // 2**20} MB", source=source)
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", source=source) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read file ({err.__class__.__name__})", source=source) from None
    data = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"the file must hold a mapping of sections, not {type(data).__name__}", source=source
        )
    return _resolve_relative_files(dict(data), Path(path).parent)


def _resolve_relative_files(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    # A config names its graph file as written next to it; resolved here, the run works from any
    # working directory and the run folder's copy of the config names the file absolutely.
    topology = data.get("topology")
    if isinstance(topology, Mapping) and isinstance(topology.get("file"), str):
        file = Path(topology["file"]).expanduser()
        if not file.is_absolute():
            data["topology"] = {**topology, "file": str((folder / file).resolve())}
    return data
