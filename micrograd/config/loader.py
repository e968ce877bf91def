"""Read a YAML config, apply ``--set`` overrides, validate, and explain errors.

Every problem becomes one ``ConfigError`` whose message lists each wrong key
by its full path and its line in the YAML file, with a "did you mean"
suggestion for unknown keys, so that the CLI can print it and exit 2.
"""
from __future__ import annotations

import difflib
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


# ------------------------------------------------------------------ loading


def _yaml_tree(text: str, source: str):
    """Parse YAML into (plain data, node tree) — the nodes carry line numbers."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: malformed YAML: {problem}.") from None
    return data, node


def _line_of(node, loc) -> int | None:
    """Line (1-based) of the key at ``loc`` in a composed YAML node tree; the
    deepest existing ancestor's line when the key itself is absent."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line, node = key_node.start_mark.line + 1, value_node
                    break
            else:
                # A union's tag (pydantic puts the variant's name in the path): skip it.
                continue
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
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    parts = [int(p) if p.isdigit() else p for p in key.split(".")]
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


def _resolve_paths(data: dict, base: Path, only=None):
    for section, key in PATH_KEYS:
        sec = data.get(section)
        if not isinstance(sec, dict) or not isinstance(sec.get(key), (str, list)):
            continue
        if only is not None and (section, key) not in only:
            continue
        value = sec[key]
        if isinstance(value, list):
            sec[key] = [str((base / v).resolve()) if isinstance(v, str) else v for v in value]
        else:
            sec[key] = str((base / Path(value).expanduser()).resolve())


def load_config(path, overrides=()) -> Config:
    """Read, override and validate a config file; raise ConfigError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (expected a YAML file).")
    text = path.read_text(encoding="utf-8")
    data, tree = _yaml_tree(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping with sections data, model, loss, optimizer, train; "
            f"got {type(data).__name__ if data is not None else 'an empty file'}."
        )
    _resolve_paths(data, path.resolve().parent)
    overridden = set()
    for text_ in overrides:
        parts, value = _parse_override(text_)
        _apply_override(data, parts, value, text_)
        overridden.add(tuple(parts))
        if tuple(parts) in PATH_KEYS:
            _resolve_paths(data, Path.cwd(), only={tuple(parts)})
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


def format_errors(exc: ValidationError, data, source: str, tree=None,
                  overridden=frozenset()) -> str:
    """One line per problem: key path, file and line (or --set), what was expected."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        where = _dotted(loc, data)
        line = _line_of(tree, loc) if tree is not None else None
        from_set = any(tuple(where.split("."))[:len(o)] == tuple(map(str, o)) for o in overridden)
        at = f"{source}, line {line}" if line and not from_set else (
            "--set" if from_set else source)
        msg = err["msg"]
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
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
            given = str(err["ctx"].get("tag", ""))
            tags = [t.strip(" '") for t in str(err["ctx"].get("expected_tags", "")).split(",")]
            close = difflib.get_close_matches(given, tags, n=1, cutoff=0.6)
            msg = f"unknown type {given!r}" + (
                f" — did you mean '{close[0]}'?" if close else f"; {_expected_tags(err)}")
        elif kind == "value_error":
            msg = str(err["ctx"]["error"]) if "ctx" in err else msg.removeprefix("Value error, ")
        elif kind == "union_tag_not_found":
            msg = "needs a 'type' key; " + _expected_tags(err)
        elif "input" in err and kind not in ("model_type", "dict_type"):
            msg += f" (got {err['input']!r})"
        lines.append(f"{where or '(top level)'} [{at}]: {msg}")
    count = len(lines)
    head = f"{source}: {count} problem{'s' if count > 1 else ''} in the config:"
    return "\n".join([head] + [f"  - {line}" for line in lines])


def _expected_tags(err) -> str:
    expected = err.get("ctx", {}).get("expected_tags", "")
    return f"expected one of {expected}" if expected else "see the documented types"


def to_plain(config: Config) -> dict:
    """The config as plain data (what config.yaml in a run folder holds)."""
    return config.model_dump(mode="json", exclude_none=False)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_plain(config), sort_keys=False)
