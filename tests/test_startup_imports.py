"""A command imports what its run needs, and nothing it does not: every `exchange` a CI job, a hook or this suite
starts pays for each library it loads.

`exchange validate FILE` runs in pre-commit hooks, on every commit: it imports what checking a spec needs, and
not GitPython (the read-only git questions go to git itself), the registry, cloud, Docker or terminal-table
clients, nor pyyaml unless the exchange has a policy file. Every command's --help loads none of the heavy
libraries and none of the machinery behind the command. `exchange process` into a file:// bucket, with its
images in an OCI layout, loads neither the GCS nor an HTTP client; with nothing to do, not the checks, the
exporter, jsonschema or cryptography either. Speed itself is measured by benchmarks/startup.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exchange_cli.cli import COMMANDS
from tests.infra.gitrepo import ExchangeRepo, example_gear
from tests.infra.process_world import World
from tests.infra.provenance import Signed

PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from exchange_cli.cli import cli
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        try:
            cli.main(sys.argv[1:], prog_name="exchange")
        except SystemExit as exit:
            status = exit.code
    print(json.dumps({"status": status, "output": output.getvalue(), "modules": sorted(sys.modules)}))
""")
NOT_FOR_VALIDATE = ("git", "requests", "google", "rich", "docker")
SPEC = "gears/acme/hello-world.json"
# What no --help needs: the libraries, and the modules that do a command's work.
HEAVY = ("git", "requests", "urllib3", "google", "rich", "jsonschema", "docker", "yaml", "cryptography", "zstandard")
MACHINERY = ("exchange_cli.export", "exchange_cli.conformance.check", "exchange_cli.process.run",
             "exchange_cli.validation.checker", "exchange_cli.catalog.model", "exchange_cli.provenance.verify")
# What only a process run with work loads: the checks, the exporter, delivery, the signer, a registry client.
WORK = ("exchange_cli.export", "exchange_cli.conformance", "exchange_cli.process.check",
        "exchange_cli.process.delivery.stage", "exchange_cli.provenance.attest", "exchange_cli.image.registry")
HELP_PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from exchange_cli.cli import cli
    shown = {}
    for words in sys.argv[1:]:
        before, output = set(sys.modules), io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.suppress(SystemExit):
            cli.main([*words.split(), "--help"], prog_name="exchange")
        shown[words] = {"output": output.getvalue(), "modules": sorted(set(sys.modules) - before)}
    print(json.dumps(shown))
""")


def in_a_fresh_process(cwd: Path, *args: str) -> tuple[dict, set[str]]:
    """Run `exchange ARGS` in `cwd` (-P: no current directory on the path, as the installed tool); its status
    and output, and the top-level packages it imported."""
    result = subprocess.run([sys.executable, "-P", "-c", PROBE, *args], cwd=cwd, capture_output=True,
                            text=True, check=True)
    run = json.loads(result.stdout)
    return run, {name.split(".")[0] for name in run["modules"]}


def within(module: str, parts: tuple[str, ...]) -> bool:
    """`module` is one of `parts` or inside one of them."""
    return any(module == part or module.startswith(f"{part}.") for part in parts)


def validate_in_a_fresh_process(repo: ExchangeRepo, *args: str) -> tuple[dict, set[str]]:
    return in_a_fresh_process(repo.root, "validate", *args)


def with_a_spec(repo: ExchangeRepo, *, processed: bool) -> None:
    repo.write(SPEC, example_gear())
    if processed:  # a sentinel: validate asks git which specs the exchange already has, and which changed
        repo.set_sentinel(repo.commit("hello-world"))
        repo.write(SPEC, example_gear(version="1.0.1"))


@pytest.mark.parametrize("processed", [False, True], ids=["no-sentinel", "sentinel"])
def test_validate_of_one_spec_imports_no_heavy_library(exchange_repo: ExchangeRepo, processed: bool) -> None:
    with_a_spec(exchange_repo, processed=processed)
    run, loaded = validate_in_a_fresh_process(exchange_repo, SPEC)
    assert run["status"] == 0 and "1 passed" in run["output"], run["output"]
    assert "jsonschema" in loaded  # the probe sees what validating imported
    assert sorted(loaded & {*NOT_FOR_VALIDATE, "yaml"}) == [], "validate FILE imported what it does not need"


def test_validate_reads_pyyaml_only_for_a_policy_file(exchange_repo: ExchangeRepo) -> None:
    with_a_spec(exchange_repo, processed=True)
    exchange_repo.write(".exchange.yaml", "images:\n  allow-latest: false\n")
    run, loaded = validate_in_a_fresh_process(exchange_repo, SPEC)
    assert run["status"] == 0 and "1 passed" in run["output"], run["output"]
    assert "yaml" in loaded
    assert sorted(loaded & set(NOT_FOR_VALIDATE)) == []


def test_the_probe_would_see_gitpython(exchange_repo: ExchangeRepo) -> None:
    """--base still judges a change through GitPython: the probe is not blind to it."""
    with_a_spec(exchange_repo, processed=False)
    exchange_repo.commit("hello-world")
    exchange_repo.write(SPEC, example_gear(version="1.0.1"))
    exchange_repo.commit("a new version")
    run, loaded = validate_in_a_fresh_process(exchange_repo, "--base", "HEAD~1")
    assert run["status"] == 0, run["output"]
    assert "git" in loaded


def test_the_help_of_every_command_loads_no_heavy_library() -> None:
    """One interpreter shows every command's help in turn; each loads only what defining its options needs
    (what an earlier one loaded is not counted again, and is checked there)."""
    commands = [*sorted(COMMANDS), "keys init"]
    result = subprocess.run([sys.executable, "-P", "-c", HELP_PROBE, *commands], capture_output=True, text=True,
                            check=True)
    shown = json.loads(result.stdout)
    loaded = {}
    for words in commands:
        assert f"Usage: exchange {words} " in shown[words]["output"], shown[words]["output"]
        modules = shown[words]["modules"]
        loaded[words] = sorted({name.split(".")[0] for name in modules} & set(HEAVY)) + \
            [name for name in modules if within(name, MACHINERY)]
    assert {words: names for words, names in loaded.items() if names} == {}


def test_process_loads_only_what_its_run_needs(signed_process: Signed) -> None:
    """A signed run with work: the checks, the exporter, jsonschema, GitPython and cryptography, but no GCS or
    HTTP client (the bucket is a directory, the images an OCI layout). Then a run with nothing left to do,
    unsigned: none of the work's machinery either."""
    world: World = signed_process.world
    run, loaded = in_a_fresh_process(world.repo.root, *world.args("--sign-key", str(signed_process.key_file)))
    assert run["status"] == 0 and "2 spec(s) processed and pushed" in run["output"], run["output"]
    assert {"git", "jsonschema", "cryptography"} <= loaded and "exchange_cli.export" in run["modules"]
    assert sorted(loaded & {"google", "requests", "urllib3", "docker"}) == []
    run, loaded = in_a_fresh_process(world.repo.root, *world.args())
    assert run["status"] == 0 and "nothing to process" in run["output"], run["output"]
    assert sorted(loaded & {"google", "requests", "urllib3", "docker", "jsonschema", "cryptography", "zstandard"}) == []
    assert [name for name in run["modules"] if within(name, WORK)] == []
