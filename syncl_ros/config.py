"""Typed configuration: YAML files parsed into (nested) dataclasses.

Every error names the file, the key path and the offending value, e.g.
``rig.yaml: cameras[2].fx: expected a positive number, got -3.0``.

Supported field types: int, float (ints accepted), str, bool (strict),
pathlib.Path, list[X], tuple[X, ...], fixed tuples, dict[K, X],
Optional / ``X | None``, Literal[...], enums (by name or value), nested
dataclasses and Any. Numeric bounds are declared per field with
``field(metadata={"min": 0, "max": 10})`` (inclusive) or ``"gt"``/``"lt"``
(exclusive); they apply to a number or to each number of a list/tuple.
:func:`setting` declares a field with its description beside its bounds, for
whatever else presents the setting (the node's ROS parameters).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
import re
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")

ENV_VAR = "SYNCL_CONFIG_DIR"
_PACKAGE = "syncl_ros"
# A checkout's config/ is recognised by the shipped default rig, so that an
# unrelated "config" folder next to an installed package is never picked up.
_MARKER = "rig_nuscenes.yaml"
_MAX_SHOWN = 60


class ConfigError(ValueError):
    """Invalid configuration; the message names the file, key path and value."""


class _Invalid(Exception):
    """Internal failure carrying the key path; turned into ConfigError by parse()."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def parse(cls: type[T], data: Any, where: str = "") -> T:
    """Build ``cls`` from plain YAML-like data; ``where`` (e.g. a file name) prefixes errors."""
    try:
        return cast(T, _parse(cls, data, ""))  # an instance of cls, or _Invalid
    except _Invalid as err:
        parts = [p for p in (where, err.path) if p]
        raise ConfigError(": ".join([*parts, err.message])) from None


def load(cls: type[T], path: str | Path) -> T:
    """Parse the YAML file ``path`` into ``cls``."""
    return parse(cls, read(path), str(Path(path)))


def read(path: str | Path) -> Any:
    """The plain data of the YAML file ``path`` (duplicate keys refused, 1e-3 read as a float)."""
    p = Path(path)
    try:
        return yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: invalid YAML: {err}") from None


def setting(default: Any = dataclasses.MISSING, doc: str = "", *, factory: Any = None, **meta: Any) -> Any:
    """A dataclass field declared once: its default (or default ``factory``), a description and
    metadata such as bounds ("min", "max", "gt", "lt"), e.g. ``setting(0.4, "birth threshold",
    min=0.0, max=1.0)``. The parser checks the bounds; the node's parameters take all of it."""
    metadata = {"doc": doc, **meta}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# --------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """Safe loader that rejects duplicate keys and reads 1e-3 as a float.

    Plain PyYAML keeps the last of duplicated keys silently and, following
    YAML 1.1, reads exponents without a dot ("1e-3") as strings.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


# ------------------------------------------------------------------ parsing


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _describe(tp: Any) -> str:
    names = {
        bool: "a boolean (true/false)",
        int: "an integer",
        float: "a number",
        str: "a string",
        Path: "a path string",
        type(None): "null",
    }
    origin = get_origin(tp) or tp
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp) or origin in (dict, Mapping):
        return "a mapping"
    if origin in (list, tuple):
        return "a list"
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in get_args(tp))
    if _is_enum(tp):
        return "one of " + ", ".join(tp.__members__)
    if _is_union(tp):
        return " or ".join(_describe(a) for a in get_args(tp))
    return getattr(tp, "__name__", repr(tp))


def _fail(tp: Any, data: Any, path: str) -> _Invalid:
    return _Invalid(path, f"expected {_describe(tp)}, got {_show(data)}")


def _parse(tp: Any, data: Any, path: str) -> Any:
    if tp is Any:
        return data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, data, path)
    if _is_union(tp):
        return _parse_union(tp, data, path)
    origin = get_origin(tp) or tp
    if origin is Literal:
        return _parse_literal(tp, data, path)
    if origin is list:
        return _parse_list(tp, data, path)
    if origin is tuple:
        return _parse_tuple(tp, data, path)
    if origin in (dict, Mapping):
        return _parse_dict(tp, data, path)
    if _is_enum(tp):
        return _parse_enum(tp, data, path)
    return _parse_scalar(tp, data, path)


def _parse_scalar(tp: Any, data: Any, path: str) -> Any:
    not_bool = not isinstance(data, bool)
    if tp is bool and isinstance(data, bool):
        return data
    if tp is int and isinstance(data, int) and not_bool:
        return data
    if tp is float and isinstance(data, int | float) and not_bool:
        return float(data)
    if tp is str and isinstance(data, str):
        return data
    if tp is Path and isinstance(data, str | Path):
        return Path(data)
    if tp is type(None) and data is None:
        return None
    if tp in (bool, int, float, str, Path, type(None)):
        raise _fail(tp, data, path)
    if isinstance(tp, type) and isinstance(data, tp):
        return data
    raise TypeError(f"{path or 'config'}: unsupported field type {tp!r}")


def _parse_union(tp: Any, data: Any, path: str) -> Any:
    args = get_args(tp)
    if data is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:
        return _parse(options[0], data, path)
    for option in options:
        try:
            return _parse(option, data, path)
        except _Invalid:
            continue
    raise _fail(tp, data, path)


def _parse_literal(tp: Any, data: Any, path: str) -> Any:
    # Compare types too: True == 1 must not select the literal 1.
    for allowed in get_args(tp):
        if type(allowed) is type(data) and allowed == data:
            return allowed
    raise _fail(tp, data, path)


def _parse_enum(tp: type[enum.Enum], data: Any, path: str) -> Any:
    if isinstance(data, tp):
        return data
    if isinstance(data, str) and data in tp.__members__:
        return tp[data]
    for member in tp:
        if type(member.value) is type(data) and member.value == data:
            return member
    raise _fail(tp, data, path)


def _parse_list(tp: Any, data: Any, path: str) -> list[Any]:
    if not isinstance(data, list | tuple):
        raise _fail(tp, data, path)
    item = (get_args(tp) or (Any,))[0]
    return [_parse(item, v, f"{path}[{i}]") for i, v in enumerate(data)]


def _parse_tuple(tp: Any, data: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(data, list | tuple):
        raise _fail(tp, data, path)
    args = get_args(tp)
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        item = args[0] if args else Any
        return tuple(_parse(item, v, f"{path}[{i}]") for i, v in enumerate(data))
    if len(data) != len(args):
        raise _Invalid(path, f"expected a list of {len(args)} items, got {len(data)}: {_show(data)}")
    return tuple(_parse(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, data, strict=True)))


def _parse_dict(tp: Any, data: Any, path: str) -> dict[Any, Any]:
    if not isinstance(data, Mapping):
        raise _fail(tp, data, path)
    key_tp, value_tp = get_args(tp) or (Any, Any)
    out = {}
    for key, value in data.items():
        sub = _join(path, str(key))
        out[_parse(key_tp, key, sub)] = _parse(value_tp, value, sub)
    return out


def _parse_dataclass(cls: type[Any], data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise _fail(cls, data, path)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    _check_keys(data, fields, path)
    hints = get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name in data:
            kwargs[name] = _parse(hints[name], data[name], sub)
            _check_bounds(f.metadata, kwargs[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Invalid(sub, "required key is missing")
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise _Invalid(path, str(err)) from err


def _check_keys(data: Mapping[Any, Any], fields: Mapping[str, Any], path: str) -> None:
    for key in data:
        if not isinstance(key, str):
            raise _Invalid(path, f"keys must be strings, got {_show(key)}")
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _Invalid(_join(path, key), f"unknown key; {hint}allowed: {', '.join(fields)}")


def _bound_error(meta: Mapping[str, Any], x: float) -> str | None:
    if "min" in meta and x < meta["min"]:
        return f"expected a number >= {meta['min']}, got {_show(x)}"
    if "max" in meta and x > meta["max"]:
        return f"expected a number <= {meta['max']}, got {_show(x)}"
    if "gt" in meta and not x > meta["gt"]:
        what = "a positive number" if meta["gt"] == 0 else f"a number > {meta['gt']}"
        return f"expected {what}, got {_show(x)}"
    if "lt" in meta and not x < meta["lt"]:
        return f"expected a number < {meta['lt']}, got {_show(x)}"
    return None


def _check_bounds(meta: Mapping[str, Any], value: Any, path: str) -> None:
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_bounds(meta, item, f"{path}[{i}]")
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        message = _bound_error(meta, value)
        if message:
            raise _Invalid(path, message)


# ------------------------------------------------------------------- files


def _ament_config_dir() -> Path | None:
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return None
    try:
        share = Path(get_package_share_directory(_PACKAGE))
    except (KeyError, LookupError, ValueError):  # PackageNotFoundError derives from KeyError
        return None
    found = share / "config"
    return found if found.is_dir() else None


def config_dir() -> Path:
    """Folder of the shipped ``config/*.yaml``.

    Order: ``$SYNCL_CONFIG_DIR``; the source checkout; ``sys.prefix/share``
    (pip install); the ament share directory (colcon install).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        chosen = Path(env).expanduser()
        if not chosen.is_dir():
            raise FileNotFoundError(f"${ENV_VAR}={env!r} is not a directory")
        return chosen
    source = Path(__file__).resolve().parents[1] / "config"
    if (source / _MARKER).is_file():
        return source
    installed = Path(sys.prefix) / "share" / _PACKAGE / "config"
    if installed.is_dir():
        return installed
    ament = _ament_config_dir()
    if ament is not None:
        return ament
    raise FileNotFoundError(
        f"no {_PACKAGE} config directory: set ${ENV_VAR}; looked in {source} and {installed}"
    )


def resolve(name_or_path: str | Path, suffix: str = ".yaml") -> Path:
    """An existing file path as is, else ``config_dir()/<name><suffix>``."""
    given = Path(name_or_path).expanduser()
    if given.is_file():
        return given
    directory = config_dir()
    name = str(name_or_path)
    candidate = directory / (name if name.endswith(suffix) else name + suffix)
    if candidate.is_file():
        return candidate
    available = ", ".join(sorted(p.stem for p in directory.glob(f"*{suffix}"))) or "none"
    raise FileNotFoundError(f"config {name!r} is neither a file nor in {directory} (available: {available})")
