"""A pull request proposes specs; the target branch decides. Each test plays a contributor who is not on
the exchange's side against the branch CI job exactly as `.circleci/config.yml` runs it, in real git: a
bare upstream, the contributor's fork, and CI's checkout of the pull request."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from exchange_cli.provenance.signers import LocalKeySigner, generate_private_key
from tests.infra.capturing_registry import CapturingRegistry
from tests.infra.circleci_config import exchange_calls, load_config
from tests.infra.gitrepo import ExchangeRepo, example_gear
from tests.infra.publication import publish
from tests.infra.pull_request import PullRequestWorld, pull_request_world
from tests.layers import tiny_layer_tar

pytestmark = pytest.mark.usefixtures("no_credentials")  # tests/infra/image_sources.py


@pytest.fixture
def upstream(tmp_path: Path, registry) -> PullRequestWorld:
    """An exchange whose master allows only the test registry, with one gear already on master."""
    world = pull_request_world(tmp_path / "exchange")
    registry.push_image("acme/good", "1.0", [tiny_layer_tar()])
    world.maintainer.write(".exchange.yaml", f"images:\n  allowed-registries: [\"{registry.host}\"]\n")
    world.maintainer.write("gears/acme/good.json", gear("good", f"{registry.host}/acme/good:1.0"))
    world.maintainer.commit("the exchange's policy and a gear")
    world.publish_master()
    return world


def gear(name: str, image: str, **changes: object) -> dict:
    return example_gear(name=name, custom={"gear-builder": {"image": image}}, **changes)


def branch_job(ci: Path, tmp_path: Path, *extra: str) -> Result:
    """The validate job's own `exchange` call from .circleci/config.yml, in the CI checkout, reporting JSON."""
    (call,) = exchange_calls(load_config(), "validate")
    call = list(call)
    call[call.index("--junit-xml") + 1] = str(tmp_path / "junit.xml")
    return CliRunner().invoke(cli, [*call, "--repo", str(ci), "--format", "json", *extra])


def problems(result: Result) -> dict[str, list[str]]:
    """path -> the rules of its errors and infos."""
    report = json.loads(result.stdout)
    return {entry["path"].split("/ci/", 1)[-1]: sorted(p["rule"] for p in entry["problems"])
            for entry in report["results"]}


def test_a_prs_own_sentinel_cannot_shrink_what_the_branch_job_checks(upstream: PullRequestWorld, registry,
                                                                     tmp_path: Path) -> None:
    """Attack 3: the PR adds an invalid gear and sets .sentinel to its own head; the job used to check
    the specs changed since *that* sentinel (none) and pass."""
    fork = upstream.fork()
    fork.write("gears/acme/bad.json", gear("bad", f"{registry.host}/acme/good:1.0", license="not a licence"))
    head = fork.commit("add a gear")
    fork.set_sentinel(head)
    fork.commit("processed, trust me")
    result = branch_job(upstream.ci_checkout(fork), tmp_path, "--insecure-registry", registry.host)
    assert result.exit_code == 1, result.output
    found = problems(result)
    assert found["gears/acme/bad.json"] == ["gear-schema"], found
    assert found[".sentinel"] == ["protected-path"], found
    assert "gears/acme/good.json" not in found, "only what the change introduces is checked"


def test_a_pr_cannot_relax_the_policy_nor_reach_the_ci_registry_password(upstream: PullRequestWorld, registry,
                                                                         auth_registry, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 5: the PR allows :latest and its own registry in .exchange.yaml; the job used to accept the
    unpinned image and send CI's EXCHANGE_REGISTRY_PASSWORD to the contributor's registry."""
    contributor = CapturingRegistry()
    try:
        monkeypatch.setenv("EXCHANGE_REGISTRY_USERNAME", auth_registry.username)
        monkeypatch.setenv("EXCHANGE_REGISTRY_PASSWORD", auth_registry.password)
        fork = upstream.fork()
        fork.write(".exchange.yaml", "images:\n  allow-latest: true\n")
        fork.write("gears/acme/evil.json", gear("evil", f"{contributor.host}/evil/gear:latest"))
        fork.commit("relax the policy")
        result = branch_job(upstream.ci_checkout(fork), tmp_path, "--insecure-registry", contributor.host,
                            "--insecure-registry", registry.host)
    finally:
        contributor.stop()
    assert result.exit_code == 1, result.output
    found = problems(result)
    assert found["gears/acme/evil.json"] == ["image-registry", "image-unpinned"], found
    assert found[".exchange.yaml"] == ["protected-path"], found
    assert contributor.authorizations == [], "the contributor's registry was asked"
    assert auth_registry.password not in result.output


def test_shared_registry_credentials_go_only_to_registries_the_target_lists(tmp_path: Path, auth_registry,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A target whose policy allows any registry: its branch job asks the contributor's registry whether the
    image exists, but without the credentials meant for the exchange's own registries."""
    world = pull_request_world(tmp_path / "exchange")
    contributor = CapturingRegistry()
    try:
        monkeypatch.setenv("EXCHANGE_REGISTRY_USERNAME", auth_registry.username)
        monkeypatch.setenv("EXCHANGE_REGISTRY_PASSWORD", auth_registry.password)
        fork = world.fork()
        fork.write("gears/acme/evil.json", gear("evil", f"{contributor.host}/evil/gear:1.0"))
        fork.commit("a gear from my own registry")
        result = branch_job(world.ci_checkout(fork), tmp_path, "--insecure-registry", contributor.host)
    finally:
        contributor.stop()
    assert contributor.authorizations == [None], "asked once, anonymously"
    assert problems(result)["gears/acme/evil.json"] == ["registry-unreachable"], result.output


def test_a_pr_adding_keys_and_a_self_signed_manifest_fails_the_branch_job(upstream: PullRequestWorld, registry,
                                                                        tmp_path: Path) -> None:
    """Attack 4, at the branch job: nothing looked at keys or manifests a PR added."""
    fork = upstream.fork()
    fork.write(".exchange/keys/mallory.pub", "-----BEGIN PUBLIC KEY-----\nnot checked here\n-----END PUBLIC KEY-----\n")
    fork.write("manifests/acme/acme-good-sha384-" + "0" * 96 + ".json", {"gear": {}, "exchange": {}})
    fork.write("schemas/manifest.schema.json", "{}\n")
    fork.write(".circleci/config.yml", "version: 2.1\n")
    fork.commit("my key and my manifest")
    result = branch_job(upstream.ci_checkout(fork), tmp_path, "--insecure-registry", registry.host)
    assert result.exit_code == 1, result.output
    found = problems(result)
    assert found == {".circleci/config.yml": ["protected-path"], ".exchange/keys/mallory.pub": ["protected-path"],
                     "manifests/acme/acme-good-sha384-" + "0" * 96 + ".json": ["protected-path"],
                     "schemas/manifest.schema.json": ["protected-path"]}, found


def test_deleting_a_manifest_or_a_key_is_protected_too(upstream: PullRequestWorld, tmp_path: Path) -> None:
    upstream.maintainer.write(".exchange/keys/exchange.pub", "key\n")
    upstream.maintainer.commit("the exchange's key")
    upstream.publish_master()
    fork = upstream.fork()
    fork.git("rm", "-q", ".exchange/keys/exchange.pub", "manifests/README.md")
    fork.commit("remove")
    result = branch_job(upstream.ci_checkout(fork), tmp_path)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    messages = {entry["path"].split("/ci/", 1)[-1]: entry["problems"][0]["message"] for entry in report["results"]}
    assert messages[".exchange/keys/exchange.pub"].startswith(".exchange/keys/exchange.pub deleted")
    assert messages["manifests/README.md"].startswith("manifests/README.md deleted")


def test_the_target_branch_judges_with_its_manifests_not_the_prs(upstream: PullRequestWorld, registry,
                                                                 tmp_path: Path) -> None:
    """version-taken is decided by the manifests on master: a PR that also deletes the manifest holding the
    version it reuses still fails on the version (and on the deletion)."""
    image = f"{registry.host}/acme/good:1.0"
    processed = {"gear": gear("good", image), "exchange": {"rootfs-hash": "sha384:" + "1" * 96}}
    name = "manifests/acme/acme-good-sha384-" + "1" * 96 + ".json"
    upstream.maintainer.write(name, processed)
    upstream.maintainer.commit("processed good 1.0.0")
    upstream.publish_master()
    fork = upstream.fork()
    fork.write("gears/acme/good.json", gear("good", image, description="the same version, another spec"))
    fork.git("rm", "-q", name)
    fork.commit("reuse a version")
    result = branch_job(upstream.ci_checkout(fork), tmp_path, "--insecure-registry", registry.host)
    found = problems(result)
    assert found["gears/acme/good.json"] == ["version-taken"], found
    assert found[name] == ["protected-path"], found


def approval_token(world: PullRequestWorld) -> str:
    token = secrets.token_hex(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    policy = (world.maintainer.root / ".exchange.yaml").read_text()
    world.maintainer.write(".exchange.yaml", policy + f"trust:\n  maintainer-approval-sha256: \"{digest}\"\n")
    world.maintainer.commit("maintainers can approve protected changes")
    world.publish_master()
    return token


def test_a_maintainers_token_approves_protected_changes_and_a_forged_one_does_not(
        upstream: PullRequestWorld, registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = approval_token(upstream)
    fork = upstream.fork()
    fork.write(".exchange.yaml", (upstream.maintainer.root / ".exchange.yaml").read_text() +
               "catalog:\n  title: A better title\n")
    fork.commit("retitle the catalog")
    ci = upstream.ci_checkout(fork)
    unapproved = branch_job(ci, tmp_path)
    assert unapproved.exit_code == 1 and problems(unapproved)[".exchange.yaml"] == ["protected-path"]

    monkeypatch.setenv("EXCHANGE_MAINTAINER_APPROVAL", "a-guess")
    forged = branch_job(ci, tmp_path)
    assert forged.exit_code == 1
    assert "does not match" in json.loads(forged.stdout)["results"][0]["problems"][0]["message"]

    monkeypatch.setenv("EXCHANGE_MAINTAINER_APPROVAL", token)
    approved = branch_job(ci, tmp_path)
    assert approved.exit_code == 0, approved.output
    (entry,) = json.loads(approved.stdout)["results"]
    assert entry["problems"][0]["severity"] == "info" and "approved by a maintainer" in entry["problems"][0]["message"]


def test_a_pr_cannot_approve_itself_by_recording_its_own_token_hash(upstream: PullRequestWorld, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash is read from the target branch: a PR that writes the hash of a token it chose, and sets
    that token in its own CI config, is still unapproved."""
    token = "mallorys-own-token"
    fork = upstream.fork()
    fork.write(".exchange.yaml", "trust:\n  maintainer-approval-sha256: "
                                 f"\"{hashlib.sha256(token.encode()).hexdigest()}\"\n")
    fork.commit("approve myself")
    monkeypatch.setenv("EXCHANGE_MAINTAINER_APPROVAL", token)
    result = branch_job(upstream.ci_checkout(fork), tmp_path)
    assert result.exit_code == 1
    assert problems(result)[".exchange.yaml"] == ["protected-path"]


def test_base_needs_shared_history_and_excludes_other_selections(upstream: PullRequestWorld,
                                                                 tmp_path: Path) -> None:
    ci = upstream.ci_checkout(upstream.fork())
    mixed = CliRunner().invoke(cli, ["validate", "--repo", str(ci), "--base", "origin/master", "--all"])
    assert mixed.exit_code == 2 and "--base" in mixed.output
    unknown = CliRunner().invoke(cli, ["validate", "--repo", str(ci), "--base", "origin/nope"])
    assert unknown.exit_code == 2 and "origin/nope" in unknown.output


def test_base_leaves_the_checkout_untouched(upstream: PullRequestWorld, registry, tmp_path: Path) -> None:
    fork = upstream.fork()
    fork.write("gears/acme/new.json", gear("new", f"{registry.host}/acme/good:1.0"))
    fork.commit("a new gear")
    ci = upstream.ci_checkout(fork)
    before = [ExchangeRepo(ci).git("status", "--porcelain", "--ignored"), ExchangeRepo(ci).git("worktree", "list"),
              (ci / ".git" / "index").read_bytes()]
    result = branch_job(ci, tmp_path, "--insecure-registry", registry.host)
    assert result.exit_code == 0, result.output
    after = [ExchangeRepo(ci).git("status", "--porcelain", "--ignored"), ExchangeRepo(ci).git("worktree", "list"),
             (ci / ".git" / "index").read_bytes()]
    assert after == before


def test_after_a_merge_verify_names_who_added_the_key_and_that_no_process_run_made_the_manifest(
        upstream: PullRequestWorld, tmp_path: Path) -> None:
    """Attack 4, after the merge: a PR's own key and a manifest it processed and signed itself; `verify`
    without --key said "signed by the exchange's key"."""
    fork = upstream.fork()
    mallory = LocalKeySigner.from_pem(generate_private_key("ed25519"), "mallory's key")
    made = publish(tmp_path / "mallory", mallory)
    fork.write(f".exchange/keys/{mallory.public_key.key_id}.pub", mallory.public_key.pem.decode())
    fork.write(f"manifests/acme/{made.manifest.name}", made.manifest.read_text())
    fork.commit("Add hello 1.0.0")
    merged = upstream.maintainer
    merged.git("pull", "-q", "--no-rebase", str(fork.root), "pr")  # a maintainer merges without reading closely
    result = CliRunner().invoke(cli, ["verify", "acme/hello@1.0.0", "--repo", str(merged.root), "--format", "json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["failure"]["check"] == "custody", report
    reason = report["failure"]["reason"]
    commit = fork.git("rev-parse", "HEAD")[:12]
    assert f"key .exchange/keys/{mallory.public_key.key_id}.pub added by commit {commit} by Mallory Contributor" \
        in reason
    assert "which is not a process run" in reason
    pinned = CliRunner().invoke(cli, ["verify", "acme/hello@1.0.0", "--repo", str(merged.root), "--key",
                                      str(public_key_of(tmp_path / "exchange.pub"))])
    assert pinned.exit_code == 1 and "FAIL signature" in pinned.output, "a platform that pinned the real key"


def public_key_of(path: Path) -> Path:
    path.write_bytes(LocalKeySigner.from_pem(generate_private_key("ed25519"), "the exchange").public_key.pem)
    return path


def test_a_pr_turning_a_spec_or_the_policy_into_a_link_is_caught_and_nothing_is_read(
        upstream: PullRequestWorld, tmp_path: Path) -> None:
    """Beyond the ten: a type change (file -> link) used to fall outside the changed specs (--diff-filter=AM)
    and was never checked; the policy as a link to a private file."""
    fork = upstream.fork()
    secret = tmp_path / "ci-secret.json"
    secret.write_text('{"token": "s3cr3t-v4lue"}')
    (fork.root / "gears/acme/good.json").unlink()
    (fork.root / "gears/acme/good.json").symlink_to(secret)
    (fork.root / ".exchange.yaml").unlink()
    (fork.root / ".exchange.yaml").symlink_to(secret)
    fork.commit("links")
    result = branch_job(upstream.ci_checkout(fork), tmp_path)
    assert result.exit_code == 1, result.output
    found = problems(result)
    assert found["gears/acme/good.json"] == ["spec-location"], found
    assert found[".exchange.yaml"] == ["protected-path"], found
    assert "s3cr3t-v4lue" not in result.output
