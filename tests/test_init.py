"""`exchange init`: a new exchange that works end to end, written whole or not at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo import GEAR, IMAGE
from exchange_cli.demo_image import build_demo_image
from exchange_cli.new_exchange import SKELETON, ToolRequirement, skeleton_files
from exchange_cli.validation.policy import DEFAULT_POLICY, load_policy, policy_schema
from tests.infra.circleci_config import CONFIG_PATH
from tests.infra.commands import exchange_here
from tests.infra.gitrepo import run_git

ROOT = Path(__file__).resolve().parents[1]
EXCHANGE = str(Path(sys.executable).with_name("exchange"))


def exchange(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command in a fresh process, as a newcomer types it (never this checkout's repository)."""
    return subprocess.run([EXCHANGE, *args], cwd=cwd, capture_output=True, text=True, env=outside(cwd), check=False)


def init_here(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`exchange init ARGS` as `exchange` runs it, by the CLI in this process: what it writes or refuses."""
    return exchange_here("init", *args, env=outside(cwd), cwd=cwd)


def outside(cwd: Path) -> dict[str, str]:
    return {**os.environ, "GIT_CEILING_DIRECTORIES": str(cwd.parent)}


def test_init_add_gear_process_verify_round_trip(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    home.mkdir()
    started = exchange("init", "exchange", "--sign", "--title", "Jane's lab", "--format", "json", cwd=home)
    assert started.returncode == 0, started.stderr
    document = json.loads(started.stdout)
    root, key = Path(document["exchange"]), Path(document["private-key"])
    assert root == (home / "exchange").resolve() and key.parent == home.resolve()
    assert key.stat().st_mode & 0o077 == 0, "the private key is the owner's alone"
    assert run_git(root, "status", "--porcelain") == "", "init leaves a clean tree: everything is committed"

    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "master", str(remote)], check=True)
    run_git(root, "remote", "add", "origin", str(remote))
    images, bucket = tmp_path / "images", tmp_path / "bucket"
    images.mkdir()
    bucket.mkdir()
    build_demo_image(images, IMAGE, GEAR)
    contribution = tmp_path / "manifest.json"
    contribution.write_text(json.dumps(GEAR, indent=2))

    added = exchange("add-gear", str(contribution), "--org", "jane", cwd=root)
    assert added.returncode == 0, added.stderr
    assert exchange("validate", cwd=root).returncode == 0
    run_git(root, "push", "-q", "origin", "master")
    processed = exchange("process", "--bucket", bucket.as_uri(), "--oci-layout", str(images), "--sign-key", str(key),
                         cwd=root)
    assert processed.returncode == 0, processed.stderr
    verified = exchange("verify", f"jane/{GEAR['name']}@{GEAR['version']}", cwd=root)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.splitlines()[-1] == f"verified: jane/{GEAR['name']}@{GEAR['version']}"


def test_the_policy_spells_out_the_defaults_and_fits_its_schema(tmp_path: Path) -> None:
    files = skeleton_files("Jane's: lab # 1", ToolRequirement("exchange-cli==0.1.0", False))
    document = yaml.safe_load(files[".exchange.yaml"])
    jsonschema.validate(document, policy_schema(), cls=jsonschema.Draft202012Validator)
    (tmp_path / ".exchange.yaml").write_bytes(files[".exchange.yaml"])
    policy = load_policy(tmp_path)
    assert policy.catalog_title == "Jane's: lab # 1", "a title with YAML's special characters stays text"
    assert (policy.allowed_registries, policy.allow_latest, policy.require_digest, policy.rules_off) == \
        (DEFAULT_POLICY.allowed_registries, DEFAULT_POLICY.allow_latest, DEFAULT_POLICY.require_digest,
         DEFAULT_POLICY.rules_off)
    assert set(document["rules"]) == set(policy_schema()["properties"]["rules"]["propertyNames"]["enum"]), \
        "every switchable rule is listed"


def _without_install(config: dict) -> dict:
    config = json.loads(json.dumps(config))
    del config["commands"]["install-exchange"]
    return config


def test_the_new_exchange_runs_the_same_pipeline_as_this_one() -> None:
    """The template differs from this repository's own config only in how the tool is installed."""
    files = skeleton_files("x", ToolRequirement("exchange-cli==0.1.0", False))
    template = yaml.safe_load(files[".circleci/config.yml"])
    assert _without_install(template) == _without_install(yaml.safe_load(CONFIG_PATH.read_text()))
    install = template["commands"]["install-exchange"]["steps"][1]["run"]["command"]
    assert "--require-hashes -r requirements/runtime.txt" in install and "-r requirements/exchange.txt" in install


def test_the_tool_lock_it_copies_is_this_repositorys() -> None:
    assert (ROOT / "exchange_cli" / "data" / "new-exchange" / SKELETON["requirements/runtime.txt"]).read_bytes() == \
        (ROOT / "requirements" / "runtime.txt").read_bytes(), "scripts/lock copies the lock for init"


def test_another_branch_is_processed_by_the_pipeline(tmp_path: Path) -> None:
    result = init_here("ex", "--branch", "main", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load((tmp_path / "ex" / ".circleci" / "config.yml").read_text())
    assert "master" not in json.dumps(config)
    assert config["workflows"]["exchange"]["jobs"][-1]["exchange-process"]["filters"]["branches"]["only"] == "main"
    assert run_git(tmp_path / "ex", "symbolic-ref", "--short", "HEAD").strip() == "main"


def test_init_overwrites_nothing_and_writes_nothing_when_it_refuses(tmp_path: Path) -> None:
    root = tmp_path / "ex"
    root.mkdir()
    (root / "README.md").write_text("mine\n")
    result = init_here(str(root), cwd=tmp_path)
    assert result.returncode == 2 and "README.md" in result.stderr and "overwrites nothing" in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["README.md"] and (root / "README.md").read_text() == "mine\n"


def test_a_key_inside_the_exchange_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    result = init_here("ex", "--sign-key-file", "ex/key.pem", cwd=tmp_path)
    assert result.returncode == 2 and "must never be committed" in result.stderr
    assert not (tmp_path / "ex").exists()


def test_inside_another_repository_init_refuses(tmp_path: Path) -> None:
    run_git(tmp_path, "init", "-q")
    result = init_here("sub", cwd=tmp_path)
    assert result.returncode == 2 and "inside the git repository" in result.stderr
    assert not (tmp_path / "sub").exists()


@pytest.mark.parametrize("branch", ["bad branch", "../x", "x.lock", "-rf"])
def test_a_branch_outside_the_grammar_is_refused(tmp_path: Path, branch: str) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "ex"), f"--branch={branch}"])
    assert result.exit_code == 2 and "--branch" in result.output
    assert not (tmp_path / "ex").exists()


def test_a_failed_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    """Whatever fails after the first write (here: git cannot sign the commit), init removes what it made."""
    env = {**os.environ, "GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "commit.gpgSign", "GIT_CONFIG_VALUE_0": "true",
           "GIT_CONFIG_KEY_1": "gpg.program", "GIT_CONFIG_VALUE_1": "false", "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    result = subprocess.run([EXCHANGE, "init", "ex", "--sign"], cwd=tmp_path, capture_output=True, text=True, env=env,
                            check=False)
    assert result.returncode == 2 and "git commit" in result.stderr and "failed" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [], "no exchange, no private key left"
