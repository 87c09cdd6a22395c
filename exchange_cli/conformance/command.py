"""The executable a command line starts with: a boutique's `command-line`, a gear's `command`.

Only what can be known without running anything is checked: an absolute path must be an executable
file, a bare name must be found on the PATH, a relative path is taken from the working directory.
Value-keys (``[INPUT]``), variables and shell builtins are left alone.
"""

from __future__ import annotations

import posixpath
import shlex

from ..validation.problems import Problem
from .executables import SYMLINK_RULE, executable_problems, find_executable, on_path
from .rootfs_view import RootfsView

RULE = "rootfs-command"
# Words a shell runs itself, or that only prefix the real command.
SHELL_BUILTINS = frozenset({".", ":", "[", "alias", "cd", "echo", "eval", "export", "false", "for", "if", "printf",
                            "read", "set", "source", "test", "true", "ulimit", "umask", "unset", "while", "{", "("})
PREFIX_WORDS = frozenset({"exec", "command", "nohup", "time"})


def first_executable(command_line: str) -> str | None:
    """The word a shell would run first; None when it cannot be known statically."""
    try:
        words = shlex.split(command_line, comments=False, posix=True)
    except ValueError:
        words = command_line.split()
    for word in words:
        if "=" in word.split("/", 1)[0] and not word.startswith(("/", ".")):
            continue  # NAME=value before the command
        if word in PREFIX_WORDS:
            continue
        if word in SHELL_BUILTINS or any(mark in word for mark in ("[", "$", "`", "(", ";", "&", "|", "<", ">")):
            return None
        return word
    return None


def command_problems(view: RootfsView, command_line: str, *, search_path: str, working_dir: str,
                     pointer_what: str) -> list[Problem]:
    word = first_executable(command_line)
    if word is None:
        return []
    what = f"{pointer_what} starts with {word!r}"
    if word.startswith("/"):
        return executable_problems(view, word, rule=RULE, what=what)
    if "/" in word:
        return executable_problems(view, posixpath.normpath(posixpath.join(working_dir, word)), rule=RULE, what=what)
    lookup = find_executable(view, on_path(word, search_path))
    if lookup.found is not None:
        return []
    broken = lookup.broken_links
    if broken:
        return [Problem(SYMLINK_RULE, f"{what}: {broken[0].explain()}", broken[0].requested)]
    return [Problem(RULE, f"{what}, which is not an executable file in any directory of PATH={search_path}")]
