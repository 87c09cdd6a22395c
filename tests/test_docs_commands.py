"""Every command the README and docs/ show is run, as written, in a real exchange.

The world: an exchange made by `exchange init`, holding acme/hello-world@1.0.0 (processed, signed, pushed
to a bare remote), a second gear `x` and a boutique, its images in a real registry, a local bucket.
Each ```sh block runs line by line in a fresh copy of that world; a line must exit 0. A line that is one
`exchange` command bash would pass on unchanged runs through the same CLI in this process, anything else
(a pipe, a redirection, an expansion) through bash. Names the docs use for things that are not here map
to local stand-ins (NAMES, TOKENS); lines that need what no test may reach (Google Cloud, a CircleCI
account, cosign) are listed with their reason in NOT_RUN.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from exchange_cli.cli import cli
from exchange_cli.demo import GEAR
from exchange_cli.demo_image import build_demo_image
from tests.infra.commands import exchange_here
from tests.infra.gitrepo import example_boutique, run_git
from tests.infra.image_files import base_layer, legacy_docker_save
from tests.infra.registry import RegistryServer

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
DOC_IMAGE = "registry.example.org/acme/hello-world:1.0.0"

# Lines no test here can run, and why (checked both ways: each one is still in the docs).
NOT_RUN = {
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/exchange demo":
        "the README's first set-up command: tests/test_demo.py runs `exchange demo` as it does",
    "./scripts/test": "the README's second set-up command is this test suite",
    "gcloud ": "Google Cloud: no test reaches Google",
    "exchange export my-local-build:dev -o rootfs.tgz --source docker":
        "needs a Docker engine: tests/test_export_vs_docker.py exports from a real one",
    "cosign ": "cosign is not installed here: tests/test_provenance.py checks the envelopes with DSSE's "
               "reference library and the in-toto attestation bindings instead",
    ".venv/bin/python tests/fuzz_documents.py --minutes 10": "a ten-minute fuzz hunt; tests/test_fuzz_documents.py "
                                                             "runs its seeds",
    "git worktree add /tmp/before <commit>": "runs the tests themselves, against an older commit",
}


@dataclass(frozen=True)
class Block:
    document: Path
    lines: list[str]

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.lines[0][:60]}"


def shell_blocks() -> list[Block]:
    blocks = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in re.finditer(r"^( *)```(sh|bash|shell)\n(.*?)^\1```", text, re.MULTILINE | re.DOTALL):
            body = re.sub(r"\\\n\s*", "", match[3])  # continuation lines, joined
            lines = [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]
            blocks.append(Block(document, lines))
    return blocks


def reason_not_run(line: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if line.startswith(start)), None)


def test_every_not_run_entry_is_still_shown() -> None:
    shown = [line for block in shell_blocks() for line in block.lines]
    for start in NOT_RUN:
        assert any(line.startswith(start) for line in shown), f"NOT_RUN lists {start!r}, which no doc shows now"


def test_the_docs_show_no_untagged_or_unknown_code_blocks() -> None:
    """A command block without `sh` would never be run; output and files are tagged text, yaml, json."""
    for document in DOCUMENTS:
        fences = re.findall(r"^ *```(\S*)$", document.read_text(encoding="utf-8"), re.MULTILINE)
        opening = fences[0::2]
        assert all(tag in {"sh", "text", "yaml", "json"} for tag in opening), (document.name, opening)


@dataclass(frozen=True)
class World:
    root: Path  # holds exchange/, remote.git, bucket/, files/, home/
    registry: str
    manifest: str  # acme/hello-world@1.0.0's, relative to the exchange

    def restore(self) -> None:
        """The world as built, at the same path: manifests' file:// URLs, the remote and the bucket's
        ownership record all name this path."""
        shutil.rmtree(self.root)
        shutil.copytree(self.root.with_name(f"{self.root.name}-pristine"), self.root, symlinks=True)


def push_layout_image(registry: RegistryServer, layout: Path, repository: str, tag: str) -> None:
    """Copy the one image of an OCI layout (build_demo_image's) into the registry."""
    index = json.loads((layout / "index.json").read_text())
    descriptor = index["manifests"][-1]

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    manifest = blob(descriptor["digest"])
    parsed = json.loads(manifest)
    for part in [parsed["config"], *parsed["layers"]]:
        registry.push_blob(repository, blob(part["digest"]))
    registry.push_manifest(repository, tag, manifest, descriptor["mediaType"])


def exchange_env(world_root: Path, registry: str) -> dict[str, str]:
    home = world_root / "home"
    # TMPDIR: what a command makes there and keeps for the reader (`exchange demo` keeps its exchange to
    # verify) goes with the world, not into the machine's /tmp.
    return {**os.environ, "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "GIT_CEILING_DIRECTORIES": str(world_root),
            "TMPDIR": str(world_root / "tmp"),
            "EXCHANGE_BUCKET_URI": (world_root / "bucket").as_uri(), "EXCHANGE_CACHE_DIR": str(world_root / "cache"),
            "EXCHANGE_REPORT_DIR": str(world_root / "reports"), "GIT_AUTHOR_NAME": "Docs Reader",
            "GIT_AUTHOR_EMAIL": "reader@docs.invalid", "GIT_COMMITTER_NAME": "Docs Reader",
            "GIT_COMMITTER_EMAIL": "reader@docs.invalid", "NO_COLOR": "1"}


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = exchange_here(*args, env=env, cwd=cwd)
    assert done.returncode == 0, f"exchange {shlex.join(args)}: {done.stdout}{done.stderr}"


# Shell syntax outside quotes, or expansions inside double quotes: such a line is bash's to run.
_SINGLE_QUOTED, _DOUBLE_QUOTED = re.compile(r"'[^']*'"), re.compile(r'"[^"]*"')
_SHELL_SYNTAX, _EXPANDED_IN_QUOTES = re.compile(r"[|&;<>$`\\*?~(){}\[\]!]"), re.compile(r"[$`\\!]")


def plain_exchange_command(line: str) -> list[str] | None:
    """The arguments of a line that is one `exchange` command and nothing bash would expand or redirect
    (quotes and a trailing comment allowed); None for any other line."""
    unquoted = _SINGLE_QUOTED.sub("", line)
    if any(_EXPANDED_IN_QUOTES.search(quoted) for quoted in _DOUBLE_QUOTED.findall(unquoted)):
        return None
    code = _DOUBLE_QUOTED.sub("", unquoted).partition(" #")[0]
    words = shlex.split(line, comments=True)
    if _SHELL_SYNTAX.search(code) or not words or words[0] != "exchange":
        return None
    return words[1:]


def run_line(line: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """A documented line as a reader runs it: a plain `exchange` command in this process (what a line does
    is the same either way; tests/test_demo.py runs the installed `exchange` script itself), anything
    else by bash."""
    args = plain_exchange_command(line)
    done = exchange_here(*args, env=env, cwd=cwd) if args is not None else subprocess.run(
        ["bash", "-c", f"set -eo pipefail; {line}"], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def docs_world(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("docs-world")
    images, files, home = root / "files" / "layout", root / "files", root / "home"
    for path in (images, home / "my-gear", root / "bucket", root / "other-bucket", root / "tmp"):
        path.mkdir(parents=True)
    env = exchange_env(root, registry.host)
    image = DOC_IMAGE.replace("registry.example.org", registry.host)

    def gear(name: str) -> dict:
        """A gear whose image (pushed here) embeds the same name, as the conformance check wants."""
        return dict(GEAR, name=name, custom={"gear-builder": {"category": "utility",
                                                              "image": f"{registry.host}/acme/{name}:1.0.0"}})

    for name in ("hello-world", "x", "my-gear"):
        layout = root / "layouts" / name
        build_demo_image(layout, f"{registry.host}/acme/{name}:1.0.0", gear(name))
        push_layout_image(registry, layout, f"acme/{name}", "1.0.0")
    push_layout_image(registry, root / "layouts" / "hello-world", "org/img", "1.0")
    build_demo_image(images, f"{registry.host}/org/img:1.0", GEAR)
    (files / "img.tar").write_bytes(legacy_docker_save([base_layer()]))
    (files / "job.json").write_text(json.dumps({"config": {"name": "Ada"}, "inputs": {}}))
    boutique = example_boutique(name="new-tool", **{"container-image": {"type": "docker", "image": image}})
    (files / "descriptor.json").write_text(json.dumps(dict(boutique, name="another-tool")))
    (home / "my-gear" / "manifest.json").write_text(json.dumps(gear("my-gear")))

    key = root / "keys" / "world.key"
    run(["init", "exchange", "--sign-key-file", str(key)], root, env)
    work = root / "exchange"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "master", str(root / "remote.git")], check=True)
    run_git(work, "remote", "add", "origin", str(root / "remote.git"))
    contributed = root / "files" / "hello-world.json"
    contributed.write_text(json.dumps(gear("hello-world")))
    run(["add-gear", str(contributed), "--org", "acme"], work, env)
    (work / "gears" / "acme" / "x.json").write_text(json.dumps(gear("x"), indent=2))
    (work / "boutiques" / "acme").mkdir(parents=True)
    (work / "boutiques" / "acme" / "new-tool.json").write_text(json.dumps(boutique, indent=2))
    run_git(work, "add", "-A")
    run_git(work, "commit", "-q", "-m", "Add x and a boutique")
    run_git(work, "push", "-q", "-u", "origin", "master")
    run(["process", "--insecure-registry", registry.host, "--sign-key", str(key)], work, env)
    (manifest,) = (work / "manifests" / "acme").glob("acme-hello-world-sha384-*.json")
    shutil.copy(manifest, files / "manifest.json")
    (public,) = (work / ".exchange" / "keys").glob("*.pub")
    shutil.copy(public, files / "exchange.pub")
    run(["fetch", "acme/hello-world@1.0.0", "-o", str(files / "rootfs.tgz")], work, env)
    shutil.copytree(root, root.with_name(f"{root.name}-pristine"), symlinks=True)
    return World(root, registry.host, manifest.relative_to(work).as_posix())


def names(world: World) -> dict[str, str]:
    """Text the docs use for things that exist elsewhere, mapped to this world's."""
    return {
        "registry.example.org": world.registry,
        "gs://my-exchange/rootfs": (world.root / "bucket").as_uri(),
        "file:///srv/exchange": (world.root / "other-bucket").as_uri(),
        "oci:./layout:": f"oci:{world.root / 'files' / 'layout'}:",
        "manifests/acme/m.json": world.manifest,
        "./my-gear/manifest.json": "~/my-gear/manifest.json",
        "/tmp/exchange/": f"{world.root / 'tmp'}/",
    }


TOKENS = ("manifest.json", "exchange.pub", "rootfs.tgz", "job.json", "descriptor.json", "img.tar")


def localised(line: str, world: World) -> str:
    for written, here in names(world).items():
        line = line.replace(written, here)
    for token in TOKENS:  # whole words only: docker-archive:img.tar, --key exchange.pub, …
        line = re.sub(rf"(?<![\w./-]){re.escape(token)}(?![\w.-])", str(world.root / "files" / token), line)
    return _with_insecure_registry(line, world.registry)


def _with_insecure_registry(line: str, host: str) -> str:
    """The registry here speaks plain HTTP: say so to every command that talks to registries."""
    match = re.match(r"exchange ([a-z-]+)", line)
    if match is None:
        return line
    command = cli.get_command(click.Context(cli), match[1])
    if command is None or "insecure_registries" not in {param.name for param in command.params}:
        return line
    return line.replace(match[0], f"{match[0]} --insecure-registry {host}", 1)


def blocks_to_run() -> Iterator[pytest.param]:
    for block in shell_blocks():
        yield pytest.param(block, id=block.name)


@pytest.mark.parametrize("block", list(blocks_to_run()))
def test_every_documented_command_runs(docs_world: World, block: Block) -> None:
    docs_world.restore()
    env = exchange_env(docs_world.root, docs_world.registry)
    cwd = docs_world.root / "exchange"
    if any(line.startswith("exchange init") for line in block.lines):
        cwd = docs_world.root / "home"  # a new exchange goes outside any repository
    ran = 0
    for line in block.lines:
        if reason_not_run(line) is not None:
            continue
        shown = localised(line, docs_world)
        status, output = run_line(shown, cwd, env)
        assert status == 0, f"{block.document.name}: {line}\n  ran: {shown}\n{output}"
        ran += 1
    if ran == 0:
        assert all(reason_not_run(line) for line in block.lines)


@pytest.mark.parametrize("line, args", [
    ("exchange validate --all", ["validate", "--all"]),
    ("exchange packages 'openssl<3.0.13'   # from the SBOMs", ["packages", "openssl<3.0.13"]),
    ('exchange yank a/b@1 --reason "crashes; use 1.0.1"', ["yank", "a/b@1", "--reason", "crashes; use 1.0.1"]),
    ("exchange index > exchange.json", None),
    ("exchange add-gear ~/my-gear/manifest.json", None),
    ('exchange verify "$HOME/x"', None),
    ("exchange list | head", None),
    ("exchange show a/b*", None),
    ("token=$(exchange list)", None),
    ("git status", None),
])
def test_only_a_line_bash_would_run_unchanged_is_run_here(line: str, args: list[str] | None) -> None:
    assert plain_exchange_command(line) == args
