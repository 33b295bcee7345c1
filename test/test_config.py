import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from syncl_ros.config import ConfigError, config_dir, load, parse, resolve


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass
class Lens:
    fx: float = field(metadata={"gt": 0})
    name: str = "pinhole"


@dataclass
class Settings:
    count: int = field(metadata={"min": 1, "max": 10})
    lenses: list[Lens]
    scale: float = 1.0
    enabled: bool = True
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ids: tuple[int, ...] = ()
    gains: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    kind: Literal["a", "b"] = "a"
    mode: Mode = Mode.FAST
    probs: list[float] = field(default_factory=list, metadata={"min": 0.0, "max": 1.0})

    def __post_init__(self) -> None:
        if self.label == "bad":
            raise ValueError("label must not be 'bad'")


VALID = {
    "count": 3,
    "lenses": [{"fx": 100}, {"fx": 2.5, "name": "fisheye"}],
    "xyz": [1, 2, 3.5],
    "ids": [4, 5],
    "gains": {"r": 1, "g": 0.5},
    "label": None,
    "kind": "b",
    "mode": "SLOW",
    "probs": [0.0, 1.0],
}


def with_(**changes: object) -> dict[str, object]:
    return {**VALID, **changes}


def error(data: object, where: str = "s.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        parse(Settings, data, where)
    return str(info.value)


def test_parse_builds_nested_typed_values() -> None:
    s = parse(Settings, VALID)
    assert s.lenses[1] == Lens(2.5, "fisheye")
    assert isinstance(s.lenses[0].fx, float) and s.lenses[0].fx == 100.0
    assert s.xyz == (1.0, 2.0, 3.5) and s.ids == (4, 5)
    assert s.gains == {"r": 1.0, "g": 0.5}
    assert s.kind == "b" and s.mode is Mode.SLOW and s.scale == 1.0
    assert parse(Settings, with_(mode="fast")).mode is Mode.FAST  # by value too


def test_wrong_type_names_path_and_value() -> None:
    wide = error(with_(lenses=[{"fx": 1}, {"fx": "wide"}]))
    assert wide == "s.yaml: lenses[1].fx: expected a number, got 'wide'"
    assert "count: expected an integer, got 2.5" in error(with_(count=2.5))
    assert "enabled: expected a boolean (true/false), got 1" in error(with_(enabled=1))
    assert "xyz: expected a list of 3 items, got 2" in error(with_(xyz=[1, 2]))
    assert "gains.g: expected a number, got None" in error(with_(gains={"g": None}))
    assert "kind: expected one of 'a', 'b', got 'c'" in error(with_(kind="c"))
    assert "mode: expected one of FAST, SLOW, got 'medium'" in error(with_(mode="medium"))
    assert error([1]) == "s.yaml: expected a mapping, got [1]"


def test_bounds_name_key_and_value() -> None:
    assert error(with_(lenses=[{"fx": -3.0}])) == "s.yaml: lenses[0].fx: expected a positive number, got -3.0"
    assert "count: expected a number <= 10, got 11" in error(with_(count=11))
    assert "probs[1]: expected a number <= 1.0, got 1.5" in error(with_(probs=[0.5, 1.5]))


def test_unknown_and_missing_keys() -> None:
    msg = error(with_(lenses=[{"fx": 1, "fxx": 2}]))
    assert msg.startswith("s.yaml: lenses[0].fxx: unknown key; did you mean 'fx'?")
    assert "allowed: fx, name" in msg
    missing = dict(VALID)
    del missing["count"]
    assert error(missing) == "s.yaml: count: required key is missing"


def test_post_init_error_gets_path() -> None:
    assert error(with_(label="bad")) == "s.yaml: label must not be 'bad'"
    assert isinstance(ConfigError("x"), ValueError)


def test_load_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("count: 2\nscale: 1e-3\nlenses:\n  - fx: 5\n")
    s = load(Settings, path)
    assert s.count == 2 and s.scale == pytest.approx(1e-3)
    path.write_text("count: 2\nlenses:\n  - {fx: -5}\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: lenses\[0\]\.fx: expected a positive number, got -5"):
        load(Settings, path)


def test_load_rejects_bad_yaml_and_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("count: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML"):
        load(Settings, path)
    path.write_text("count: 1\ncount: 2\nlenses: []\n")
    with pytest.raises(ConfigError, match="duplicate key 'count'"):
        load(Settings, path)


def test_config_dir_and_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (config_dir() / "rig_nuscenes.yaml").is_file()
    assert resolve("rig_nuscenes") == config_dir() / "rig_nuscenes.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("x: 1\n")
    assert resolve(str(own)) == own
    monkeypatch.setenv("SYNCL_CONFIG_DIR", str(tmp_path))
    assert config_dir() == tmp_path
    assert resolve("mine") == own
    with pytest.raises(FileNotFoundError, match=r"available: mine"):
        resolve("nope")
