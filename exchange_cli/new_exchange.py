"""`exchange init`: a new exchange of one's own, ready for contributors and for CI.

The skeleton is a few files from `data/new-exchange/`: the spec folders, the CircleCI pipeline (the
one this repository runs, installing the tool from `requirements/exchange.txt`), the policy with every
default spelled out, the tool's hashed dependency lock, a contributor README and a .gitignore. It is
written whole or not at all: nothing that exists is ever overwritten, and the one commit holds it all
(with the public signing key, when asked for one).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from . import __version__, git
from .commit_identity import commit_env
from .errors import UsageError
from .names import name_problem
from .provenance.keyring import generate_key_file, init_keys
from .provenance.keys import ED25519
from .repository import Exchange

TEMPLATES = "new-exchange"
TOOL_DISTRIBUTION = "exchange-cli"
DEFAULT_TITLE = "Gear exchange"
# Where each template goes; TITLE in a template is the exchange's title.
SKELETON = {
    ".circleci/config.yml": "circleci-config.yml",
    ".exchange.yaml": "exchange.yaml",
    ".gitignore": "gitignore",
    "README.md": "README.md",
    "requirements/runtime.txt": "runtime.txt",
}
EMPTY_FOLDERS = ("gears", "boutiques", "manifests")  # kept in git by a .gitkeep (hidden: never a spec)


@dataclass(frozen=True)
class ToolRequirement:
    """The pip requirement that installs this tool in CI, and whether it was found or guessed."""

    line: str
    known: bool


@dataclass(frozen=True)
class StartedExchange:
    root: Path
    branch: str
    commit: str
    files: list[str]
    tool: ToolRequirement
    key_id: str | None = None
    private_key: Path | None = None


def start_exchange(directory: Path, *, branch: str, title: str, sign_key: Path | None = None,
                   tool: ToolRequirement | None = None) -> StartedExchange:
    """Make `directory` an exchange: git repository, skeleton, one commit. `sign_key`: also generate a
    private key there (outside the exchange) and commit its public half. On any failure, what it made is
    removed again."""
    _check_branch(branch)
    root = directory.expanduser().resolve()
    tool = tool or tool_requirement()
    files = skeleton_files(title, tool, branch=branch)
    _check_target(root, files)
    private_key = _check_key_path(sign_key, root)
    made: list[Path] = []  # what to remove if a later step fails, children after their parents
    try:
        if not root.exists():
            root.mkdir(parents=True)
            made.append(root)
        if _init_repository(root, branch):
            made.append(root / ".git")
        written = _write_files(root, files, made)
        exchange = Exchange.open(root)
        key_id = None
        if private_key is not None:
            if not (root / ".exchange").exists():
                made.append(root / ".exchange")
            keys = init_keys(exchange, generate_key_file(private_key, exchange, ED25519), commit=False)
            made += [keys.path, private_key]
            key_id = keys.key.key_id
            written.append(exchange.relative(keys.path) or str(keys.path))
        commit = git.commit_paths(exchange.repo, written, "Start the exchange (exchange init)", commit_env(exchange.repo))
    except BaseException:
        _remove(made)
        raise
    return StartedExchange(root, branch, commit, written, tool, key_id, private_key)


def _write_files(root: Path, files: dict[str, bytes], made: list[Path]) -> list[str]:
    for relative, content in sorted(files.items()):
        path = root / relative
        for folder in reversed(path.relative_to(root).parents[:-1]):
            if not (root / folder).exists():
                (root / folder).mkdir()
                made.append(root / folder)
        with path.open("xb") as out:  # never over a file that appeared since the check
            made.append(path)
            out.write(content)
    return sorted(files)


def _remove(made: list[Path]) -> None:
    for path in reversed(made):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def skeleton_files(title: str, tool: ToolRequirement, *, branch: str = "master") -> dict[str, bytes]:
    """Relative path -> content of every file `init` writes; the pipeline processes `branch`."""
    import yaml  # to quote the title; `exchange init --help` shows DEFAULT_TITLE without it

    title = " ".join(title.split()) or DEFAULT_TITLE
    quoted_title = yaml.safe_dump(title, default_style='"', width=10_000).strip()
    files = {}
    for relative, template in SKELETON.items():
        text = resources.files("exchange_cli").joinpath("data", TEMPLATES, template).read_text(encoding="utf-8")
        if relative == ".exchange.yaml":
            text = text.replace("title: TITLE", f"title: {quoted_title}")
        elif relative == ".circleci/config.yml":
            text = re.sub(r"\bmaster\b", branch, text)  # a NAME (checked): safe in YAML and in a refspec
        elif relative == "README.md":
            text = text.replace("# TITLE", f"# {title}", 1)
        files[relative] = text.encode("utf-8")
    files["requirements/exchange.txt"] = _requirement_file(tool).encode("utf-8")
    for folder in EMPTY_FOLDERS:
        files[f"{folder}/.gitkeep"] = b""
    return files


def _requirement_file(tool: ToolRequirement) -> str:
    why = ("# The exchange tool, at the version CI runs (installed with --no-deps after runtime.txt's pinned\n"
           "# dependencies). Change both together when upgrading.\n")
    if not tool.known:
        why += ("# `exchange init` could not tell where this tool was installed from: replace the line below with\n"
                "# a requirement pip can install, e.g. exchange-cli @ git+https://example.org/exchange-cli@<commit>\n")
    return f"{why}{tool.line}\n"


def tool_requirement() -> ToolRequirement:
    """How CI installs the tool that runs `init`: the git URL and commit it was installed from (PEP 610's
    direct_url.json, or the checkout it runs from); else its name and version, marked as a guess."""
    found = _installed_from_vcs() or _running_from_checkout()
    if found is not None:
        return ToolRequirement(f"{TOOL_DISTRIBUTION} @ git+{found[0]}@{found[1]}", True)
    return ToolRequirement(f"{TOOL_DISTRIBUTION}=={__version__}", False)


def _installed_from_vcs() -> tuple[str, str] | None:
    try:
        text = metadata.distribution(TOOL_DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        record = json.loads(text or "null")
    except ValueError:
        return None
    vcs = record.get("vcs_info") if isinstance(record, dict) else None
    if isinstance(vcs, dict) and vcs.get("vcs") == "git" and _shareable(str(record.get("url", ""))):
        return str(record["url"]), str(vcs.get("commit_id", ""))
    return None


def _running_from_checkout() -> tuple[str, str] | None:
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / ".git").exists():
        return None

    def ask(*args: str) -> str:
        try:
            return git.run_git(["-C", str(checkout), *args]).strip()
        except git.GitFailed:
            return ""

    url, commit = ask("remote", "get-url", "origin"), ask("rev-parse", "HEAD")
    return (url, commit) if _shareable(url) and commit else None


def _shareable(url: str) -> bool:
    """A URL CI can clone from: not a path on this machine."""
    return url.startswith(("https://", "ssh://", "git@", "git+ssh://"))


def _check_branch(branch: str) -> None:
    problem = name_problem(branch)
    if problem is not None:
        raise UsageError(f"--branch {branch!r}: {problem}")


def _check_key_path(sign_key: Path | None, root: Path) -> Path | None:
    if sign_key is None:
        return None
    path = sign_key.expanduser().resolve()
    if path == root or path.is_relative_to(root):
        raise UsageError(f"--sign-key-file {sign_key}: inside the new exchange; a private key must never be "
                         "committed: write it elsewhere (and give it to CI as a secret)")
    if path.exists() or path.is_symlink():
        raise UsageError(f"--sign-key-file {sign_key}: the file exists; choose a new path")
    return path


def _check_target(root: Path, files: dict[str, bytes]) -> None:
    """Refuse before writing anything: a file of ours already there, or a directory inside another repository."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a directory")
    present = sorted(relative for relative in files if (root / relative).exists() or (root / relative).is_symlink())
    taken = [folder for folder in EMPTY_FOLDERS if (root / folder).exists() and any((root / folder).iterdir())]
    if taken or present:
        listed = ", ".join([*(f"{folder}/" for folder in taken), *present])
        raise UsageError(f"{root} already holds {listed}: init starts a new exchange and overwrites nothing "
                         "(an existing exchange needs no init; see docs/migrating.md)")
    enclosing = _enclosing_work_tree(root)
    if enclosing is not None and enclosing != root:
        raise UsageError(f"{root} is inside the git repository {enclosing}; an exchange is a repository of its own: "
                         "choose a directory outside it, or its top")


def _enclosing_work_tree(root: Path) -> Path | None:
    probe = root
    while not probe.exists():
        probe = probe.parent
    try:
        return Path(git.run_git(["-C", str(probe), "rev-parse", "--show-toplevel"]).strip()).resolve()
    except git.GitFailed:
        return None


def _init_repository(root: Path, branch: str) -> bool:
    """A new repository on `branch` (True); an existing one (at its top) must be on it already (False)."""
    if _enclosing_work_tree(root) is None:
        try:
            git.run_git(["init", "-q", "-b", branch, str(root)])
        except git.GitFailed as failed:
            raise UsageError(f"cannot create the repository {root}: {failed}") from None
        return True
    try:
        current = git.run_git(["-C", str(root), "symbolic-ref", "--short", "HEAD"]).strip()
    except git.GitFailed:
        current = ""
    if current != branch:
        raise UsageError(f"{root} is a repository on branch {current or '(detached)'}, not {branch}: check out "
                         f"{branch}, or pass --branch {current or 'NAME'} (CI processes that branch)")
    return False
