"""`validate --check-images`: a missing image or a registry that cannot answer is a problem of that spec,
at the image's line and column; every other spec is still checked and every report still written."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.web.retries import RETRY_SECONDS_ENV
from tests.infra.capturing_registry import CapturingRegistry
from tests.infra.circleci_config import exchange_calls, load_config
from tests.infra.commands import closed_port
from tests.infra.gitrepo import ExchangeRepo, example_gear
from tests.layers import tiny_layer_tar

pytestmark = pytest.mark.usefixtures("no_credentials")  # tests/infra/image_sources.py


def image_position(path: Path) -> tuple[int, int]:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if '"image":' in line:
            return number, line.index('"image":') + len('"image": ') + 1
    raise AssertionError(path)


def test_missing_images_and_silent_registries_are_problems_of_their_specs(exchange_repo: ExchangeRepo, registry,
                                                                           auth_registry, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RETRY_SECONDS_ENV, "0.1")  # the registry that is down is retried: without the 7.5 s of pauses
    registry.push_image("acme/present", "1.0", [tiny_layer_tar()])
    down = f"127.0.0.1:{closed_port()}"
    images = {
        "present": f"{registry.host}/acme/present:1.0",
        "no-tag": f"{registry.host}/acme/present:2.0",
        "no-digest": f"{registry.host}/acme/present@sha256:{'0' * 64}",
        "down": f"{down}/acme/x:1.0",
        "refused": f"{auth_registry.host}/acme/x:1.0",
    }
    paths = {}
    for name, image in images.items():
        paths[name] = exchange_repo.write(f"gears/acme/{name}.json",
                                          example_gear(name=name, custom={"gear-builder": {"image": image}}))
    junit = tmp_path / "results.xml"
    result = CliRunner().invoke(cli, [
        "validate", "--repo", str(exchange_repo.root), "--all", "--check-images", "--format", "json",
        "--junit-xml", str(junit), "--jobs", "5",
        "--insecure-registry", registry.host, "--insecure-registry", down, "--insecure-registry", auth_registry.host])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    by_name = {Path(entry["path"]).stem: entry for entry in report["results"]}
    assert by_name["present"]["problems"] == []
    expected = {"no-tag": "image-not-found", "no-digest": "image-not-found",
                "down": "registry-unreachable", "refused": "registry-unreachable"}
    for name, rule in expected.items():
        (problem,) = by_name[name]["problems"]
        assert problem["rule"] == rule, problem
        assert (problem["line"], problem["column"]) == image_position(paths[name]), name
        assert images[name] in problem["message"]
    assert "Connection refused" in by_name["down"]["problems"][0]["message"]
    assert "refused access" in by_name["refused"]["problems"][0]["message"]
    assert auth_registry.password not in result.output

    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert len(cases) == 5
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    assert len(failed) == 4 and not any("present" in name for name in failed)


def test_the_branch_ci_job_checks_images() -> None:
    (call,) = exchange_calls(load_config(), "validate")
    assert call[0] == "validate" and "--check-images" in call, call


def test_a_registry_the_policy_forbids_is_never_asked(exchange_repo: ExchangeRepo, registry,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """EXCHANGE_REGISTRY_USERNAME/PASSWORD are sent to any registry that asks; a contributor's pull
    request naming their own registry must not make the branch CI job (validate --check-images) hand
    them over when the exchange's policy allows only its own registries."""
    contributor = CapturingRegistry()
    try:
        monkeypatch.setenv("EXCHANGE_REGISTRY_USERNAME", "exchange-ci")
        monkeypatch.setenv("EXCHANGE_REGISTRY_PASSWORD", "ci-registry-password")
        (exchange_repo.root / ".exchange.yaml").write_text(f"images:\n  allowed-registries: [\"{registry.host}\"]\n")
        image = f"{contributor.host}/contributor/gear:1.0"
        exchange_repo.write("gears/acme/gear.json", example_gear(name="gear", custom={"gear-builder": {"image": image}}))
        result = CliRunner().invoke(cli, ["validate", "--repo", str(exchange_repo.root), "--all", "--check-images",
                                          "--format", "json", "--insecure-registry", contributor.host])
    finally:
        contributor.stop()
    assert result.exit_code == 1, result.output
    (entry,) = json.loads(result.stdout)["results"]
    assert [problem["rule"] for problem in entry["problems"]] == ["image-registry"], entry
    assert contributor.authorizations == [], "the contributor's registry was asked"
