"""Real git repositories in tmp dirs: an exchange work tree and, when asked, a bare remote."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra import require_executable

EXAMPLES = Path(__file__).resolve().parents[2]


def run_git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class ExchangeRepo:
    """A throwaway exchange: write specs, commit, and set the sentinel like CI would."""

    root: Path

    def git(self, *args: str) -> str:
        return run_git(self.root, *args)

    def write(self, relative: str, content: Any) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content, indent=4) + "\n")
        return path

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return head_after_commit(self.root)

    def git_repo(self):
        import git

        return git.Repo(self.root)

    def set_sentinel(self, commit: str) -> None:
        self.write(".sentinel", commit + "\n")

    def push_to_new_remote(self, path: Path) -> Path:
        """A bare repository at `path`, added as `origin`, holding this branch."""
        init_repo(path, bare=True)
        self.git("remote", "add", "origin", str(path))
        self.git("push", "-q", "origin", "master")
        return path

    def add_gear_with_image(self, images: Path, org: str, name: str, version: str = "1.0.0") -> dict[str, Any]:
        """A gear at gears/<org>/<name>.json whose image is built into the OCI layout `images`."""
        from exchange_cli.demo_image import build_demo_image

        gear, image = gear_and_image(org, name, version)
        build_demo_image(images, image, gear)
        self.write(f"gears/{org}/{name}.json", gear)
        return gear


def example_gear(**changes: Any) -> dict[str, Any]:
    """The repository's hello-world gear with `changes` applied (None deletes a key)."""
    return _example("gears/examples/hello-world.json", changes)


def example_boutique(**changes: Any) -> dict[str, Any]:
    """The repository's word-count boutique with `changes` applied (None deletes a key)."""
    return _example("boutiques/examples/word-count.json", changes)


def _example(relative: str, changes: dict[str, Any]) -> dict[str, Any]:
    spec = json.loads((EXAMPLES / relative).read_text())
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def head_after_commit(root: Path) -> str:
    """HEAD's commit, read where git has just written it (gitrepository-layout: HEAD names a branch, whose
    loose ref a commit writes, or holds the commit when detached): a `git rev-parse HEAD` after each
    commit was 1,400 of the suite's 17,000 git processes. Anything else (a `.git` file, a packed ref)
    asks git."""
    git_dir = root / ".git"
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if head.startswith("ref: refs/heads/"):
            head = (git_dir / head.removeprefix("ref: ")).read_text().strip()
    except OSError:  # NotADirectoryError for a .git file, FileNotFoundError for a packed ref
        return run_git(root, "rev-parse", "HEAD")
    return head if re.fullmatch(r"[0-9a-f]{40}", head) else run_git(root, "rev-parse", "HEAD")


COMMITTER_CONFIG = "[user]\n\tname = Exchange Test\n\temail = test@exchange.invalid\n[commit]\n\tgpgsign = false\n"


def init_repo(path: Path, *, bare: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    run_git(path, "init", "-q", *(["--bare"] if bare else []), "-b", "master")
    if not bare:
        # Written as `git config` writes them: three `git config` processes per repository were some
        # 1,800 of the suite's git processes.
        with (path / ".git" / "config").open("a") as config:
            config.write(COMMITTER_CONFIG)
    return path


def empty_exchange(path: Path) -> ExchangeRepo:
    """A new exchange repository at `path` with one commit and nothing in it yet."""
    require_executable("git")
    repo = ExchangeRepo(init_repo(path))
    repo.write("manifests/README.md", "manifests\n")
    repo.commit("empty exchange")
    return repo


@pytest.fixture(scope="session")
def empty_exchange_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One empty exchange per worker, which each test's exchange_repo is a copy of: its `git init`, add and
    commit were 8.6 ms of CPU per test, the copy is 1.4 ms. Every copy starts at the same commit, as clones
    of one repository do."""
    return empty_exchange(tmp_path_factory.mktemp("empty-exchange") / "exchange").root


@pytest.fixture
def exchange_repo(tmp_path: Path, empty_exchange_template: Path) -> ExchangeRepo:
    root = tmp_path / "exchange"
    shutil.copytree(empty_exchange_template, root, symlinks=True)
    return ExchangeRepo(root)


@pytest.fixture
def copy_examples(exchange_repo: ExchangeRepo) -> ExchangeRepo:
    for directory in ("gears", "boutiques"):
        shutil.copytree(EXAMPLES / directory, exchange_repo.root / directory, dirs_exist_ok=True)
    exchange_repo.commit("examples")
    return exchange_repo


def gear_and_image(org: str, name: str, version: str = "1.0.0", **changes: Any) -> tuple[dict[str, Any], str]:
    """The example gear as <org>/<name> `version` (with `changes`) and its image's reference,
    registry.example.org/<org>/<name>:<version>: what the fixtures commit and build as a demo image."""
    image = f"registry.example.org/{org}/{name}:{version}"
    return example_gear(name=name, version=version, custom={"gear-builder": {"image": image}}, **changes), image


def gears_on_a_remote(repo: ExchangeRepo, tmp_path: Path, names: Iterable[str],
                      adjust_image: Callable[[Path, str], None] = lambda images, image: None) -> tuple[Path, Path]:
    """Gears acme/<name> 1.0.0, their demo images in an OCI layout, committed and pushed to a fresh bare
    remote `origin`: (remote, layout). `adjust_image(layout, reference)` may change each image."""
    from exchange_cli.demo_image import build_demo_image

    remote = init_repo(tmp_path / "remote.git", bare=True)
    repo.git("remote", "add", "origin", str(remote))
    images = tmp_path / "images"
    for name in names:
        gear, image = gear_and_image("acme", name)
        build_demo_image(images, image, gear)
        adjust_image(images, image)
        repo.write(f"gears/acme/{name}.json", gear)
    repo.commit("gears")
    repo.git("push", "-q", "origin", "master")
    return remote, images
