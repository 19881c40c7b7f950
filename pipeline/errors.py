"""Errors a user can cause, and the wrapper that turns them into one clear sentence."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class UserError(Exception):
    """A failure the user can fix (bad config, missing or corrupt data, no GPU when asked).

    The message is one sentence naming the cause and the fix; workflow scripts print it
    without a traceback and exit non-zero.
    """


def remove_outputs(paths) -> None:
    """Delete whatever of `paths` exists, so that a failed job leaves nothing looking complete."""
    for path in paths:
        p = Path(path)
        if p.is_file() or p.is_symlink():
            p.unlink()


def run_script(main: Callable[[object], None], smk) -> None:
    """Entry point of every workflow script.

    Redirects stderr to the rule's log (if it has one), runs `main(smk)`, and on a
    `UserError` writes its sentence to the log and to the terminal, removes the declared
    outputs and exits with status 1. Any other exception is a bug and keeps its traceback.
    """
    terminal = sys.stderr
    log = list(getattr(smk, "log", []) or [])
    if log:
        Path(log[0]).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job
    try:
        main(smk)
    except UserError as err:
        message = f"Error: {err}"
        print(message, file=sys.stderr)
        if sys.stderr is not terminal:
            print(message, file=terminal)
        remove_outputs(smk.output)
        sys.exit(1)
    except BaseException:
        remove_outputs(smk.output)
        raise
