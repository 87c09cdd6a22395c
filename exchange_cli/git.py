"""Thin helpers over git; every git command the tool runs is run here.

The read-only questions `exchange validate` asks (the repository's root, rev-parse, ls-tree, diff, ls-files) are
put to git itself (`run_git`, through `Checkout`); everything else goes through GitPython, imported on first use:
importing it takes some 40 ms, which validate, run by pre-commit hooks on every commit, does without.

However a git command is run (`run_git`, GitPython's `repo.git.*` or its object model, `push`, a clone), its
failure is one error type, `GitFailed`, with one text: ``git <args> exited with <status>: <git's reason>``
(`stderr_reason`: its stderr minus progress and advice), credentials in URLs redacted."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from .children import children, end_sessions
from .errors import UsageError, redact

if TYPE_CHECKING:
    import git


class NotARepository(UsageError):
    pass


class GitFailed(Exception):
    """A git command exited non-zero, however it was run (GitPython's failures are converted: `_repo_type`).
    `status`, `stderr` (git's own, unwrapped) and `stdout` are what it gave."""

    def __init__(self, command: list[str], status: int | str | Exception | None, stderr: str, stdout: str = "") -> None:
        self.message = redact(f"{' '.join(command)} exited with {status}: {stderr_reason(stderr, status)}")
        super().__init__(self.message)
        self.command, self.status, self.stderr, self.stdout = command, status, stderr, stdout

    def __str__(self) -> str:  # not GitPython's (a converted failure is a GitCommandError too)
        return self.message


def _failures() -> tuple[type[GitFailed], ...]:
    """What a failed git command raises."""
    return (GitFailed,)


# The commands a Checkout runs: they read the repository, never write it nor reach a remote.
READ_ONLY_COMMANDS = frozenset({"rev-parse", "ls-tree", "diff", "ls-files", "merge-base", "cat-file"})


class ReadCommands(Protocol):
    """The read-only git commands the helpers below run through `repo.git`: a Checkout's own, or GitPython's
    (its `Git` answers any command name; called like this, each returns git's output as a str)."""

    def rev_parse(self, *args: str) -> str: ...

    def ls_tree(self, *args: str) -> str: ...

    def diff(self, *args: str) -> str: ...

    def ls_files(self, *args: str) -> str: ...


class ReadableRepo(Protocol):
    """What the read-only helpers need of a repository: a `Checkout`, or a GitPython Repo."""

    @property
    def git(self) -> ReadCommands: ...

    @property
    def working_tree_dir(self) -> str | os.PathLike[str] | None: ...

    @property
    def git_dir(self) -> str | os.PathLike[str]: ...


class Checkout:
    """A repository, asked its read-only questions (`READ_ONLY_COMMANDS`) by running git itself, through the
    surface of a GitPython Repo the helpers below use: `checkout.git.ls_files(*args)` (the output, its last
    newline dropped; GitFailed when git fails), `working_tree_dir`, `git_dir`. `repo`, GitPython's Repo for
    everything else (commits, pushes, blobs), is built on first use. Every git runs as GitPython's do here:
    in a session of its own (children.py), never prompting (`non_interactive_env`), in English (LC_ALL=C)."""

    def __init__(self, working_tree_dir: str | None, git_dir: str, settings: dict[str, str],
                 repo: git.Repo | None = None) -> None:
        self.working_tree_dir = working_tree_dir
        self.git_dir = git_dir
        self._settings = settings  # the prompt settings of non_interactive_env, for this repository
        self._repo = repo
        self.git = _ReadOnlyCommands(self)

    @classmethod
    def find(cls, path: Path | str | None = None) -> Checkout:
        """The repository around `path` (default: the current directory), found as git finds it."""
        start = Path(path or ".").resolve()
        if not start.exists():
            raise UsageError(f"--repo {start}: no such directory")
        cwd = start if start.is_dir() else start.parent
        settings = _prompt_settings(cwd)
        work_tree: str | None
        try:
            git_dir, work_tree = _run(["rev-parse", "--absolute-git-dir", "--show-toplevel"], cwd, settings).split("\n")
        except GitFailed as failed:
            try:  # no work tree here: a bare repository, or the inside of a .git folder
                git_dir, bare = _run(["rev-parse", "--absolute-git-dir", "--is-bare-repository"], cwd,
                                     settings).split("\n")
            except GitFailed:
                raise _not_opened(start, failed) from None
            work_tree = os.path.dirname(git_dir) if bare == "false" and Path(git_dir).name == ".git" else None
        return cls(work_tree, git_dir, settings)

    @classmethod
    def of_repo(cls, repo: git.Repo) -> Checkout:
        """A GitPython Repo someone opened already (its git commands run as `open_repo` set them up)."""
        working_tree_dir = repo.working_tree_dir
        return cls(None if working_tree_dir is None else os.fspath(working_tree_dir), os.fspath(repo.git_dir),
                   dict(repo.git.environment()), repo)

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = _gitpython_repo(self.working_tree_dir or self.git_dir, self._settings)
        return self._repo

    def run(self, *args: str) -> str:
        if args[0] not in READ_ONLY_COMMANDS:
            raise ValueError(f"git {args[0]} is not a read-only command; use the GitPython repo (.repo)")
        return _run(list(args), self.working_tree_dir or self.git_dir, self._settings)


class _ReadOnlyCommands:
    """`checkout.git.rev_parse("HEAD")` runs `git rev-parse HEAD`, as GitPython's `repo.git` would."""

    def __init__(self, checkout: Checkout) -> None:
        self._checkout = checkout

    def rev_parse(self, *args: str) -> str:
        return self._checkout.run("rev-parse", *args)

    def ls_tree(self, *args: str) -> str:
        return self._checkout.run("ls-tree", *args)

    def diff(self, *args: str) -> str:
        return self._checkout.run("diff", *args)

    def ls_files(self, *args: str) -> str:
        return self._checkout.run("ls-files", *args)

    def merge_base(self, *args: str) -> str:
        return self._checkout.run("merge-base", *args)

    def cat_file(self, *args: str) -> str:
        return self._checkout.run("cat-file", *args)

    if not TYPE_CHECKING:  # any other command fails when called (Checkout.run); the type checker refuses it
        def __getattr__(self, name: str) -> Any:
            if name.startswith("_"):
                raise AttributeError(name)
            return partial(self._checkout.run, name.replace("_", "-"))


def _run(args: list[str], cwd: Path | str, settings: dict[str, str]) -> str:
    return run_git(args, cwd, {**os.environ, **settings})


def run_git(args: list[str], cwd: os.PathLike[str] | str | None = None, environ: Mapping[str, str] | None = None, *,
            timeout: float | None = None, grace: float = 2.0) -> str:
    """The one way the tool runs git itself: its output (decoded as GitPython decodes it, the last newline
    dropped), GitFailed when it fails (the status -1 when it ran out of `timeout` seconds). git runs in a
    session of its own, in English, stdin closed; the session is ended if we are interrupted meanwhile
    (killed after `grace` seconds: 0 for a push, which must not land after we have rolled back)."""
    command = ["git", *args]
    environ = {**(os.environ if environ is None else environ), "LANGUAGE": "C", "LC_ALL": "C"}
    process = subprocess.Popen(command, cwd=cwd, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = _communicate(process, timeout)
    except subprocess.TimeoutExpired:
        end_sessions({process.pid}, grace=grace)
        process.communicate()
        raise GitFailed(command, -1, f"fatal: git took longer than {timeout:g} s") from None
    except BaseException:
        end_sessions({process.pid}, grace=grace)
        process.wait()
        raise
    if process.returncode != 0:
        raise GitFailed(command, process.returncode, stderr.decode("utf-8", "surrogateescape"),
                        stdout.decode("utf-8", "surrogateescape"))
    return stdout.decode("utf-8", "surrogateescape").removesuffix("\n")


# How long the main thread may sit in one wait on git before it looks for a signal (below).
_SIGNAL_CHECK_SECONDS = 0.2


def _communicate(process: subprocess.Popen[bytes], timeout: float | None) -> tuple[bytes, bytes]:
    """`process.communicate(timeout)`, waking every _SIGNAL_CHECK_SECONDS. The kernel may hand Ctrl-C's
    SIGINT to any thread (the lease renewer, a worker pool); Python then only sets a flag that the main
    thread acts on when it next runs Python code, so one long wait on a push that a remote holds would
    ignore Ctrl-C until the remote let go."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return process.communicate(timeout=_SIGNAL_CHECK_SECONDS if left is None else
                                       min(left, _SIGNAL_CHECK_SECONDS))
        except subprocess.TimeoutExpired:
            if left is not None and left <= _SIGNAL_CHECK_SECONDS:
                raise


def _not_opened(start: Path, failed: GitFailed) -> UsageError:
    if "not a git repository" in failed.stderr:
        return NotARepository(f"{start} is not inside a git repository (use --repo DIR)")
    # Another user's repository (git's safe.directory), a damaged .git: git's own reason.
    return UsageError(redact(f"{start}: git cannot open the repository: {stderr_reason(failed.stderr, failed.status)}"))


@cache
def _repo_type() -> type[git.Repo]:
    import git

    class Failed(GitFailed, git.GitCommandError):
        """GitPython's failure as ours: GitPython's own code still catches it as a GitCommandError."""

    class OwnSessionGit(git.Git):
        """Every git command in a session of its own (children.py); ended when we are interrupted. A
        failure is a GitFailed (its GitPython subclass), with the one text."""

        def execute(self, command: Any, *args: Any, **kwargs: Any) -> Any:  # GitPython's overloads, passed on
            kwargs.setdefault("start_new_session", True)
            if kwargs.get("as_process"):  # a persistent process (cat-file --batch): GitPython ends it
                return super().execute(command, *args, **kwargs)
            before = children()
            try:
                return super().execute(command, *args, **kwargs)
            except KeyboardInterrupt:
                end_sessions(children() - before)
                raise
            except git.GitCommandError as error:
                shown = [str(part) for part in (error.command if isinstance(error.command, list | tuple)
                                                else str(error.command).split())]
                raise Failed(shown, error.status, _unwrapped(error.stderr), _unwrapped(error.stdout)) from None

    class Repo(git.Repo):
        GitCommandWrapperType = OwnSessionGit

    return Repo


def _gitpython_repo(path: str, settings: dict[str, str]) -> git.Repo:
    import git

    try:
        repo = _repo_type()(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotARepository(f"{path} is not inside a git repository (use --repo DIR)") from None
    # Every fetch and push of a run fails rather than waits for an answer nobody will give (CI) or that
    # blocks a maintainer's terminal mid-run: the same settings as add-gear's clone.
    repo.git.update_environment(**settings)
    return repo


def open_repo(path: Path | str | None = None) -> git.Repo:
    """GitPython's Repo of the repository around `path` (default: the current directory)."""
    return Checkout.find(path).repo


def _prompt_settings(cwd: Path | str) -> dict[str, str]:
    environ = non_interactive_env(cwd=cwd)
    return {name: environ[name] for name in _PROMPT_SETTINGS if name in environ}


def root(repo: ReadableRepo) -> Path:
    if repo.working_tree_dir is None:
        raise UsageError(f"{repo.git_dir} is a bare repository; an exchange needs a work tree")
    return Path(repo.working_tree_dir)


def resolve_commit(repo: ReadableRepo, rev: str, *, what: str) -> str:
    """The full hash of `rev`, or a UsageError that says where the revision came from."""
    try:
        return repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}")
    except _failures():
        hint = " (a shallow clone? fetch the full history)" if is_shallow(repo) else ""
        raise UsageError(f"{what} names {rev!r}, which is not a commit in this repository{hint}") from None


def is_shallow(repo: ReadableRepo) -> bool:
    return (Path(repo.git_dir) / "shallow").exists()


def unshallow(repo: git.Repo, remote: str) -> None:
    try:
        repo.git.fetch("-q", "--unshallow", remote)
    except _failures() as error:
        raise UsageError(redact(f"cannot deepen the clone from {remote}: {failure_reason(error)}")) from None


def changed_paths(repo: ReadableRepo, since: str, pathspecs: list[str]) -> list[str]:
    """Paths added, modified or changed in type (a file turned into a link: reported, never followed; not
    deleted) between `since` and the work tree, untracked included."""
    diff = repo.git.diff("--name-only", "--no-renames", "--diff-filter=AMT", "-z", since, "--", *pathspecs)
    untracked = repo.git.ls_files("--others", "--exclude-standard", "-z", "--", *pathspecs)
    return sorted({p for p in (diff + "\0" + untracked).split("\0") if p})


def tracked_paths(repo: ReadableRepo, commit: str, pathspecs: list[str]) -> set[str]:
    """Files in `commit` under `pathspecs`."""
    return {p for p in repo.git.ls_tree("-r", "-z", "--name-only", commit, "--", *pathspecs).split("\0") if p}


def head_commit(repo: git.Repo) -> str | None:
    try:
        return repo.head.commit.hexsha
    except ValueError:  # no commits yet
        return None


def dirty_paths(repo: git.Repo) -> list[str]:
    with index_lock_is_clear(repo.working_tree_dir or repo.git_dir):
        status = repo.git.status("--porcelain", "-z", "--untracked-files=all")
    return [entry[3:] for entry in status.split("\0") if len(entry) > 3]


BOT_NAME = "Exchange Bot"
BOT_EMAIL = "exchange-bot@users.noreply.invalid"


def has_identity(repo: git.Repo) -> bool:
    missing = {key for key, env in (("user.name", "GIT_AUTHOR_NAME"), ("user.email", "GIT_AUTHOR_EMAIL"))
               if not os.environ.get(env)}
    if not missing:
        return True
    try:  # both keys from one git, which exits 1 when it finds neither
        listing = repo.git.config("-z", "--get-regexp", r"^user\.(name|email)$")
    except _failures():
        return False
    # Every value set, in git's order: the last one of a key is the one git commits with, as `--get` gives it.
    values = dict(entry.partition("\n")[::2] for entry in listing.split("\0") if entry)
    return all(values.get(key, "").strip() for key in missing)


def bot_identity_env() -> dict[str, str]:
    """Commit as the bot through the environment of our own git calls: nothing to undo afterwards."""
    return {"GIT_AUTHOR_NAME": BOT_NAME, "GIT_AUTHOR_EMAIL": BOT_EMAIL,
            "GIT_COMMITTER_NAME": BOT_NAME, "GIT_COMMITTER_EMAIL": BOT_EMAIL}


def current_branch(repo: git.Repo) -> str:
    try:
        return repo.active_branch.name
    except TypeError:
        raise UsageError("HEAD is detached; check out the branch to process (CI: git checkout master)") from None


class CommitFailed(UsageError):
    """git would not commit (a signing program that fails, a full disk): the environment, not a defect."""


def commit_paths(repo: git.Repo, paths: list[str], message: str, env: dict[str, str]) -> str:
    with index_lock_is_clear(repo.working_tree_dir or repo.git_dir):
        repo.git.add("--", *paths)
        try:
            with repo.git.custom_environment(**env):
                repo.git.commit("-q", "--no-verify", "-m", message, "--", *paths)
        except _failures() as error:
            if index_locked(error, repo.working_tree_dir or repo.git_dir) is not None:
                raise
            raise CommitFailed(redact(f"git commit in {root(repo)} failed: {failure_reason(error)}")) from None
    return repo.head.commit.hexsha


def unstage(repo: git.Repo, paths: list[str]) -> None:
    """The index's entries for `paths` back to HEAD's (`git reset -q -- PATHS`), the files left as they are."""
    with index_lock_is_clear(repo.working_tree_dir or repo.git_dir):
        repo.git.reset("-q", "--", *paths)


def reset_hard(repo: git.Repo, commit: str) -> None:
    with index_lock_is_clear(repo.working_tree_dir or repo.git_dir):
        repo.git.reset("-q", "--hard", commit)


# Another push got there first: either git saw it before sending (non-fast-forward), or the remote's
# ref moved while our push was held (in a hook, say) and the update lost the race for the ref lock.
_RACE_MARKERS = ("non-fast-forward", "fetch first", "[rejected]", "cannot lock ref", "failed to update ref",
                 "incorrect old value")
_INDEX_LOCKED = re.compile(r"Unable to create '(?P<path>[^']*index\.lock)': File exists")


class AnotherProcessRunning(UsageError):
    """git's index.lock is held: another git (or exchange) process works in this work tree, or one died."""


def index_locked(error: GitFailed, root: os.PathLike[str] | str) -> AnotherProcessRunning | None:
    """The clear message for git's "index.lock: File exists" failure; None for any other failure."""
    match = _INDEX_LOCKED.search(str(error.stderr or error))
    if match is None:
        return None
    return AnotherProcessRunning(
        f"{root}: another process is running git in this work tree ({match['path']} exists); wait for it to "
        f"finish, or remove that file if no git or exchange process is running")


def require_no_index_lock(repo: git.Repo) -> None:
    """Fail before any work when another git process holds (or a dead one left) the index lock."""
    lock = Path(repo.git_dir) / "index.lock"
    if lock.exists():
        raise AnotherProcessRunning(
            f"{root(repo)}: another process is running git in this work tree ({lock} exists); wait for it to "
            f"finish, or remove that file if no git or exchange process is running")


@contextlib.contextmanager
def index_lock_is_clear(root: os.PathLike[str] | str) -> Iterator[None]:
    try:
        yield
    except _failures() as error:
        clear = index_locked(error, root)
        if clear is None:
            raise
        raise clear from None


class PushRejected(Exception):
    """The remote refused the push; `non_fast_forward` tells whether another push got there first. The
    message is one line: the ref's status and what the remote said (its hook's lines), no advice."""

    def __init__(self, message: str, *, non_fast_forward: bool) -> None:
        super().__init__(message)
        self.non_fast_forward = non_fast_forward

    @property
    def one_line(self) -> str:
        return str(self)


# What `git push` prints around its reason: the destination, the porcelain end marker, advice, and the
# summary line that repeats the destination.
_PUSH_CHATTER = ("To ", "Done", "hint:", "error: failed to push some refs")


def push_reason(stdout: str, stderr: str, status: object) -> str:
    """Why git refused a push, on one line: each refused ref's status (`[remote rejected] (pre-receive hook
    declined)`) and the remote's own lines (`remote: …`, prefix dropped)."""
    refused = [line.split("\t")[-1].strip() for line in stdout.splitlines() if line.startswith("!")]
    said = [line.removeprefix("remote:").strip() for line in stderr.splitlines() if line.startswith("remote:")]
    other = [line.strip() for line in stderr.splitlines()
             if line.strip() and not line.startswith(("remote:", *_PUSH_CHATTER))]
    reasons = [*refused, *(line for line in said if line), *other]
    return redact("; ".join(dict.fromkeys(reasons))) if reasons else f"git push exited with {status}"


def push(repo: git.Repo, remote: str, branch: str) -> None:
    """Push HEAD to `branch`, never prompting; if we are interrupted meanwhile, the push (and, for a local
    remote, its receive-pack and hooks) is killed at once so it cannot land after we have rolled back."""
    environ = {**os.environ, **dict(repo.git.environment())}  # open_repo's prompt settings
    try:
        run_git(["push", "--porcelain", remote, f"HEAD:refs/heads/{branch}"], repo.working_tree_dir, environ,
                grace=0)
    except GitFailed as failed:
        output = f"{failed.stdout}\n{failed.stderr}"
        non_fast_forward = any(marker in output for marker in _RACE_MARKERS)
        raise PushRejected(push_reason(failed.stdout, failed.stderr, failed.status),
                           non_fast_forward=non_fast_forward) from None


class RemoteUnreachable(UsageError):
    """The remote cannot be asked (network, authentication, a wrong URL): the environment failed, exit 2."""


@contextlib.contextmanager
def asking(remote: str) -> Iterator[None]:
    """git's failure to reach `remote` as one line: the remote (credentials redacted) and git's reason."""
    try:
        yield
    except _failures() as error:
        raise RemoteUnreachable(redact(f"cannot reach {remote}: {failure_reason(error)}")) from None


# What git prints around its reason for a failed clone or fetch.
_GIT_CHATTER = ("Cloning into", "Please make sure you have the correct access rights", "and the repository exists")


def failure_reason(error: GitFailed) -> str:
    """Why a git command failed: `stderr_reason` of what it wrote. Not redacted: the caller redacts its whole
    message."""
    return stderr_reason(error.stderr, error.status)


def _unwrapped(output: object) -> str:
    """What git wrote, without GitPython's wrapping of it in a GitCommandError ("\n  stderr: '<text>'")."""
    text = str(output or "")
    wrapped = re.fullmatch(r"\s*std(?:err|out): '(.*)'\s*", text, re.DOTALL)
    return wrapped[1] if wrapped else text


def stderr_reason(stderr: str, status: object) -> str:
    """What git said, on one line, minus its progress and advice; its exit status if it said nothing else.
    Not redacted: the caller redacts its whole message."""
    lines = (line.strip() for line in stderr.splitlines())
    reasons = [line for line in lines if line and not line.startswith(_GIT_CHATTER)]
    return "; ".join(reasons) if reasons else f"git exited with {status}"


CLONE_DEADLINE_ENV = "EXCHANGE_CLONE_TIMEOUT_SECONDS"
DEFAULT_CLONE_DEADLINE = 600.0


def clone_without_prompts(url: str, into: Path | str) -> None:
    """``git clone --no-checkout URL INTO`` that can never wait for an answer (`non_interactive_env`) nor
    forever: a transfer slower than 1 KB/s for a minute fails (git's own low-speed limit), and the whole
    clone has a deadline (EXCHANGE_CLONE_TIMEOUT_SECONDS, default 600). git and its helpers run in a
    session of their own, ended with the clone if we are interrupted or it runs out of time. GitFailed
    when it fails (`failure_reason` says why)."""
    command = ["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60", "clone", "--no-checkout", "--", url,
               str(into)]
    deadline = _clone_deadline()
    try:
        run_git(command, environ=non_interactive_env(), timeout=deadline)
    except GitFailed as failed:
        if failed.status != -1:
            raise
        raise GitFailed(failed.command, -1, f"fatal: the clone took longer than {deadline:g} s "
                                            f"({CLONE_DEADLINE_ENV})") from None


def _clone_deadline() -> float:
    try:
        value = float(os.environ.get(CLONE_DEADLINE_ENV) or DEFAULT_CLONE_DEADLINE)
    except ValueError:
        return DEFAULT_CLONE_DEADLINE
    return value if value > 0 else DEFAULT_CLONE_DEADLINE


def non_interactive_env(environ: dict[str, str] | None = None, *, cwd: Path | str | None = None) -> dict[str, str]:
    """The environment for a git command that must fail rather than ask: no terminal prompt for a user
    name or password (GIT_TERMINAL_PROMPT), no askpass program (a desktop's SSH_ASKPASS or core.askPass
    would open a window), and ssh in batch mode (an unknown host key or a password is an error) unless
    the user chose an ssh command. Run it in a new session too (start_new_session), so nothing it starts
    can open the terminal. A GIT_ASKPASS the user set (how CI hands git a token) is kept. `cwd`: the
    repository whose own core.sshCommand counts too."""
    environ = dict(os.environ if environ is None else environ)
    environ["GIT_TERMINAL_PROMPT"] = "0"
    environ.setdefault("GIT_ASKPASS", "")  # set but empty: git then asks neither core.askPass nor SSH_ASKPASS
    if not (environ.get("GIT_SSH_COMMAND") or environ.get("GIT_SSH") or _configured("core.sshCommand", environ, cwd)):
        environ["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return environ


_PROMPT_SETTINGS = ("GIT_TERMINAL_PROMPT", "GIT_ASKPASS", "GIT_SSH_COMMAND")


def _configured(key: str, environ: dict[str, str], cwd: Path | str | None = None) -> bool:
    try:
        return bool(run_git(["config", "--get", key], cwd, environ).strip())
    except GitFailed:
        return False


def fetch_branch(repo: git.Repo, remote: str, branch: str) -> str:
    with asking(remote):
        repo.git.fetch("-q", remote, f"refs/heads/{branch}")
    head: str = repo.git.rev_parse("FETCH_HEAD")
    return head


def fetch_branch_if_any(repo: git.Repo, remote: str, branch: str) -> str | None:
    """The remote branch's head, fetched; None when the remote has no such branch (RemoteUnreachable when
    the remote cannot be asked)."""
    with asking(remote):
        listing = _ls_remote(repo, remote, f"refs/heads/{branch}")
    if not listing.strip():
        return None
    return fetch_branch(repo, remote, branch)


def _ls_remote(repo: git.Repo, *args: str) -> str:
    # GitPython types ls_remote as any of execute()'s results; called like this (no as_process,
    # with_extended_output nor stdout_as_string=False), it returns git's output as a str.
    return cast(str, repo.git.ls_remote(*args))


def remote_branch_commit(repo: git.Repo, remote: str, branch: str) -> str | None:
    try:
        output = _ls_remote(repo, remote, f"refs/heads/{branch}")
    except _failures():
        return None
    return output.split()[0] if output.strip() else None


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
        return True
    except _failures():
        return False


def has_remote(repo: git.Repo, remote: str) -> bool:
    return remote in [r.name for r in repo.remotes] or "://" in remote or remote.startswith("/")


def path_exists_at(repo: git.Repo, commit: str, path: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{commit}:{path}")
        return True
    except _failures():
        return False


def blobs_at(repo: git.Repo, commit: str, directory: str) -> Iterator[git.Blob]:
    """Every file (and link) under `directory` in `commit`, unread (nothing when it has none). When `directory`
    is itself a file or a link, that one (as `git ls-tree -r` lists it): the caller names a link, never
    follows it."""
    try:
        tree = repo.commit(commit).tree / directory
    except KeyError:
        return
    if tree.type == "blob":
        yield tree
        return
    if tree.type != "tree":  # a submodule: none of its files are this repository's
        return
    # Traversed without as_edge: objects, never (parent, child) pairs.
    for item in cast("Iterator[git.Tree | git.Blob | git.Submodule]", tree.traverse()):
        if item.type == "blob":
            yield item


def blob_at(repo: git.Repo, commit: str, path: str) -> git.Blob | None:
    """The file (or link) `path` in `commit`, unread; None when it has no such file."""
    try:
        item = repo.commit(commit).tree / path
    except KeyError:
        return None
    return item if item.type == "blob" else None


def blob_id(repo: git.Repo, commit: str, path: str) -> str:
    """The git blob id of `path` as committed in `commit`."""
    blob: str = repo.git.rev_parse(f"{commit}:{path}")
    return blob.strip()


def remote_url(repo: git.Repo, remote: str) -> str | None:
    try:
        return repo.git.remote("get-url", remote).strip() or None
    except _failures():
        return None


def remote_default_branch(repo: git.Repo, remote: str) -> str | None:
    """The branch the remote's HEAD names (its default branch); None when it names none."""
    with asking(remote):
        listing = _ls_remote(repo, "--symref", remote, "HEAD")
    for line in listing.splitlines():
        target, _, name = line.partition("\t")
        if name == "HEAD" and target.startswith("ref: refs/heads/"):
            return target.removeprefix("ref: refs/heads/")
    return None
