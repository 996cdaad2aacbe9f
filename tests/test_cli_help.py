"""Help and shell completion as users of Typer apps expect them, whatever Typer version pip chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _vocli(args: list[str], tmp_path, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "COLUMNS": "100", "HOME": str(tmp_path), "NO_COLOR": "1", **env}
    return subprocess.run([sys.executable, "-m", "vocli", *args], capture_output=True, text=True,
                          env=environ, timeout=120)


def _usage_line(text: str) -> str:
    return next(line.strip() for line in text.splitlines() if "Usage:" in line)


@pytest.mark.parametrize("args, usage", [
    (["convert-weights", "--help"], "Usage: vocli convert-weights [OPTIONS] SRC"),
    (["detect", "--help"], "Usage: vocli detect [OPTIONS] SOURCES..."),
    (["convert", "--help"], "Usage: vocli convert [OPTIONS] COMMAND [ARGS]..."),
])
def test_usage_names_arguments_in_capitals(tmp_path, args, usage):
    result = _vocli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert _usage_line(result.stdout) == usage


@pytest.mark.parametrize("args", [["--help"], ["convert", "--help"], ["convert", "yolo", "--help"],
                                  ["convert-weights", "--help"]])
def test_flags_show_no_type(tmp_path, args):
    result = _vocli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    assert "{" not in _usage_line(result.stdout)
    flag_rows = [line for line in result.stdout.splitlines() if "--help" in line]
    assert flag_rows and all("bool" not in row.lower() for row in flag_rows)


def test_completion_of_command_names(tmp_path):
    result = _vocli([], tmp_path, COMP_WORDS="vocli convert y", COMP_CWORD="2",
                    _VOCLI_COMPLETE="complete_bash")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["yolo"]


def test_install_completion_writes_a_bash_script_under_home(tmp_path):
    # Typer finds the user's shell among the process's parents: run it from bash, as a user types it,
    # whatever started pytest (nohup, CI, an IDE).
    environ = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    environ.pop("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", None)
    result = subprocess.run(["bash", "-c", f'"{sys.executable}" -m vocli --install-completion; exit $?'],
                            capture_output=True, text=True, env=environ, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    script = tmp_path / ".bash_completions" / "vocli.sh"
    assert "_VOCLI_COMPLETE" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()
