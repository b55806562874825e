"""Progress of the long-running commands: drawn on a terminal, nothing of it into a pipe.

Each command runs as a real process with stderr on a pseudo-terminal (``pty``) and, again, with
stderr on a pipe; stdout is a file either way, so what a script reads is compared too.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from layerstore_core import load_driver
from tests.stores import populate

#: rich's bar glyph; drawn only when the display is on.
BAR = "━"
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}}
    return {**env, "TERM": "xterm-256color", "COLUMNS": "160"}


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "layerstore_core.cli", *args]


def run_on_terminal(args: list[str], timeout: float = 180) -> tuple[int, str, str]:
    """``(status, stdout, stderr)`` with stderr on a pseudo-terminal (escapes left in)."""
    master, slave = pty.openpty()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=slave,
                                env=_env())
        os.close(slave)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    proc.kill()
                    raise AssertionError(f"{args} did not finish in {timeout} s")
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the process closed the terminal (it exited)
                    break
                if not data:
                    break
                chunks.append(data)
        finally:
            os.close(master)
        status = proc.wait(timeout=60)
        out.seek(0)
        return status, out.read().decode(), b"".join(chunks).decode(errors="replace")


def run_piped(args: list[str]) -> tuple[int, str, str]:
    run = subprocess.run(args, capture_output=True, text=True, timeout=180, env=_env())
    return run.returncode, run.stdout, run.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small registry (three images, an upload left in progress) and its config file."""
    root = tmp_path_factory.mktemp("progress")
    populate(load_driver("filesystem", rootdirectory=str(root / "src")), big=256 * 1024)
    (root / "config.yml").write_text(
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'src'}\n")
    return root


def _commands(root: Path) -> dict[str, tuple[list[str], str | None]]:
    """Each command (a dry run where it deletes) and the phase name it must show, if ours."""
    config, src = str(root / "config.yml"), f"filesystem:rootdirectory={root / 'src'}"
    return {
        "copy": (["copy", src, f"filesystem:rootdirectory={root / 'dst'}"], "copying"),
        "verify": (["verify", src], "re-hashing blobs"),
        "gc": (["gc", "--config", config, "--dry-run", "--grace", "0s"], None),
        "purge-uploads": (["purge-uploads", "--config", config, "--age", "0s", "--dry-run"],
                          "checking repositories"),
    }


@pytest.mark.parametrize("name", ["copy", "verify", "gc", "purge-uploads"])
def test_progress_on_a_terminal_and_not_in_a_pipe(store: Path, name: str) -> None:
    args, phase = _commands(store)[name]
    status, out, err = run_on_terminal(_command(*args))
    assert status == 0, (out, err)
    assert BAR in err and "\x1b[" in err, err  # rich drew its bars
    if phase is not None:
        assert phase in ESCAPE.sub("", err), err
    assert BAR not in out and "\x1b[" not in out  # stdout keeps only the report

    status, piped_out, piped_err = run_piped(_command(*args))
    assert status == 0, (piped_out, piped_err)
    assert BAR not in piped_err and "\x1b[" not in piped_err, piped_err
    summary = [re.sub(r"\d+", "#", text.splitlines()[-1]) for text in (out, piped_out)]
    assert summary[0] == summary[1]  # the same summary, counts and times aside


def test_json_on_a_terminal_shows_no_progress(store: Path) -> None:
    args, _ = _commands(store)["purge-uploads"]
    status, out, err = run_on_terminal(_command(*args, "--json"))
    assert status == 0, (out, err)
    assert BAR not in err and "\x1b[" not in err, err
    doc = json.loads(out)
    assert doc["dry_run"] is True and [u["repository"] for u in doc["uploads"]] == ["other"]
    assert run_piped(_command(*args, "--json"))[1] == out
