"""Mutation testing of one module against its own test files, with mutmut (the `dev` extra).

    python tools/mutation.py vocli/boxes.py tests/test_boxes.py [more test files...]

Copies the tracked tree into a scratch folder (so the checkout's pyproject.toml and
files stay as they are), writes a [tool.mutmut] section there that mutates only the
given module and selects only the given tests, runs `mutmut run` with one worker, and
prints the killed share. `--keep DIR` reuses a scratch folder (mutmut caches results
there, so a second run after a test change re-runs only what changed);
`--show` lists the surviving mutants with their diffs.
Not part of CI: a module takes minutes to an hour on two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split("\n")
    for name in filter(None, files):
        src = REPO / name
        if not src.is_file():
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _pyproject(module: str, tests: list[str]) -> str:
    text = (REPO / "pyproject.toml").read_text()
    text = re.sub(r"\n\[tool\.mutmut\].*?(?=\n\[|\Z)", "", text, flags=re.S)
    return text + (
        "\n[tool.mutmut]\n"
        'source_paths = ["vocli", "converters"]\n'
        f"only_mutate = [{json.dumps(module)}]\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-m", "not slow"]\n'
        'process_isolation = "forkserver"\n'
    )


MUTMUT = str(Path(sys.executable).parent / "mutmut")


def _counts(workdir: Path) -> dict[str, int]:
    out = subprocess.run([MUTMUT, "results", "--all", "true"], cwd=workdir,
                         capture_output=True, text=True).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        if ":" in line:
            status = line.rsplit(":", 1)[1].strip()
            counts[status] = counts.get(status, 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module")
    parser.add_argument("tests", nargs="+")
    parser.add_argument("--keep", type=Path, help="scratch folder to create or reuse")
    parser.add_argument("--children", type=int, default=1)
    parser.add_argument("--show", action="store_true", help="print survivors' diffs")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="vocli-mutation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # refresh sources and tests (mutmut re-mutates a file whose mtime changed)
    shutil.rmtree(workdir / "mutants" / "tests", ignore_errors=True)
    _copy_tree(workdir)
    (workdir / "pyproject.toml").write_text(_pyproject(args.module, args.tests))
    # mutants/ must exist before mutmut starts: a PYTHONPATH entry missing at start-up is cached
    # as "nothing here" and the tests would import the unmutated package
    (workdir / "mutants").mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(workdir / "mutants"))
    subprocess.run([MUTMUT, "run", "--max-children", str(args.children)],
                   cwd=workdir, env=env)
    counts = _counts(workdir)
    total = sum(counts.values())
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    print(f"{args.module}: {killed}/{total} killed ({100 * killed / max(total, 1):.1f}%) {counts}"
          f"  [{workdir}]")
    if args.show:
        out = subprocess.run([MUTMUT, "results"], cwd=workdir,
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            name = line.split(":")[0].strip()
            if name:
                subprocess.run([MUTMUT, "show", name], cwd=workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
