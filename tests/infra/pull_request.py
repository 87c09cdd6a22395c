"""A public exchange and a contributor who is not on its side, in real git: a bare "upstream" whose
master the maintainers push, a fork-like clone where the contributor commits a pull-request branch, and
the CI checkout of that pull request (a clone of upstream, detached at the PR's head, origin/master
fetched), which is what the branch job runs in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.infra.gitrepo import ExchangeRepo, init_repo, run_git


@dataclass
class PullRequestWorld:
    root: Path
    maintainer: ExchangeRepo  # a maintainer's clone of upstream: what master holds

    @property
    def upstream(self) -> Path:
        return self.root / "upstream.git"

    def publish_master(self) -> str:
        """Push the maintainer's master to upstream; its commit."""
        self.maintainer.git("push", "-q", "origin", "master")
        return self.maintainer.git("rev-parse", "HEAD")

    def fork(self, name: str = "fork") -> ExchangeRepo:
        """The contributor's clone of upstream's master, on a new branch `pr`."""
        path = self.root / name
        run_git(self.root, "clone", "-q", str(self.upstream), str(path))
        fork = ExchangeRepo(path)
        for key, value in (("user.name", "Mallory Contributor"), ("user.email", "mallory@example.invalid"),
                           ("commit.gpgsign", "false")):
            fork.git("config", key, value)
        fork.git("checkout", "-q", "-b", "pr")
        return fork

    def ci_checkout(self, fork: ExchangeRepo, name: str = "ci") -> Path:
        """What CircleCI checks out for the pull request: upstream cloned, the PR's head fetched from the
        fork and checked out detached, master present as origin/master."""
        path = self.root / name
        run_git(self.root, "clone", "-q", str(self.upstream), str(path))
        run_git(path, "fetch", "-q", str(fork.root), "pr")
        run_git(path, "checkout", "-q", "--detach", "FETCH_HEAD")
        return path


def pull_request_world(root: Path) -> PullRequestWorld:
    """An upstream exchange with one commit on master (manifests/README.md), and a maintainer's clone."""
    root.mkdir(parents=True, exist_ok=True)
    init_repo(root / "upstream.git", bare=True)
    maintainer = ExchangeRepo(init_repo(root / "maintainer"))
    maintainer.write("manifests/README.md", "manifests\n")
    maintainer.commit("empty exchange")
    maintainer.git("remote", "add", "origin", str(root / "upstream.git"))
    world = PullRequestWorld(root, maintainer)
    world.publish_master()
    return world
