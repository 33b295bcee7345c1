"""The `syncl` command line lists its subcommands and refuses unimplemented ones clearly."""

import subprocess
import sys
from pathlib import Path

import pytest

from syncl_ros.cli import COMMANDS, NOT_IMPLEMENTED_EXIT, Command, main

EXPECTED = {
    "synth",
    "convert",
    "play",
    "record",
    "render",
    "track",
    "eval",
    "train",
    "export",
    "build-engine",
    "bench",
    "node",
    "release",
    "fit-depth",
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncl_ros.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_subcommand() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert set(COMMANDS) == EXPECTED
    for name in EXPECTED:
        assert f"    {name} " in result.stdout or f"    {name}\n" in result.stdout, name


def test_unimplemented_subcommand_says_so_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(COMMANDS, "future", Command("a job of a later version", None))
    assert main(["future", "whatever"]) == NOT_IMPLEMENTED_EXIT
    assert "not implemented" in capsys.readouterr().err


def test_every_listed_subcommand_has_its_module() -> None:
    from importlib import import_module

    for name in EXPECTED:
        module = COMMANDS[name].module
        assert module is not None, name
        imported = import_module(module)
        assert callable(imported.configure_parser) and callable(imported.main), name


def test_unknown_subcommand_is_an_argparse_error() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_console_script_is_installed() -> None:
    from shutil import which

    script = which("syncl", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "synth" in result.stdout


@pytest.mark.parametrize("command", ["track", "train"])
def test_a_dataroot_without_tables_is_a_clear_error(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {
        "track": [str(tmp_path), "--out", str(tmp_path / "out.json")],
        "train": ["--config", "tiny", "--dataroot", str(tmp_path), "--out", str(tmp_path / "run")],
    }[command]
    assert main([command, *args]) == 2
    err = capsys.readouterr().err
    assert f"syncl {command}: no" in err and "v1.0-trainval" in err and str(tmp_path) in err
