"""One convention across all commands, checked over a table of every command: help text for every option,
`--format json` output that parses and fits its schema in schemas/cli/ (kebab-case keys), `-q` that
prints no progress and no log lines, `-v` that logs without secrets, and a closed pipe that ends quietly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import jsonschema
import pytest
from click.testing import CliRunner

from exchange_cli.cli import COMMANDS, SECTIONS, cli
from tests.cli_world import CliWorld, exchange_command, make_world
from tests.infra.gitrepo import example_boutique, example_gear, run_git
from tests.layers import tiny_layer_tar

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas" / "cli"
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Row:
    """How to run one command against the world, and which schema its JSON output follows."""

    args: Callable[[CliWorld, Path], list[str]]
    schema: str  # a file in schemas/cli/, or "json-schema" for a JSON Schema document
    exit_codes: tuple[int, ...] = (0,)


def _invocation(world: CliWorld, scratch: Path) -> Path:
    path = scratch / "job.json"
    path.write_text(json.dumps({"config": {"name": "Ada"}, "inputs": {}}))
    return path


def _clone(world: CliWorld, scratch: Path) -> Path:
    """A checkout of its own, for a command that changes the work tree."""
    clone = scratch / "clone"
    run_git(scratch, "clone", "-q", str(world.remote), str(clone))
    return clone


def _source(world: CliWorld, scratch: Path) -> Path:
    path = scratch / "manifest.json"
    path.write_text(json.dumps(example_gear(name="new-gear", version="1.0.0",
                                            custom={"gear-builder": {"image": world.image("hello")}})))
    return path


def _committing_clone(world: CliWorld, scratch: Path) -> Path:
    clone = _clone(world, scratch)
    run_git(clone, "config", "user.name", "Exchange Test")
    run_git(clone, "config", "user.email", "test@exchange.invalid")
    return clone


TABLE: dict[str, Row] = {
    "validate": Row(lambda w, s: ["validate", "--repo", str(w.work), "--all"], "report"),
    "check-image": Row(lambda w, s: ["check-image", str(w.spec_path("hello")), *w.source("hello")], "report"),
    "validate-invocation": Row(lambda w, s: ["validate-invocation", str(w.spec_path("hello")), str(_invocation(w, s))],
                               "report"),
    "invocation-schema": Row(lambda w, s: ["invocation-schema", str(w.spec_path("hello"))], "json-schema"),
    "export": Row(lambda w, s: ["export", w.image("hello"), "-o", str(s / "rootfs.tgz"), "--sbom", str(s / "rootfs.sbom.json"),
                                *w.source("hello")], "export"),
    "process": Row(lambda w, s: [*w.process_args(), "--dry-run"], "process"),
    "demo": Row(lambda w, s: ["demo", "--dir", str(s / "demo")], "process"),
    "add-gear": Row(lambda w, s: ["add-gear", str(_source(w, s)), "--org", "acme", "--no-commit", "--repo",
                                  str(_clone(w, s))], "add"),
    "add-boutique": Row(lambda w, s: ["add-boutique", str(_boutique(s)), "--org", "acme", "--no-commit", "--repo",
                                      str(_clone(w, s))], "add"),
    "list": Row(lambda w, s: ["list", "--repo", str(w.work)], "list"),
    "show": Row(lambda w, s: ["show", "acme/hello", "--repo", str(w.work)], "show"),
    "history": Row(lambda w, s: ["history", "--repo", str(w.work)], "history"),
    "fetch": Row(lambda w, s: ["fetch", "acme/hello@1.0.0", "--output-dir", str(s), "--repo", str(w.work)], "fetch"),
    "remove": Row(lambda w, s: ["remove", "acme/other@1.0.0", "-y", "--repo", str(_committing_clone(w, s))], "remove"),
    "index": Row(lambda w, s: ["index", "--repo", str(w.work)], "index"),
    "inventory": Row(lambda w, s: ["inventory", "--repo", str(w.work)], "inventory"),
    "verify-storage": Row(lambda w, s: ["verify-storage", "--bucket", w.bucket.as_uri(), "--repo", str(w.work)],
                          "verify-storage"),
    "verify": Row(lambda w, s: ["verify", "acme/hello@1.0.0", "--repo", str(w.work)], "verify"),
    "sbom": Row(lambda w, s: ["sbom", "acme/hello@1.0.0", "--repo", str(w.work)], "sbom"),
    "packages": Row(lambda w, s: ["packages", "busybox", "--repo", str(w.work)], "packages"),
    "backfill-sbom": Row(lambda w, s: ["backfill-sbom", "--bucket", w.bucket.as_uri(), "--repo", str(_committing_clone(w, s))],
                         "backfill-sbom"),
    "init": Row(lambda w, s: ["init", str(s / "new-exchange"), "--sign"], "init"),
    "keys": Row(lambda w, s: ["keys", "init", "--generate", str(s / "key.pem"), "--no-commit", "--repo",
                              str(_clone(w, s))], "keys"),
    "yank": Row(lambda w, s: ["yank", "acme/hello@1.0.0", "--reason", "broken", "--repo", str(_committing_clone(w, s))],
                "lifecycle"),
    "unyank": Row(lambda w, s: ["unyank", "acme/hello@1.0.0", "--repo", str(_yanked_clone(w, s))], "lifecycle"),
    "deprecate": Row(lambda w, s: ["deprecate", "acme/other", "--reason", "use hello", "--replaced-by", "acme/hello",
                                   "--repo", str(_committing_clone(w, s))], "lifecycle"),
}


def _yanked_clone(world: CliWorld, scratch: Path) -> Path:
    clone = _committing_clone(world, scratch)
    result = CliRunner().invoke(cli, ["yank", "acme/hello@1.0.0", "--reason", "broken", "--repo", str(clone)])
    assert result.exit_code == 0, result.output
    return clone


def _boutique(scratch: Path) -> Path:
    path = scratch / "descriptor.json"
    path.write_text(json.dumps(example_boutique(name="new-tool")))
    return path


def test_every_command_is_in_the_table() -> None:
    """A new command joins the table, so the conventions are checked for it too."""
    assert set(COMMANDS) == set(TABLE)


@pytest.fixture(scope="module")
def cli_world(tmp_path_factory: pytest.TempPathFactory) -> CliWorld:
    return make_world(tmp_path_factory.mktemp("cli-world"), ("hello", "other"), processed=True)


def command(name: str) -> click.Command:
    found = cli.get_command(click.Context(cli), name)
    assert found is not None, name
    return found


def _with_subcommands(name: str, cmd: click.Command) -> list[tuple[str, click.Command]]:
    if not isinstance(cmd, click.Group):
        return [(name, cmd)]
    return [(name, cmd)] + [item for sub, child in cmd.commands.items() for item in _with_subcommands(f"{name} {sub}", child)]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_option_has_help(name: str) -> None:
    for shown, cmd in _with_subcommands(name, command(name)):
        assert cmd.help and cmd.help.strip(), f"{shown} has no help text"
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help and param.help.strip(), f"{shown} {'/'.join(param.opts)} has no help text"


def test_help_groups_commands_by_who_runs_them_with_whole_summaries() -> None:
    result = CliRunner().invoke(cli, ["--help"], terminal_width=120)
    assert result.exit_code == 0
    titles = [title for title, _ in SECTIONS]
    positions = [result.output.index(f"{title}:") for title in titles]
    assert positions == sorted(positions)
    commands_part = result.output[positions[0]:]
    assert "..." not in commands_part, "no summary is cut off"
    for name in COMMANDS:
        first_sentence = command(name).get_short_help_str(limit=10_000)
        assert " ".join(first_sentence.split()) in " ".join(commands_part.split()), name
    listed = {name for _, names in SECTIONS for name in names}
    assert set(COMMANDS) <= listed, "every command is in a section"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_listed_summary_is_the_commands_own_first_sentence(name: str) -> None:
    """--help prints summaries kept in cli.py so it imports no command; they must not drift from the commands."""
    assert COMMANDS[name][1] == command(name).get_short_help_str(limit=10_000)


def test_help_and_version_import_no_heavy_library() -> None:
    """`exchange --help` runs on every mistyped command and in pre-commit hooks: it loads click and nothing heavy."""
    probe = textwrap.dedent("""
        import contextlib, io, json, sys
        from exchange_cli.cli import cli
        for args in (["--help"], ["--version"]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
                cli.main(args, prog_name="exchange")
        print(json.dumps(sorted(sys.modules)))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    heavy = ("git", "requests", "google", "rich", "jsonschema", "docker", "yaml", "urllib3")
    loaded = [name for name in json.loads(result.stdout)
              if name.split(".")[0] in heavy or name.startswith("exchange_cli.commands")]
    assert loaded == [], f"--help/--version imported {loaded}"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_format_json_parses_and_fits_its_schema(cli_world: CliWorld, tmp_path: Path, name: str) -> None:
    row = TABLE[name]
    result = CliRunner().invoke(cli, [*row.args(cli_world, tmp_path), "--format", "json"])
    assert result.exit_code in row.exit_codes, result.output
    document = json.loads(result.stdout)
    if row.schema == "json-schema":
        jsonschema.Draft7Validator.check_schema(document)
        return
    schema = json.loads((SCHEMAS / f"{row.schema}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    assert_kebab_keys(document, schema)


def assert_kebab_keys(document: object, schema: dict) -> None:
    """Our own keys are kebab-case at every level the schema describes (specs embedded as data are not ours)."""
    if isinstance(document, dict) and "propertyNames" in schema:
        for key, value in document.items():
            assert KEBAB.match(key), key
            child = schema.get("properties", {}).get(key)
            if child is not None:
                assert_kebab_keys(value, _resolve(child, schema))
    elif isinstance(document, list) and "items" in schema:
        for item in document:
            assert_kebab_keys(item, _resolve(schema["items"], schema))


def _resolve(child: dict, parent: dict) -> dict:
    return child


@pytest.mark.parametrize("name", sorted(TABLE))
def test_quiet_prints_no_progress_and_no_log_lines(cli_world: CliWorld, tmp_path: Path, name: str) -> None:
    row = TABLE[name]
    result = CliRunner().invoke(cli, [*row.args(cli_world, tmp_path), "-q"])
    assert result.exit_code in row.exit_codes, result.output
    assert result.stderr == "", f"{name} -q wrote to stderr: {result.stderr!r}"
    assert result.stdout, "the result is still printed"


@pytest.mark.parametrize("name", sorted(TABLE))
def test_a_closed_pipe_ends_quietly_with_success(cli_world: CliWorld, tmp_path: Path, name: str) -> None:
    """`exchange … | head -0`: the reader is gone before the first line is written."""
    import subprocess

    row = TABLE[name]
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([*exchange_command(), *row.args(cli_world, tmp_path), "-q"], stdout=write,
                                stderr=subprocess.PIPE, text=True, timeout=300, check=False)
    finally:
        os.close(write)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_no_color_and_a_pipe_give_plain_text(cli_world: CliWorld) -> None:
    import subprocess

    result = subprocess.run([*exchange_command(), "validate", "--repo", str(cli_world.work), "--all", "--format", "rich"],
                            capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout, "no colour codes"


def test_verbose_logs_registry_requests_cache_hits_and_git_commands_without_secrets(
        cli_world: CliWorld, tmp_path: Path, auth_registry, monkeypatch: pytest.MonkeyPatch) -> None:
    auth_registry.push_image("acme/secret", "1.0", [tiny_layer_tar()])
    host_variable = "EXCHANGE_REGISTRY_AUTH_" + re.sub(r"[^A-Z0-9]", "_", auth_registry.host.upper())
    monkeypatch.setenv(host_variable, f"{auth_registry.username}:{auth_registry.password}")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    arguments = ["export", f"{auth_registry.host}/acme/secret:1.0", "-o", str(tmp_path / "x.tgz"),
                 "--insecure-registry", auth_registry.host, "--cache-dir", str(tmp_path / "cache"), "-v"]
    first = CliRunner().invoke(cli, arguments)
    second = CliRunner().invoke(cli, arguments)
    assert first.exit_code == second.exit_code == 0, first.output
    assert re.search(rf"registry: GET http://{re.escape(auth_registry.host)}/v2/acme/secret/manifests/1\.0 -> 200",
                     first.stderr), first.stderr
    assert "layer cache hit: sha256:" in second.stderr
    for output in (first.stderr, second.stderr):
        assert auth_registry.password not in output and "Authorization" not in output and "Basic " not in output
    processed = CliRunner().invoke(cli, [*cli_world.process_args(), "--dry-run", "-v"])
    assert re.search(r"^git: ", processed.stderr, re.MULTILINE), processed.stderr
    quiet = CliRunner().invoke(cli, [*arguments[:-1], "-q"])
    assert quiet.stderr == ""


def test_quiet_and_verbose_exclude_each_other(cli_world: CliWorld) -> None:
    result = CliRunner().invoke(cli, ["validate", "--repo", str(cli_world.work), "-q", "-v"])
    assert result.exit_code == 2 and "exclude each other" in result.output


def test_index_writes_nowhere_in_the_work_tree_unless_told(cli_world: CliWorld, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """It used to write exchange.json into the current directory, which dirtied the tree and made the
    next `process` refuse to run."""
    clone = _committing_clone(cli_world, tmp_path)
    monkeypatch.chdir(clone)
    result = CliRunner().invoke(cli, ["index"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"], "the catalog went to standard output"
    assert run_git(clone, "status", "--porcelain") == ""
    site = tmp_path / "site"
    result = CliRunner().invoke(cli, ["index", "--html", str(site)])
    assert result.exit_code == 0 and result.stdout == "", "with --html the JSON goes to the site, not the terminal"
    assert (site / "exchange.json").is_file() and run_git(clone, "status", "--porcelain") == ""


def test_output_is_always_a_file_and_output_dir_a_directory(cli_world: CliWorld, tmp_path: Path) -> None:
    target = tmp_path / "my-rootfs.tgz"
    result = CliRunner().invoke(cli, ["fetch", "acme/hello@1.0.0", "-o", str(target), "--repo", str(cli_world.work)])
    assert result.exit_code == 0, result.output
    assert target.is_file() and str(target) in result.stdout
    into = tmp_path / "downloads"
    result = CliRunner().invoke(cli, ["fetch", "acme/hello@1.0.0", "--output-dir", str(into), "--extract",
                                      "--repo", str(cli_world.work), "--format", "json"])
    assert result.exit_code == 0, result.output
    fetched = json.loads(result.stdout)
    assert Path(fetched["path"]).parent == into and Path(fetched["extracted-to"]).parent == into
