"""One git runner: however a git command runs (git.run_git, GitPython's repo.git.*, a push, a clone), its
failure is one error type, git.GitFailed, with one text: the command, its exit status and git's reason, with
the credentials in any URL redacted (issue 24)."""

from __future__ import annotations

from pathlib import Path

import git as gitpython
import pytest

from exchange_cli import git
from tests.infra.gitrepo import init_repo

SECRET_URL = "http://someone:s3cret-token@127.0.0.1:9/acme/gear.git"  # port 9 (discard): nothing listens


def failure_of(run) -> git.GitFailed:
    with pytest.raises(git.GitFailed) as raised:
        run()
    return raised.value


@pytest.fixture
def repo(tmp_path: Path) -> gitpython.Repo:
    init_repo(tmp_path / "repo")
    return git.open_repo(tmp_path / "repo")


def test_every_way_of_running_git_fails_with_the_same_text(repo: gitpython.Repo, tmp_path: Path) -> None:
    failures = {
        "run_git": failure_of(lambda: git.run_git(["fetch", "-q", SECRET_URL], repo.working_tree_dir)),
        "gitpython": failure_of(lambda: repo.git.fetch("-q", SECRET_URL)),
        "clone": failure_of(lambda: git.clone_without_prompts(SECRET_URL, tmp_path / "clone")),
    }
    for how, failure in failures.items():
        text = str(failure)
        assert text.startswith("git ") and " exited with 128: fatal: unable to access " in text, (how, text)
        assert "https://***@" in text or "http://***@" in text, (how, text)
        assert "s3cret-token" not in text and "stderr: '" not in text and "\n" not in text, (how, text)
        assert git.failure_reason(failure).startswith("fatal: unable to access "), how


def test_a_gitpython_failure_is_still_a_gitcommanderror_for_gitpython_itself(repo: gitpython.Repo) -> None:
    failure = failure_of(lambda: repo.git.rev_parse("--verify", "no-such-branch"))
    assert isinstance(failure, gitpython.GitCommandError) and failure.status == 128


def test_a_rejected_push_says_why_in_one_line(repo: gitpython.Repo, tmp_path: Path) -> None:
    (Path(repo.working_tree_dir) / "f").write_text("x")
    repo.git.add("f")
    repo.git.commit("-q", "-m", "x")
    remote = tmp_path / "remote.git"
    git.run_git(["init", "-q", "--bare", str(remote)])
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(git.PushRejected) as raised:
        git.push(repo, str(remote), "master")
    assert raised.value.one_line == "[remote rejected] (pre-receive hook declined); frozen today"
    assert not raised.value.non_fast_forward


def test_ctrl_c_taken_by_another_thread_still_stops_a_git_that_waits(repo: gitpython.Repo, tmp_path: Path) -> None:
    """The kernel gives a process's SIGINT to any of its threads (the lease renewer, a worker pool); Python
    then only sets a flag, which the main thread sees when it next runs Python code. A main thread blocked
    reading a push that a remote holds never did: Ctrl-C hung `process` until the remote let go (seen in a
    parallel run of the suite). The push must end at once, and not land."""
    import signal
    import threading
    import time

    remote = init_repo(tmp_path / "remote.git", bare=True)
    release, reached = tmp_path / "release", tmp_path / "reached"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ntouch '{reached}'\nwhile [ ! -e '{release}' ]; do sleep 0.05; done\nexit 0\n")
    hook.chmod(0o755)
    repo.index.commit("a commit to push")
    bystander = threading.Thread(target=time.sleep, args=(30,), daemon=True)
    bystander.start()

    def ctrl_c_to_the_bystander() -> None:
        while not reached.exists():
            time.sleep(0.02)
        signal.pthread_kill(bystander.ident or 0, signal.SIGINT)
        time.sleep(5)
        release.touch()  # the old code waits for this

    threading.Thread(target=ctrl_c_to_the_bystander, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        git.run_git(["push", "-q", str(remote), "HEAD:refs/heads/master"], repo.working_tree_dir, grace=0)
    assert time.monotonic() - started < 4, "the push ended when Ctrl-C came, not when the remote let go"
    release.touch()
    time.sleep(0.5)
    heads = git.run_git(["for-each-ref", "refs/heads"], remote)
    assert heads == "", f"the interrupted push must not land: {heads}"
