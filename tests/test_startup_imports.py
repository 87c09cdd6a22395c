"""`exchange validate FILE` runs in pre-commit hooks, on every commit: it imports what checking a spec needs, and
not GitPython (the read-only git questions go to git itself), the registry, cloud, Docker or terminal-table
clients, nor pyyaml unless the exchange has a policy file. Speed itself is measured by benchmarks/startup.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.infra.gitrepo import ExchangeRepo, example_gear

PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from exchange_cli.cli import cli
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        try:
            cli.main(["validate", *sys.argv[1:]], prog_name="exchange")
        except SystemExit as exit:
            status = exit.code
    print(json.dumps({"status": status, "output": output.getvalue(), "modules": sorted(sys.modules)}))
""")
NOT_FOR_VALIDATE = ("git", "requests", "google", "rich", "docker")
SPEC = "gears/acme/hello-world.json"


def validate_in_a_fresh_process(repo: ExchangeRepo, *args: str) -> tuple[dict, set[str]]:
    """Run `exchange validate ARGS` in `repo` (-P: no current directory on the path, as the installed tool);
    its status and output, and the top-level packages it imported."""
    result = subprocess.run([sys.executable, "-P", "-c", PROBE, *args], cwd=repo.root, capture_output=True,
                            text=True, check=True)
    run = json.loads(result.stdout)
    return run, {name.split(".")[0] for name in run["modules"]}


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
