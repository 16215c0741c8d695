"""Read codefresh.yml into plain Python data while keeping every position.

Codefresh lets `${{VAR}}` stand unquoted anywhere a scalar may, also inside
flow collections (`tags: [ latest, ${{CF_BRANCH}} ]`), where YAML would read
the braces as a mapping.  Before parsing, every `${{` and `}}` of a variable
reference is swapped for two private-use characters of the same length, so
line and column numbers stay true; after parsing they are swapped back in every
string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flows.errors import Location, PipelineFileError, Problem

_OPEN, _CLOSE = "\ue000\ue001", "\ue002\ue003"
_VARIABLE = re.compile(r"\$\{\{([^{}\n]*)\}\}")
_TAB_INDENT = re.compile(r"^( *)\t", re.MULTILINE)

Path_ = tuple[str | int, ...]


@dataclass
class Source:
    """Parsed YAML data with the location of every key and value in it."""

    file: str
    data: object
    positions: dict[Path_, Location] = field(default_factory=dict)
    key_positions: dict[Path_, Location] = field(default_factory=dict)

    def where(self, path: Path_) -> Location | None:
        """The location of the value at `path`, or of its nearest parent."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return None

    def where_key(self, path: Path_) -> Location | None:
        """The location of the key that ends `path` (falls back to the value)."""
        return self.key_positions.get(path) or self.where(path)


def load_file(path: Path) -> Source:
    """Read and parse a pipeline file; raise PipelineFileError when unreadable."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(name, f"file {name!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(name, f"cannot read {name!r}: {exc}") from None
    return load_text(text, name)


def load_text(text: str, name: str = "<string>") -> Source:
    """Parse YAML text; `name` is used in locations."""
    tab = _TAB_INDENT.search(text)
    if tab is not None:
        line = text.count("\n", 0, tab.start()) + 1
        column = len(tab.group(1)) + 1
        raise PipelineFileError(
            [
                Problem(
                    "a tab is used for indentation; YAML allows only spaces, "
                    "replace the tabs with spaces",
                    Location(name, line, column),
                )
            ]
        )

    shielded = _VARIABLE.sub(lambda m: f"{_OPEN}{m.group(1)}{_CLOSE}", text)
    loader = yaml.SafeLoader(shielded)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _fail(
                name, "the file is empty; a pipeline needs `version` and `steps`"
            )
        source = Source(name, None)
        source.data = _Builder(loader, source).build(node, ())
        return source
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(name, mark.line + 1, mark.column + 1) if mark else None
        reason = _restore(str(exc.problem or exc.context or "invalid YAML"))
        raise PipelineFileError(
            [
                Problem(
                    f"invalid YAML: {reason}; check the quoting and indentation", where
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise _fail(name, f"invalid YAML: {_restore(str(exc))}") from None
    finally:
        loader.dispose()


def _fail(name: str, message: str) -> PipelineFileError:
    return PipelineFileError([Problem(message, Location(name, 1, 1))])


def _restore(text: str) -> str:
    return text.replace(_OPEN, "${{").replace(_CLOSE, "}}")


def _scalar(node: ScalarNode) -> str | None:
    # Scalars stay text (YAML 1.2 reads `yes` and `1.10` as Codefresh does:
    # a string, and a tag that is not 1.1); the models coerce numbers and
    # booleans where a field wants them.  Only a plain null is not text.
    if node.style is None and node.tag == "tag:yaml.org,2002:null":
        return None
    return _restore(node.value)


def _location(source: Source, node: Node) -> Location:
    return Location(source.file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns composed YAML nodes into data, recording positions by path."""

    def __init__(self, loader: yaml.SafeLoader, source: Source) -> None:
        self._loader: SafeConstructor = loader
        self._source = source

    def build(self, node: Node, path: Path_) -> object:
        self._source.positions[path] = _location(self._source, node)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return _scalar(node)

    def _mapping(self, node: MappingNode, path: Path_) -> dict[str, object]:
        self._loader.flatten_mapping(node)  # resolves `<<:` merge keys
        result: dict[str, object] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise ConstructorError(
                    None,
                    None,
                    "a mapping key must be a plain value",
                    key_node.start_mark,
                )
            key = str(_scalar(key_node))
            child = (*path, key)
            if key in result:
                raise ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            self._source.key_positions[child] = _location(self._source, key_node)
            result[key] = self.build(value_node, child)
        return result
