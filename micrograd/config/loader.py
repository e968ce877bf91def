"""Read a YAML config, apply ``--set`` overrides, validate, and explain errors.

Every problem becomes one ``ConfigError`` whose message lists each wrong key
by its full path and its line in the YAML file, with a "did you mean"
suggestion for unknown keys, so that the CLI can print it and exit 2.
"""
from __future__ import annotations

import copy

import difflib
import os
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .schema import Config

#: Config keys that name files or folders: relative values resolve against
#: the config file's folder (overrides typed on the command line: against the
#: current directory).
PATH_KEYS = {("data", "path"), ("data", "root"), ("output", "dir")}


class ConfigError(ValueError):
    """A config that cannot be used; the message says what, where, and what was expected."""


#: A config is a page of YAML; a bigger file is the wrong file, and is refused
#: before parsing.
MAX_CONFIG_BYTES = 1_000_000
#: Values the document may hold once its aliases (*name) are expanded. A real
#: config holds a few hundred; a few hundred bytes of nested aliases ("billion
#: laughs") expand to billions, which validation would walk one by one.
MAX_EXPANDED_VALUES = 100_000
#: Echoed values and keys are cut to this many characters, and a message lists
#: at most MAX_PROBLEMS problems: an error stays one readable paragraph.
MAX_ECHO = 80
MAX_PROBLEMS = 20


# ------------------------------------------------------------------ loading


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader that reads numbers as YAML 1.2 does.

    PyYAML implements YAML 1.1, whose float pattern needs a dot, so ``1e-3``
    was the string '1e-3' (and strict validation then refused it), and whose
    integers hold surprises: ``010`` is octal 8, ``1_000`` and ``1:30`` are
    numbers. YAML 1.2 (the JSON-compatible core schema) reads ``1e-3``,
    ``.5e-2`` and ``010`` (ten) as numbers and the others as strings, which
    validation refuses with a message rather than taking another value.
    Quoted scalars stay strings either way.
    """


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# Integers are tried first: the float pattern matches them too.
ConfigLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
ConfigLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    try:
        if text[:2] in ("0o", "0x"):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text)  # decimal, also with leading zeros: 010 is ten
    except ValueError:  # an explicit !!int tag on a non-number, or thousands of digits
        raise yaml.constructor.ConstructorError(
            None, None, f"{_short(text)} is not a usable integer", node.start_mark) from None


ConfigLoader.add_constructor(_INT, _construct_int)


def _short(text: str, limit=MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _read_config(path: Path) -> str:
    """The config file's text; ConfigError for a folder, a huge file or non-UTF-8 bytes."""
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file (expected a YAML file).")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (expected a YAML file).")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}.") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the file is over {MAX_CONFIG_BYTES // 1_000_000} MB; a "
                          "config is a few KB of YAML (is this the right file?).")
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is fine
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{path}, line {line}, column {column}: byte 0x{raw[exc.start]:02x} (at byte "
            f"{exc.start}) is not UTF-8; configs are read as UTF-8 text: save the file as "
            "UTF-8.") from None


def _yaml_tree(text: str, source: str, lines=True, prefix=()):
    """Parse YAML into (plain data, node tree) — the nodes carry line numbers.

    Refuses duplicate keys and alias expansions beyond MAX_EXPANDED_VALUES
    before any Python object is built; raises yaml.YAMLError for malformed
    YAML. ``lines=False`` leaves line numbers out of messages and ``prefix``
    is the key path above the text (a --set value).
    """
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_tree(node, source, lines, prefix)
        return loader.construct_document(node), node
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply to be a config.") from None
    finally:
        loader.dispose()


def _check_tree(root, source: str, lines: bool, prefix=()) -> None:
    """Refuse duplicate keys, recursive aliases and alias bombs in a composed tree.

    An alias is the very node its anchor names, so the tree is a graph: each
    node is checked once, and its expanded size (what validation would walk)
    is computed once from its children's.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node, path) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ConfigError(f"{source}{_at(node, lines)}: a recursive alias (a value that "
                              "contains itself); a config cannot hold one.")
        open_.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                # Merge keys (<<) may repeat; keys they bring in may be overridden.
                if name is not None and key_node.tag != "tag:yaml.org,2002:merge":
                    here, ident = key_node.start_mark.line + 1, (key_node.tag, name)
                    if ident in seen:
                        dotted = _short(".".join(map(str, path + [name])))
                        where = f" at lines {seen[ident]} and {here}" if lines else ""
                        raise ConfigError(
                            f"{source}: duplicate key '{dotted}'{where}; a key may appear "
                            "only once (YAML would silently keep the last).")
                    seen[ident] = here
                total += size(key_node, path) + size(value_node, path + [name])
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, path + [i]) for i, item in enumerate(node.value))
        if total > MAX_EXPANDED_VALUES:
            raise ConfigError(
                f"{source}: holds more than {MAX_EXPANDED_VALUES:,} values once its aliases "
                "(*name) are expanded, far more than a config needs; refused.")
        open_.discard(key)
        sizes[key] = total
        return total

    size(root, list(prefix))


def _at(node, lines: bool) -> str:
    return f", line {node.start_mark.line + 1}" if lines else ""


def _yaml_problem(exc: yaml.YAMLError, text: str, source: str) -> str:
    """A malformed-YAML message with the line and column where the parser gave up."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: it has a position
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return (f"{source} (line {line}, column {column}): malformed YAML: character "
                f"{exc.character!r} is not allowed in a YAML file.")
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{source}{where}: malformed YAML: {_short(problem, 2 * MAX_ECHO)}."


def _line_of(node, loc) -> int | None:
    """Line (1-based) of the key at ``loc`` in a composed YAML node tree; the
    deepest existing ancestor's line when the key itself is absent."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            # The last match: a key written out overrides one a merge (<<) brought
            # in, and the merged pairs come first (keys are otherwise unique).
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                # A union's tag (pydantic puts the variant's name in the path): skip it.
                continue
            line, node = match[-1][0].start_mark.line + 1, match[-1][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _parse_override(text: str):
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set optimizer.lr=0.01.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: the key before '=' is empty.")
    parts = [int(p) if p.isdigit() else p for p in key.split(".")]
    try:
        value = _yaml_tree(raw, f"--set {_short(text)}", lines=False, prefix=parts)[0] \
            if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def _apply_override(data: dict, parts, value, text):
    node = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise ConfigError(f"--set {text}: {'.'.join(map(str, parts[:i + 1]))} is not "
                                  f"an item of a list of {len(node)}.")
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {text}: {'.'.join(map(str, parts[:i]))} is not a section.")
        if isinstance(node.get(part), str) and isinstance(parts[i + 1], str):
            node[part] = {"type": node[part]}  # `loss: mse` shorthand, now with options
        node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise ConfigError(f"--set {text}: no list item {last}.")
    elif not isinstance(node, dict):
        raise ConfigError(f"--set {text}: {'.'.join(map(str, parts[:-1]))} is not a section.")
    node[last] = value


#: ``${NAME}`` in a path value is the environment variable NAME (only the braced
#: form, so that a ``$`` in a file name stays itself).
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

#: What each documented variable should point at, for the message when it is unset.
ENV_HINTS = {
    "MICROGRAD_DATA": "the folder holding your data sets (house-prices/train.csv, "
                      "sentiment/*.txt, mnist/ ...), e.g. `export MICROGRAD_DATA=~/data`; "
                      "in a checkout beside the development data, "
                      "`export MICROGRAD_DATA=../shared/data`",
}


def _expand(value: str, where: str, source: str) -> tuple[str, bool]:
    """``value`` with each ``${NAME}`` replaced by the environment variable; whether
    any was. An unset or empty variable is a ConfigError naming it."""
    def replace(match):
        name = match.group(1)
        found = os.environ.get(name)
        if not found:
            hint = ENV_HINTS.get(name, "the folder it stands for")
            raise ConfigError(
                f"{source}: {where} is {_short(value)!r}, but the environment variable "
                f"{name} is not set. Set it to {hint}; or give {where} as a path."
            )
        return found

    return ENV_REFERENCE.sub(replace, value), bool(ENV_REFERENCE.search(value))


def _resolve(value: str, base: Path, where: str, source: str) -> str:
    """A path value made absolute: ``${VAR}`` expanded (a relative result is relative
    to the current folder, as in the shell), ``~`` expanded, the rest against base."""
    value, from_env = _expand(value, where, source)
    return str(((Path.cwd() if from_env else base) / Path(value).expanduser()).resolve())


def _resolve_paths(data: dict, base: Path, only=None, source: str = "config"):
    for section, key in PATH_KEYS:
        sec = data.get(section)
        if not isinstance(sec, dict) or not isinstance(sec.get(key), (str, list)):
            continue
        if only is not None and (section, key) not in only:
            continue
        value, where = sec[key], f"{section}.{key}"
        if isinstance(value, list):
            sec[key] = [_resolve(v, base, where, source) if isinstance(v, str) else v
                        for v in value]
        else:
            sec[key] = _resolve(value, base, where, source)


def read_yaml(path):
    """A config-like YAML file as (plain data, node tree with line numbers), with this
    loader's checks (size, encoding, duplicate keys, aliases); ConfigError otherwise."""
    text = _read_config(path)
    try:
        return _yaml_tree(text, str(path))
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(exc, text, str(path))) from None


def _read_layers(path: Path, seen=()) -> tuple[dict, list]:
    """A config file merged over the file it ``extends`` (and so on): the merged data,
    and one (file, node tree, its own data) per file, the file itself first, so that
    an error names the file and line where the key came from. Relative paths in
    each file resolve against that file's own folder."""
    data, tree = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping with sections data, model, loss, optimizer, train; "
            f"got {type(data).__name__ if data is not None else 'an empty file'}."
        )
    _resolve_paths(data, path.resolve().parent, source=str(path))
    own = copy.deepcopy(data)
    base = data.pop("extends", None)
    layers = [(str(path), tree, own)]
    if base is None:
        return data, layers
    line = _line_of(tree, ("extends",))
    at = f"{path}, line {line}" if line else str(path)
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"extends [{at}]: expected the name of a base config file (a path "
                          f"relative to {path.parent or '.'}), got {_short(repr(base))}")
    base_path = (path.parent / Path(base).expanduser())
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ConfigError(f"extends [{at}]: {base} extends itself, directly or through "
                          f"another file")
    if not base_path.is_file():
        raise ConfigError(f"extends [{at}]: the base config {base_path} does not exist")
    merged, base_layers = _read_layers(base_path, (*seen, path.resolve()))
    return _deep_merge(merged, data), layers + base_layers


def _deep_merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else (a list of
    layers, a number) is replaced whole."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path, overrides=()) -> Config:
    """Read, override and validate a config file (merged over the base config it
    ``extends``, if any); raise ConfigError on any problem."""
    path = Path(path)
    data, tree = _read_layers(path)
    overridden = set()
    for text_ in overrides:
        parts, value = _parse_override(text_)
        _apply_override(data, parts, value, text_)
        overridden.add(tuple(parts))
        if tuple(parts) in PATH_KEYS:
            _resolve_paths(data, Path.cwd(), only={tuple(parts)}, source=f"--set {text_}")
    return validate(data, source=str(path), tree=tree, overridden=overridden)


def validate(data: dict, source="config", tree=None, overridden=frozenset()) -> Config:
    """Validate plain data as a Config; ConfigError lists every problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, data, source, tree, overridden)) from None


# ------------------------------------------------------------------ messages


def _dotted(loc, data) -> str:
    """The user's key path: pydantic's union tags (variant names) removed."""
    parts, node = [], data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue  # a union's tag such as 'synthetic' or 'linear'
        parts.append(str(part))
        node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
    return ".".join(parts)


def _has(node, part):
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and part < len(node)


def _fields_at(loc) -> list[str]:
    """Field names of the model that the key at ``loc`` belongs to."""
    tp: Any = Config
    for part in loc[:-1]:
        tp = _unwrap(tp)
        if isinstance(tp, list):  # a union: the part is a variant's tag
            tp = next((m for m in tp if part in _tags(m)), None)
            if tp is None:
                return []
            continue
        if isinstance(part, int):
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _unwrap(tp):
    """Annotated/Optional/list peeled off; a union of models becomes a list of them."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
            else:
                return [a for a in (_unwrap(a) for a in args) if isinstance(a, type)]
        elif origin is list:
            tp = typing.get_args(tp)[0]
        else:
            return tp


def _tags(model) -> set:
    field = model.model_fields.get("type")
    return set(typing.get_args(field.annotation)) if field else set()


def _origin(tree, loc, source):
    """(file, line) of the key at ``loc``: ``tree`` is one node tree, or the layers of
    a config that extends others (the first file that holds the key names it)."""
    if tree is None:
        return source, None
    if not isinstance(tree, list):
        return source, _line_of(tree, loc)
    for file, node, own in tree:
        if _holds(own, loc):
            return file, _line_of(node, loc)
    file, node, _ = tree[0]
    return file, _line_of(node, loc)


def _holds(data, loc) -> bool:
    """Whether plain config data holds the key at ``loc`` (union tags skipped)."""
    node = data
    for part in loc:
        if isinstance(node, dict):
            if part in node:
                node = node[part]
            elif node.get("type") != part:
                return False
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def format_errors(exc: ValidationError, data, source: str, tree=None,
                  overridden=frozenset()) -> str:
    """One line per problem: key path, file and line (or --set), what was expected."""
    lines, errors = [], exc.errors()
    for err in errors:
        loc = err["loc"]
        where = _dotted(loc, data)
        origin, line = _origin(tree, loc, source)
        from_set = any(tuple(where.split("."))[:len(o)] == tuple(map(str, o)) for o in overridden)
        at = f"{origin}, line {line}" if line and not from_set else (
            "--set" if from_set else origin)
        msg = err["msg"]
        kind = err["type"]
        if kind == "extra_forbidden":
            key = _short(str(loc[-1]))
            close = difflib.get_close_matches(key, _fields_at(loc), n=1, cutoff=0.6)
            allowed = _fields_at(loc)
            msg = f"unknown key '{key}'"
            if close:
                msg += f" — did you mean '{close[0]}'?"
            elif allowed:
                msg += f" (expected one of: {', '.join(allowed)})"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "union_tag_invalid":
            given = _short(str(err["ctx"].get("tag", "")))
            tags = [t.strip(" '") for t in str(err["ctx"].get("expected_tags", "")).split(",")]
            close = difflib.get_close_matches(given, tags, n=1, cutoff=0.6)
            msg = f"unknown type {given!r}" + (
                f" — did you mean '{close[0]}'?" if close else f"; {_expected_tags(err)}")
        elif kind == "value_error":
            msg = str(err["ctx"]["error"]) if "ctx" in err else msg.removeprefix("Value error, ")
        elif kind == "union_tag_not_found":
            msg = "needs a 'type' key; " + _expected_tags(err)
        elif "input" in err and kind not in ("model_type", "dict_type"):
            msg += f" (got {_short(repr(err['input']))})"
        where, msg = _short(where, 2 * MAX_ECHO), _short(msg, 4 * MAX_ECHO)
        lines.append(f"{where or '(top level)'} [{at}]: {msg}")
        if len(lines) == MAX_PROBLEMS:
            break
    count = len(errors)
    head = f"{source}: {count} problem{'s' if count > 1 else ''} in the config:"
    more = [f"  ... and {count - len(lines)} more"] if count > len(lines) else []
    return "\n".join([head] + [f"  - {line}" for line in lines] + more)


def _expected_tags(err) -> str:
    expected = err.get("ctx", {}).get("expected_tags", "")
    return f"expected one of {expected}" if expected else "see the documented types"


def to_plain(config: Config) -> dict:
    """The config as plain data (what config.yaml in a run folder holds)."""
    return config.model_dump(mode="json", exclude_none=False)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_plain(config), sort_keys=False)
