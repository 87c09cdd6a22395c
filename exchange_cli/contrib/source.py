"""Where `add-gear` / `add-boutique` read a spec from: a JSON file, a source directory, or a git
repository at a ref (``URL[@REF]``, cloned with gitpython into a temporary directory)."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import git as gitpython

from .. import git
from ..confined import NotConfined, TooLarge, read_below
from ..errors import Category, ExchangeError, UsageError, describe_os_error, redact
from ..jsonpos import JsonText, first_problem_line, read_json
from ..specs import MAX_SPEC_BYTES, SpecKind

GEAR_SPEC_FILE = "manifest.json"
GIT_SCHEMES = ("http", "https", "git", "ssh", "file")
_SCP_LIKE = re.compile(r"[\w.-]+@[\w.-]+:(?!//)")


class SourceError(ExchangeError):
    pass


class CloneFailed(SourceError):
    """The repository could not be cloned (unreachable, no access, not a repository): exit 2."""

    category = Category.ENVIRONMENT


@dataclass(frozen=True)
class SpecSource:
    description: str  # for messages: the path, or the URL (credentials redacted) and ref
    document: JsonText  # the contributor's own text: problems are reported at its lines and columns

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.document.data  # an object: _parse refuses anything else
        return data


def read_source(source: str, kind: SpecKind, *, spec_file: str | None = None) -> SpecSource:
    """A source is read as specs are: a link is named and refused, never followed (a contributor's
    `manifest.json` could point at a token file), and a file past MAX_SPEC_BYTES is refused unread."""
    path = Path(source)
    if path.is_symlink() or path.is_file():
        return _parse(_read_file(path.parent, path.name, str(path)), str(path))
    if path.is_dir():
        names = sorted(p.name for p in path.iterdir() if p.is_symlink() or not p.is_dir())
        name = _spec_file_in(names, lambda n: _read_file(path, n, str(path / n)), kind, spec_file, str(path))
        return _parse(_read_file(path, name, str(path / name)), str(path / name))
    if is_git_url(source):
        url, ref = split_ref(source)
        return _read_from_git(url, ref, kind, spec_file)
    raise UsageError(f"{source}: no such file or directory, and not a git URL (https://…, file://…, git@host:path)")


def is_git_url(text: str) -> bool:
    return urlsplit(text).scheme in GIT_SCHEMES or bool(_SCP_LIKE.match(text))


def split_ref(text: str) -> tuple[str, str | None]:
    """``URL@REF`` -> (URL, REF). Only an '@' in the path counts: one in ``user@host`` is not a ref."""
    if _SCP_LIKE.match(text):
        host, _, path = text.partition(":")
        repository, at, ref = path.rpartition("@")
        return (f"{host}:{repository}", ref or None) if at else (text, None)
    parts = urlsplit(text)
    repository, at, ref = parts.path.rpartition("@")
    if not at:
        return text, None
    return urlunsplit(parts._replace(path=repository)), ref or None


def _read_from_git(url: str, ref: str | None, kind: SpecKind, spec_file: str | None) -> SpecSource:
    shown = redact(url) + (f"@{ref}" if ref else "")
    with tempfile.TemporaryDirectory(prefix="exchange-add-") as temp:
        # No checkout: only the tree at the ref is read. No prompt: a missing credential or an unknown
        # ssh host key is an error, not a wait for an answer that may never come.
        try:
            git.clone_without_prompts(url, temp)
        except git.GitFailed as failed:
            raise CloneFailed(f"cannot clone {shown}: {redact(git.failure_reason(failed))}") from None
        with git.open_repo(temp) as repo:
            tree = _tree_at(repo, ref, shown)
            names = sorted(item.name for item in tree.blobs)
            name = _spec_file_in(names, lambda n: _read_blob(tree[n], f"{shown}:{n}"), kind, spec_file, shown)
            return _parse(_read_blob(tree[name], f"{shown}:{name}"), f"{shown}:{name}")


def _tree_at(repo: gitpython.Repo, ref: str | None, shown: str) -> gitpython.Tree:
    candidates = [ref, f"origin/{ref}"] if ref else ["HEAD"]
    for candidate in candidates:
        try:
            return repo.commit(repo.git.rev_parse("--verify", "--quiet", f"{candidate}^{{commit}}")).tree
        except (git.GitFailed, ValueError):
            continue
    raise SourceError(f"{shown}: no such branch, tag or commit in that repository")


def _spec_file_in(names: list[str], read: Callable[[str], bytes], kind: SpecKind, spec_file: str | None,
                  shown: str) -> str:
    """The spec's file among a tree's top-level files: --file, else manifest.json for a gear, else the
    one JSON file that is a Boutiques descriptor."""
    if spec_file is not None:
        if spec_file not in names:
            raise SourceError(f"{shown}: has no file {spec_file}")
        return spec_file
    if kind is SpecKind.GEAR:
        if GEAR_SPEC_FILE not in names:
            raise SourceError(f"{shown}: has no {GEAR_SPEC_FILE}; a gear's source keeps its manifest there")
        return GEAR_SPEC_FILE
    descriptors = [n for n in names if n.endswith(".json") and _is_descriptor(read(n))]
    if len(descriptors) != 1:
        found = ", ".join(descriptors) or "none"
        raise SourceError(f"{shown}: expected one Boutiques descriptor (a JSON file with \"command-line\"), "
                          f"found {found}; pass --file NAME")
    return descriptors[0]


def _is_descriptor(content: bytes) -> bool:
    data = read_json(content).data
    return isinstance(data, dict) and "command-line" in data


def _read_file(directory: Path, name: str, shown: str) -> bytes:
    try:
        return read_below(directory, name, limit=MAX_SPEC_BYTES)
    except TooLarge as error:
        _check_size(error.size, shown)
        raise
    except NotConfined as error:
        raise SourceError(f"{shown} {error.reason}; a spec is read from a regular file, and links are never "
                          "followed (copy the file itself)") from None
    except OSError as error:
        raise SourceError(f"cannot read {describe_os_error(error)}") from None


def _read_blob(blob: Any, shown: str) -> bytes:  # a gitpython Blob (a tree item is typed Blob | Tree | Submodule)
    _check_size(blob.size, shown)
    content: bytes = blob.data_stream.read()
    return content


def _check_size(size: int, shown: str) -> None:
    """The exchange refuses specs past MAX_SPEC_BYTES (spec-size): do not read one into memory to add it."""
    if size > MAX_SPEC_BYTES:
        raise SourceError(f"{shown}: the file is {size:,} bytes, over the limit of {MAX_SPEC_BYTES:,} bytes; "
                          "a spec is a few kilobytes of JSON [spec-size]")


def _parse(content: bytes, shown: str) -> SpecSource:
    document = read_json(content)
    if not document.ok:
        raise SourceError(first_problem_line(shown, document))
    if not isinstance(document.data, dict):
        raise SourceError(f"{shown}: a spec is a JSON object, this is a {type(document.data).__name__}")
    return SpecSource(shown, document)
