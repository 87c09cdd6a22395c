"""The one exit status rule (README, "Exit status"), over commands and failure kinds:

    0  success
    1  the input or the artifact is wrong: a spec, an invocation, an image, a hash, a signature
    2  usage or the environment: options, the repository, a remote that is unreachable or refuses a push,
       a bucket, a disk, credentials, a key file
    3  a defect of the tool (one line, naming the version; the traceback with -v)
    130, 143  interrupted (SIGINT, SIGTERM)

and every failure is one `error:` line on stderr (or the report of what failed), never a traceback."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.catalog_world import CatalogWorld, one_gear_world
from tests.cli_world import exchange_command, make_world
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo


@dataclass(frozen=True)
class Case:
    status: int
    args: Callable[[CatalogWorld, Path], list[str]]  # the command line, given the world and a scratch dir


def tampered(world: CatalogWorld, scratch: Path) -> list[str]:
    for path in Path(world.bucket.root).glob("*.tgz"):  # type: ignore[attr-defined]
        path.write_bytes(b"not what was published")
    return ["fetch", "acme/hello", "--output-dir", str(scratch / "out")]


def broken_spec(world: CatalogWorld, scratch: Path) -> list[str]:
    return ["validate", str(world.repo.write("gears/acme/broken.json", '{"name": "broken",'))]


def bad_invocation(world: CatalogWorld, scratch: Path) -> list[str]:
    invocation = scratch / "job.json"
    invocation.write_text('{"config": {"no-such-option": 1}}')
    return ["validate-invocation", str(world.repo.root / "gears/acme/hello.json"), str(invocation)]


def missing_object(world: CatalogWorld, scratch: Path) -> list[str]:
    for path in Path(world.bucket.root).glob("*.tgz"):  # type: ignore[attr-defined]
        path.unlink()
    return ["verify-storage", "--bucket", world.bucket.uri]


def unreachable_remote(world: CatalogWorld, scratch: Path) -> list[str]:
    world.repo.git("remote", "add", "origin", str(scratch / "gone.git"))
    return ["process", "--bucket", (scratch / "bucket").as_uri(), "--dry-run"]


def broken_policy(world: CatalogWorld, scratch: Path) -> list[str]:
    (world.repo.root / ".exchange.yaml").write_text("images: [\n")
    return ["validate", "--all"]


def special_key(world: CatalogWorld, scratch: Path) -> list[str]:
    return ["verify", "acme/hello@1.0.0", "--key", "/dev/zero"]


def missing_bucket(world: CatalogWorld, scratch: Path) -> list[str]:
    return ["verify-storage", "--bucket", (scratch / "nowhere").as_uri()]


def not_a_repository(world: CatalogWorld, scratch: Path) -> list[str]:
    return ["list", "--repo", str(scratch)]


def refused_push(world: CatalogWorld, scratch: Path) -> list[str]:
    world.own_bucket(scratch / "remote.git")
    world.repo.git("push", "-q", "origin", "master")
    hook = scratch / "remote.git" / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    return ["remove", "acme/hello", "--purge", "--bucket", world.bucket.uri, "-y"]


def unknown_reference(world: CatalogWorld, scratch: Path) -> list[str]:
    return ["show", "acme/no-such-gear"]


def unwritable_output(world: CatalogWorld, scratch: Path) -> list[str]:
    (scratch / "file").write_text("")
    return ["index", "-o", str(scratch / "file" / "exchange.json")]


CASES = {
    "a spec that is not JSON": Case(1, broken_spec),
    "an invocation the schema refuses": Case(1, bad_invocation),
    "a rootfs that does not hash to its manifest": Case(1, tampered),
    "an object the manifests need is missing": Case(1, missing_object),
    "a policy file that is not YAML": Case(2, broken_policy),
    "a key file that is not a file": Case(2, special_key),
    "a bucket directory that does not exist": Case(2, missing_bucket),
    "not inside a git repository": Case(2, not_a_repository),
    "a remote that cannot be reached": Case(2, unreachable_remote),
    "a remote that refuses the push": Case(2, refused_push),
    "a name the exchange does not hold": Case(2, unknown_reference),
    "an output that cannot be written": Case(2, unwritable_output),
}


@pytest.mark.parametrize("kind", CASES)
def test_every_failure_kind_has_its_status_and_one_line(exchange_repo: ExchangeRepo, tmp_path: Path, kind: str) -> None:
    world = one_gear_world(exchange_repo, tmp_path / "exchange-files")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    case = CASES[kind]
    args = case.args(world, scratch)
    takes_repo = any(param.name == "repo" for param in cli.get_command(None, args[0]).params)  # type: ignore[arg-type, union-attr]
    if takes_repo and "--repo" not in args:
        args += ["--repo", str(world.repo.root)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == case.status, (kind, result.output)
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    problems = [line for line in result.stdout.splitlines() if ": error[" in line or line.startswith(("missing:", "  FAIL"))]
    assert len(errors) == 1 or (not errors and problems), (kind, result.output)


def test_a_defect_is_one_line_naming_the_version_and_exit_3(exchange_repo: ExchangeRepo,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import exchange_cli.catalog.listing as listing

    def broken(*args: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(listing, "render_listing", broken)
    monkeypatch.setattr("exchange_cli.commands.list.render_listing", broken, raising=False)
    result = CliRunner().invoke(cli, ["list", "--repo", str(exchange_repo.root)])
    assert result.exit_code == 3, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: exchange 0.1.0 list: unexpected ZeroDivisionError: a bug; this is a bug")
    verbose = CliRunner().invoke(cli, ["list", "-v", "--repo", str(exchange_repo.root)])
    assert verbose.exit_code == 3 and "Traceback" in verbose.stderr


def test_validate_outside_an_exchange_and_json_reports_keep_the_rule(tmp_path: Path) -> None:
    init_repo(tmp_path / "repo")
    (tmp_path / "repo" / "gears" / "acme").mkdir(parents=True)
    (tmp_path / "repo" / "gears" / "acme" / "x.json").write_text(json.dumps(example_gear(name="x", license="nope")))
    result = CliRunner().invoke(cli, ["validate", "--all", "--repo", str(tmp_path / "repo"), "--format", "json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["ok"] is False


JSON_FAILURES = {
    "list": ["list", "--repo", "{scratch}"],
    "show": ["show", "acme/nothing"],
    "fetch": ["fetch", "acme/nothing"],
    "history": ["history", "--repo", "{scratch}"],
    "remove": ["remove", "acme/nothing"],
    "yank": ["yank", "acme/nothing@1.0.0", "--reason", "broken"],
    "unyank": ["unyank", "acme/nothing@1.0.0"],
    "deprecate": ["deprecate", "acme/nothing", "--reason", "old"],
    "verify": ["verify", "acme/nothing"],
    "verify-storage": ["verify-storage", "--bucket", "file://{scratch}/nowhere"],
    "keys": ["keys", "init", "--sign-key", "/dev/zero"],
    "init": ["init", "{scratch}", "--branch", "not a branch"],
    "inventory": ["inventory", "--repo", "{scratch}"],
    "index": ["index", "--repo", "{scratch}"],
    "invocation-schema": ["invocation-schema", "{scratch}/broken.json"],
    "process": ["process", "--repo", "{scratch}"],
    "export": ["export", "oci:{scratch}/no-layout:x/y:1", "-o", "{scratch}/out.tgz"],
}


@pytest.mark.parametrize("command", sorted(JSON_FAILURES))
def test_every_command_asked_for_json_prints_one_json_document_when_it_fails(
        exchange_repo: ExchangeRepo, tmp_path: Path, command: str) -> None:
    """Of 13 commands tried with --format json on a failure, most printed nothing on stdout."""
    import jsonschema

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "broken.json").write_text("{")
    args = [arg.format(scratch=scratch) for arg in JSON_FAILURES[command]]
    found = cli.get_command(None, args[0])  # type: ignore[arg-type]
    if isinstance(found, click.Group):
        found = found.get_command(None, args[1])  # type: ignore[arg-type]
    takes = {param.name for param in found.params}  # type: ignore[union-attr]
    extra = ["--format", "json"] if takes & {"output_format", "index_format"} else []
    if "repo" in takes and "--repo" not in args:
        extra += ["--repo", str(exchange_repo.root)]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert result.exit_code != 0, result.output
    document = json.loads(result.stdout)  # one document, nothing else on stdout
    if "error" in document and isinstance(document["error"], dict):
        schema = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "cli" / "error.schema.json").read_text())
        jsonschema.validate(document, schema)
        assert document["error"]["exit-status"] == result.exit_code
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert line.removeprefix("error: ") == document["error"]["message"]
    else:
        assert document.get("ok") is False or document.get("verified") is False, document


def test_dash_means_standard_output_for_fetch_and_export(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    """`export -o -` and `fetch -o -` created a file named `-`."""
    world = make_world(tmp_path / "w", ("hello",), processed=True)
    fetched = subprocess.run([*exchange_command(), "fetch", "acme/hello", "-o", "-", "--repo", str(world.work)],
                             capture_output=True, timeout=120, cwd=tmp_path, check=False)
    assert fetched.returncode == 0, fetched.stderr
    (manifest,) = (world.work / "manifests").rglob("*.json")
    record = json.loads(manifest.read_text())["exchange"]
    assert f"sha384:{hashlib.sha384(fetched.stdout).hexdigest()}" == record["rootfs-hash"]
    assert b"its hash matches the manifest" in fetched.stderr
    exported = subprocess.run([*exchange_command(), "export", f"oci:{world.images}:{world.image('hello')}", "-o", "-",
                               "--cache-dir", str(world.cache), "-q"], capture_output=True, timeout=120, cwd=tmp_path,
                              check=False)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == fetched.stdout, "the same image, the same bytes"
    assert not (tmp_path / "-").exists()


def _error_classes() -> list[type]:
    import importlib
    import pkgutil

    import exchange_cli
    from exchange_cli.errors import ExchangeError

    for module in pkgutil.walk_packages(exchange_cli.__path__, "exchange_cli."):
        if not module.name.endswith(".__main__"):  # that one runs the command line
            importlib.import_module(module.name)
    found: list[type] = []
    pending: list[type] = [ExchangeError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_an_exit_status_is_decided_in_one_place_from_the_error_category() -> None:
    """No error class picks its own number and no command calls sys.exit: the status of every failure
    comes from errors.EXIT_STATUS, keyed by the error's category."""
    import ast

    import exchange_cli
    from exchange_cli.errors import EXIT_STATUS

    classes = _error_classes()
    assert len(classes) > 20, "the walk found the package's error classes"
    own_numbers = [cls.__qualname__ for cls in classes[1:] if "exit_code" in vars(cls)]  # [0]: the table lookup
    assert own_numbers == [], f"error classes with an exit status of their own: {own_numbers}"
    assert all(cls.category in EXIT_STATUS for cls in classes)  # type: ignore[attr-defined]
    exits = []
    for path in sorted(Path(exchange_cli.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "exit" and getattr(node.value, "id", "") == "sys":
                exits.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id == "SystemExit":
                exits.append(f"{path}:{node.lineno}")
    assert exits == [], f"sys.exit or SystemExit outside the one table: {exits}"
