"""The exchange's policy file, `.exchange.yaml`: what it relaxes and tightens, and how a broken one is reported."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.validation.policy import SWITCHABLE_RULES, policy_schema
from exchange_cli.validation.problems import RULES
from tests.infra.commands import catalog_site
from tests.infra.gitrepo import ExchangeRepo, example_gear

ROOT = Path(__file__).resolve().parents[1]


def gear_with_image(image: str) -> str:
    """A gear whose image sits on a known line, to check the reported position."""
    gear = example_gear(custom={"gear-builder": {"image": image}})
    return json.dumps(gear, indent=4) + "\n"


def image_position(text: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines(), start=1):
        if '"image":' in line:
            return number, line.index('"image":') + len('"image": ') + 1
    raise AssertionError("no image line")


def validate(repo: ExchangeRepo, image: str, policy: str | None = None):
    text = gear_with_image(image)
    repo.write("gears/acme/hello-world.json", text)
    if policy is not None:
        repo.write(".exchange.yaml", policy)
    result = CliRunner().invoke(cli, ["validate", "--repo", str(repo.root), "--format", "json", "--all"])
    return result, text


def problems(result) -> list[dict]:
    (spec,) = json.loads(result.output)["results"]
    return spec["problems"]


def test_an_explicit_latest_is_unpinned_like_the_implicit_one(exchange_repo: ExchangeRepo) -> None:
    for image in ("registry.example.org/acme/x:latest", "registry.example.org/acme/x"):
        result, text = validate(exchange_repo, image)
        assert result.exit_code == 1, result.output
        (problem,) = problems(result)
        assert problem["rule"] == "image-unpinned"
        assert (problem["line"], problem["column"]) == image_position(text)
        assert "registry.example.org/acme/x:1.0.0" in problem["message"], "the fix is spelled out"


def test_a_digest_pins_even_with_latest_written(exchange_repo: ExchangeRepo) -> None:
    result, _ = validate(exchange_repo, "registry.example.org/acme/x:latest@sha256:" + "a" * 64)
    assert result.exit_code == 0, result.output


def test_the_policy_can_allow_an_explicit_latest_but_not_a_missing_tag(exchange_repo: ExchangeRepo) -> None:
    allow = "images:\n  allow-latest: true\n"
    assert validate(exchange_repo, "registry.example.org/acme/x:latest", allow)[0].exit_code == 0
    result, _ = validate(exchange_repo, "registry.example.org/acme/x", allow)
    assert [p["rule"] for p in problems(result)] == ["image-unpinned"]


def test_the_policy_can_turn_a_rule_off(exchange_repo: ExchangeRepo) -> None:
    result, _ = validate(exchange_repo, "registry.example.org/acme/x", "rules:\n  image-unpinned: off\n")
    assert result.exit_code == 0, result.output
    result, _ = validate(exchange_repo, "registry.example.org/acme/x", "rules:\n  image-unpinned: on\n")
    assert result.exit_code == 1, result.output
    assert [p["rule"] for p in problems(result)] == ["image-unpinned"]


def test_the_policy_can_require_digests(exchange_repo: ExchangeRepo) -> None:
    policy = "images:\n  require-digest: true\n"
    result, text = validate(exchange_repo, "registry.example.org/acme/x:1.0", policy)
    (problem,) = problems(result)
    assert problem["rule"] == "image-unpinned" and "requires a digest" in problem["message"]
    assert (problem["line"], problem["column"]) == image_position(text)
    assert validate(exchange_repo, "registry.example.org/acme/x@sha256:" + "b" * 64, policy)[0].exit_code == 0


@pytest.mark.parametrize(("image", "allowed"), [
    ("registry.example.org/acme/x:1.0", True),
    ("mirror.example.org/acme/x:1.0", True),
    ("ghcr.io/acme/x:1.0", False),
    ("acme/x:1.0", False),  # Docker Hub, i.e. docker.io
    ("example.org.evil.net/acme/x:1.0", False),
])
def test_the_policy_can_restrict_registries(exchange_repo: ExchangeRepo, image: str, allowed: bool) -> None:
    policy = "images:\n  allowed-registries: [registry.example.org, '*.example.org']\n"
    result, text = validate(exchange_repo, image, policy)
    if allowed:
        assert result.exit_code == 0, result.output
        return
    (problem,) = problems(result)
    assert problem["rule"] == "image-registry"
    assert (problem["line"], problem["column"]) == image_position(text)
    assert "registry.example.org, *.example.org" in problem["message"]


@pytest.mark.parametrize(("policy", "where", "says"), [
    ("images:\n  allow-latest: maybe\n", ":2:17:", "'maybe' is not of type 'boolean'"),
    ("images:\n  alow-latest: true\n", ":2:3:", "'alow-latest' was unexpected"),
    ("rules:\n  json-syntax: off\n", ":2:3:", "'json-syntax' is not one of"),
    ("- images\n", ":1:1:", "is not of type 'object'"),
    ("images: {allow-latest: true\n", ":2:1:", "not valid YAML"),
    ("catalog:\n  title: ''\n", ":2:10:", "should be non-empty"),
    ("images:\n  allowed-registries: [ok.example.org, 'bad host/']\n", ":2:40:", "does not match"),
])
def test_a_broken_policy_is_a_usage_error_at_its_line_and_column(exchange_repo: ExchangeRepo, policy: str,
                                                                  where: str, says: str) -> None:
    result, _ = validate(exchange_repo, "registry.example.org/acme/x:1.0", policy)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: .exchange.yaml{where} "), line
    assert says in line, line
    assert "Traceback" not in result.output
    error = json.loads(result.stdout)["error"]  # asked for JSON: the same failure as a document
    assert (error["message"], error["kind"], error["exit-status"]) == (line.removeprefix("error: "), "usage", 2)


def test_a_policy_that_is_not_text_is_a_usage_error(exchange_repo: ExchangeRepo) -> None:
    (exchange_repo.root / ".exchange.yaml").write_bytes(b"\xff\xfe\x00binary")
    exchange_repo.write("gears/acme/hello-world.json", gear_with_image("registry.example.org/acme/x:1.0"))
    result = CliRunner().invoke(cli, ["validate", "--repo", str(exchange_repo.root), "--all"])
    assert result.exit_code == 2 and result.output.startswith("error: .exchange.yaml: cannot read it"), result.output


def test_add_gear_applies_the_policy(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    source = tmp_path / "manifest.json"
    source.write_text(gear_with_image("ghcr.io/acme/x:1.0"))
    exchange_repo.write(".exchange.yaml", "images:\n  allowed-registries: [registry.example.org]\n")
    exchange_repo.commit("policy")
    result = CliRunner().invoke(cli, ["add-gear", str(source), "--org", "acme", "--repo", str(exchange_repo.root)])
    assert result.exit_code == 1, result.output
    assert "image-registry" in result.output
    assert not (exchange_repo.root / "gears").exists(), "nothing written"


def test_the_schema_is_published_in_schemas_and_names_only_switchable_rules() -> None:
    schema = policy_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert json.loads((ROOT / "schemas" / "exchange-policy.schema.json").read_text()) == schema
    assert schema["properties"]["rules"]["propertyNames"]["enum"] == list(SWITCHABLE_RULES)
    assert set(SWITCHABLE_RULES) <= set(RULES)


def test_the_catalog_takes_its_title_from_the_policy(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    exchange_repo.write("gears/acme/hello-world.json", gear_with_image("registry.example.org/acme/x:1.0"))
    exchange_repo.write(".exchange.yaml", "catalog:\n  title: ACME <Neuro> gears\n")
    exchange_repo.commit("policy")
    site = catalog_site(exchange_repo.root, tmp_path)
    index = (site / "index.html").read_text()
    assert "<title>ACME &lt;Neuro&gt; gears</title>" in index and "<h1>ACME &lt;Neuro&gt; gears</h1>" in index
    (page,) = site.glob("gears/acme/*.html")
    assert "ACME &lt;Neuro&gt; gears</title>" in page.read_text()
