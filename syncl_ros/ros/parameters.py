"""ROS parameters from typed settings: one parameter per field of a settings dataclass, declared
with the description, range and type of the field's one declaration (:func:`syncl_ros.config.setting`),
and read back through the typed parser, as YAML files and `--set` are read.

- A field whose default is None is declared unset (uninitialized: `ros2 param get` says so) and
  stays None unless given.
- A field declared with ``overrides=<settings dataclass>`` (the model's tracker settings) becomes
  one unset parameter per setting of that dataclass, named by its dotted key (tracker.birth_score,
  tracker.greedy.score, tracker.greedy.distances.car for each key of a table; in a parameter
  file, a nested `tracker:` section). Those given are read
  back as "tracker.KEY=VALUE" overrides: what `syncl track --set` takes.

Parameters are read-only: they take effect at configure.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from syncl_ros.config import parse

T = TypeVar("T")
INT64 = 2**63 - 1
SCALARS = {
    bool: Parameter.Type.BOOL,
    int: Parameter.Type.INTEGER,
    float: Parameter.Type.DOUBLE,
    str: Parameter.Type.STRING,
}
ARRAYS = {
    bool: Parameter.Type.BOOL_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    str: Parameter.Type.STRING_ARRAY,
}


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    type_: Parameter.Type
    default: Any  # None: declared unset
    descriptor: ParameterDescriptor
    override: bool = False  # read back as a "NAME=VALUE" override of an ``overrides`` field


def parameter_specs(cls: type[Any]) -> list[ParameterSpec]:
    """The ROS parameters of a settings dataclass, in field order."""
    specs = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        nested = f.metadata.get("overrides")
        if nested is not None:
            specs += [
                _spec(name, hint, leaf, None, override=True) for name, hint, leaf in _leaves(nested, f.name)
            ]
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            specs.append(_spec(f.name, hints[f.name], f, default))
    return specs


def declare(node: Node, cls: type[Any]) -> None:
    for spec in parameter_specs(cls):
        value = spec.type_ if spec.default is None else spec.default
        node.declare_parameter(spec.name, value, spec.descriptor)


def read(node: Node, cls: type[T]) -> T:
    """The declared parameters as ``cls``, checked by the typed parser (ConfigError, a ValueError,
    naming the parameter)."""
    values: dict[str, Any] = {}
    overrides: dict[str, list[str]] = {}
    for spec in parameter_specs(cls):
        value = _value(node, spec.name)
        if value is None:
            continue
        if spec.override:
            field_name = spec.name.split(".")[0]
            overrides.setdefault(field_name, []).append(f"{spec.name}={json.dumps(value)}")
        else:
            values[spec.name] = value
    return parse(cls, {**values, **overrides}, "parameters")


def _value(node: Node, name: str) -> Any:
    try:
        value = node.get_parameter(name).value
    except ParameterUninitializedException:
        return None
    return list(value) if isinstance(value, list | tuple) or hasattr(value, "tolist") else value


def _leaves(cls: type[Any], prefix: str) -> Iterator[tuple[str, Any, dataclasses.Field[Any]]]:
    """(dotted name, type, field) of each setting of a dataclass a parameter can hold, nested
    dataclasses included."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name, hint = f"{prefix}.{f.name}", hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield from _leaves(hint, name)
        elif get_origin(hint) is dict and f.default_factory is not dataclasses.MISSING:
            # a table with fixed keys (the greedy gates per class): one parameter per key
            for key in f.default_factory():
                yield f"{name}.{key}", get_args(hint)[1], f
        elif _ros_type(hint) is not None:
            yield name, hint, f


def _spec(
    name: str, hint: Any, f: dataclasses.Field[Any], default: Any, override: bool = False
) -> ParameterSpec:
    type_ = _ros_type(hint)
    if type_ is None:
        raise TypeError(f"setting {name}: {hint!r} cannot be a ROS parameter")
    descriptor = ParameterDescriptor(name=name, description=f.metadata.get("doc", ""), read_only=True)
    choices = _choices(hint)
    if choices:
        descriptor.additional_constraints = "one of: " + ", ".join(choices)
    if type_ == Parameter.Type.INTEGER:
        descriptor.integer_range = _integer_range(f.metadata)
    elif type_ == Parameter.Type.DOUBLE:
        descriptor.floating_point_range = _float_range(f.metadata)
    return ParameterSpec(name, type_, default, descriptor, override)


def _plain(hint: Any) -> Any:
    """The type a value of ``hint`` has: X for X | None; str for Literal["a", "b"]."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return _plain(args[0]) if len(args) == 1 else None
    if get_origin(hint) is Literal:
        return type(get_args(hint)[0])
    return hint


def _ros_type(hint: Any) -> Parameter.Type | None:
    plain = _plain(hint)
    if get_origin(plain) is list:
        return ARRAYS.get(_plain(get_args(plain)[0]))
    return SCALARS.get(plain)


def _choices(hint: Any) -> list[str]:
    if get_origin(hint) is list:
        hint = get_args(hint)[0]
    return [str(c) for c in get_args(hint)] if get_origin(hint) is Literal else []


def _integer_range(meta: Any) -> list[IntegerRange]:
    if not {"min", "max", "gt", "lt"} & set(meta):
        return []
    lo = meta.get("min", meta["gt"] + 1 if "gt" in meta else -INT64 - 1)
    hi = meta.get("max", meta["lt"] - 1 if "lt" in meta else INT64)
    return [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]


def _float_range(meta: Any) -> list[FloatingPointRange]:
    """Bounds as an inclusive range (an exclusive bound is enforced when the settings are read)."""
    if not {"min", "max", "gt", "lt"} & set(meta):
        return []
    lo = meta.get("min", meta.get("gt", -math.inf))
    hi = meta.get("max", meta.get("lt", math.inf))
    return [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
