import subprocess
import sys
import time
from pathlib import Path

from vocli import __version__
from vocli.cli.app import app, main

from helpers import run_python


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


def test_sigterm_exits_143_and_cleans_up_like_ctrl_c():
    # in a child process: the signal goes to it, not to pytest
    code = ("import os, signal, sys, time\n"
            "from vocli.cli.app import app, main\n"
            "before, cleaned = signal.getsignal(signal.SIGTERM), []\n"
            "@app.command('terminate-test', hidden=True)\n"
            "def terminated():\n"
            "    try:\n"
            "        os.kill(os.getpid(), signal.SIGTERM)\n"
            "        time.sleep(30)  # the handler raises here\n"
            "    finally:\n"
            "        cleaned.append(True)\n"
            "rc = main(['terminate-test'])\n"
            "print(rc, cleaned, signal.getsignal(signal.SIGTERM) == before)\n")
    result = run_python(code, timeout=120)
    # exit 143, the finally block ran, and the CLI's handler is gone afterwards
    assert result.stdout.strip() == "143 [True] True", result.stderr
    assert "terminated" in result.stderr and "Traceback" not in result.stderr


def test_sigterm_during_convert_yolo_leaves_nothing_behind(tmp_path):
    # A real process, terminated mid-run (chunks slowed down): exit 143, no labels, no staging
    # folder, no list files, and the forked helper is gone with it.
    from helpers import write_voc_xml

    voc = tmp_path / "VOCdevkit" / "VOC2007"
    ids = [f"{i:04d}" for i in range(64)]
    for image_id in ids:
        write_voc_xml(voc / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", 50, 40, [("dog", 1, 1, 20, 20, 0)])
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{i}\n" for i in ids))
    script = ("import sys, time\n"
              "import converters.voc_to_yolo as v\n"
              "from vocli.cli.app import main\n"
              "real = v._convert_chunk\n"
              "def slow(job):\n"
              "    time.sleep(0.5)\n"
              "    return real(job)\n"
              "v._convert_chunk = slow\n"
              "sys.exit(main(['convert', 'yolo', '--root', sys.argv[1], '--workers', '2']))\n")
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".labels.") for p in voc.iterdir()):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    time.sleep(0.2)
    process.terminate()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert sorted(p.name for p in voc.iterdir()) == ["Annotations", "ImageSets"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VOCdevkit"]
    assert not _processes_naming(str(tmp_path))


def _processes_naming(text: str) -> list[int]:
    """Live processes with ``text`` in their command line (Linux /proc; none elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found
