import subprocess
import sys

from vocli import __version__
from vocli.cli.app import app, main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"vocli {__version__}"


def test_help_lists_commands_with_examples(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        assert name in out
        assert "Example" in (command.help or ""), f"`vocli {name} --help` has no example"


def test_usage_error_exits_2(capsys):
    assert main(["no-such-command"]) == 2


def test_vocli_error_is_one_line_exit_1(tmp_path, capsys, monkeypatch):
    from vocli.errors import VocliError

    @app.command("boom-test", hidden=True)
    def boom() -> None:
        raise VocliError(f"{tmp_path}/x.xml: something is wrong", hint="fix it")

    try:
        assert main(["boom-test"]) == 1
        err = capsys.readouterr().err
        assert "x.xml: something is wrong (fix it)" in err
        assert "Traceback" not in err
        assert main(["boom-test", "--debug"]) == 1
        assert "Traceback" in capsys.readouterr().err
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "boom-test"]


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "vocli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"vocli {__version__}"


def test_ctrl_c_exits_130_with_a_note(capsys):
    @app.command("interrupt-test", hidden=True)
    def interrupted() -> None:
        raise KeyboardInterrupt

    try:
        assert main(["interrupt-test"]) == 130
        assert "interrupted" in capsys.readouterr().err
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "interrupt-test"]
