"""`exchange validate` on real git repositories: every rule, every output, every exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.validation.problems import RULES
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear, init_repo

LINE = r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<severity>error|info)\[(?P<rule>[a-z-]+)\]: (?P<message>.*)$"


def validate(repo: ExchangeRepo, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", "--repo", str(repo.root), "--format", "text", *args])
    return result.exit_code, result.output


def json_report(repo: ExchangeRepo, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["validate", "--repo", str(repo.root), "--format", "json", *args])
    return result.exit_code, json.loads(result.output)


def rules_of(report: dict, path_suffix: str) -> set[str]:
    (result,) = [r for r in report["results"] if r["path"].endswith(path_suffix)]
    return {p["rule"] for p in result["problems"]}


def test_examples_in_this_repository_validate_clean() -> None:
    root = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(cli, ["validate", "--all", "--repo", str(root), "--format", "json"])
    report = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert report["summary"]["total"] >= 4
    assert {r["kind"] for r in report["results"]} == {"gear", "boutique"}


def test_valid_gear_and_boutique_pass(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    exchange_repo.write("boutiques/acme/word-count.json", example_boutique())
    code, output = validate(exchange_repo, "--all")
    assert code == 0, output
    assert output.strip() == "2 spec(s) checked: 2 passed, 0 failed, 0 already processed"


@pytest.mark.parametrize(
    ("relative", "content", "rule", "pointer"),
    [
        ("gears/acme/broken.json", '{\n  "name": "x",\n}\n', "json-syntax", None),
        ("gears/acme/notes.txt", "{}", "file-name", None),
        ("gears/too/deep/x.json", example_gear(), "spec-location", None),
        ("gears/acme/no-author.json", example_gear(author=None), "gear-schema", ""),
        ("gears/acme/bad-url.json", example_gear(source="not a uri"), "schema-format", "/source"),
        ("gears/acme/bad-license.json", example_gear(license="WTFPL"), "gear-schema", "/license"),
        ("boutiques/acme/no-version.json", example_boutique(**{"tool-version": None}), "boutique-schema", ""),
        ("gears/acme/no-image.json", example_gear(custom={"gear-builder": {"category": "x"}}), "image-missing", "/custom"),
        ("gears/acme/bad-ref.json", example_gear(custom={"docker-image": "Registry:5000/UPPER/x:1"}), "image-reference", "/custom/docker-image"),
        ("gears/acme/latest.json", example_gear(custom={"gear-builder": {"image": "localhost:5000/org/x"}}), "image-unpinned", "/custom/gear-builder/image"),
        ("boutiques/acme/no-image.json", example_boutique(**{"container-image": None}), "image-missing", ""),
    ],
)
def test_each_file_rule_fires_with_a_position(exchange_repo: ExchangeRepo, relative: str, content, rule: str,
                                              pointer: str | None) -> None:
    exchange_repo.write(relative, content)
    code, output = validate(exchange_repo, relative and str(exchange_repo.root / relative))
    assert code == 1, output
    import re

    lines = [re.match(LINE, line) for line in output.splitlines()[:-1]]
    assert all(lines), output
    assert rule in {m["rule"] for m in lines}, output
    hit = next(m for m in lines if m["rule"] == rule)
    assert hit["path"].endswith(relative)
    assert int(hit["line"]) >= 1 and int(hit["col"]) >= 1
    if pointer:
        assert hit["message"].endswith(f"(at {pointer})"), hit["message"]


def test_json_syntax_reports_the_line_and_column_of_the_error(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("gears/acme/broken.json", '{\n  "name": "x",\n  "version" "1"\n}\n')
    _, output = validate(exchange_repo, "--all")
    assert ("gears/acme/broken.json:3:13: error[json-syntax]: "
            'not valid JSON: missing : between the property name and its value "1"') in output


def test_positions_point_at_the_offending_value(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("gears/acme/hello-world.json", example_gear(license="WTFPL"))
    _, report = json_report(exchange_repo, "--all")
    (problem,) = report["results"][0]["problems"]
    text = (exchange_repo.root / "gears/acme/hello-world.json").read_text().splitlines()
    assert text[problem["line"] - 1][problem["column"] - 1:].startswith('"WTFPL"')
    assert problem["pointer"] == "/license"


def test_boutique_semantic_checks_run(exchange_repo: ExchangeRepo) -> None:
    boutique = example_boutique()
    boutique["inputs"][1]["value-key"] = "[NOT_IN_COMMAND_LINE]"
    exchange_repo.write("boutiques/acme/word-count.json", boutique)
    code, report = json_report(exchange_repo, "--all")
    assert code == 1
    (problem,) = report["results"][0]["problems"]
    assert problem["rule"] == "boutique-semantics"
    assert "[NOT_IN_COMMAND_LINE]" in problem["message"]
    assert problem["pointer"] == "/inputs/1/value-key"


def test_boutique_required_list_is_not_relaxed(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("boutiques/acme/wc.json", example_boutique(**{"schema-version": None}))
    _, report = json_report(exchange_repo, "--all")
    messages = [p["message"] for p in report["results"][0]["problems"]]
    assert "'schema-version' is a required property" in messages


def test_reference_grammar_accepts_ports_nested_paths_and_digests(exchange_repo: ExchangeRepo) -> None:
    digest = "sha256:" + "ab" * 32
    for index, image in enumerate(["localhost:5000/a/b/c:1.0", f"registry.example.org:443/x/y@{digest}",
                                   f"x/y:1@{digest}", "busybox:1.36", "[::1]:5000/x:1"]):
        exchange_repo.write(f"gears/acme/g{index}.json",
                            example_gear(name=f"g{index}", custom={"gear-builder": {"image": image}}))
    code, output = validate(exchange_repo, "--all")
    assert code == 0, output


def manifest_for(spec: dict, kind: str = "gear") -> dict:
    return {kind: spec, "exchange": {"git-commit": "0" * 40, "rootfs-hash": "sha384:" + "0" * 96,
                                     "rootfs-url": "https://example.invalid/x.tgz"}, "invocation-schema": {}}


def test_version_taken_by_a_different_spec_is_an_error(exchange_repo: ExchangeRepo) -> None:
    processed = example_gear()
    exchange_repo.write("manifests/acme/acme-hello-sha384-" + "0" * 96 + ".json", manifest_for(processed))
    exchange_repo.write("gears/acme/hello-world.json", example_gear(description="changed without a new version"))
    code, report = json_report(exchange_repo, "--all")
    assert code == 1
    assert rules_of(report, "hello-world.json") == {"version-taken"}


def test_already_processed_spec_is_reported_not_failed(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("manifests/acme/acme-hello-world-sha384-" + "1" * 96 + ".json", manifest_for(example_gear()))
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    code, report = json_report(exchange_repo, "--all")
    assert code == 0
    assert report["results"][0]["status"] == "processed"
    assert report["summary"]["processed"] == 1
    code, output = validate(exchange_repo, "--all")
    assert "info[already-processed]" in output and code == 0


def test_same_version_in_another_org_is_not_taken(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("manifests/other/other-hello-world-sha384-" + "2" * 96 + ".json", manifest_for(example_gear(description="x")))
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    code, _ = json_report(exchange_repo, "--all")
    assert code == 0


def test_two_specs_claiming_one_version_both_fail(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    exchange_repo.write("gears/other/hello-world.json", example_gear(description="another org: its own gear"))
    exchange_repo.write("gears/acme/hello-copy.json", example_gear(description="another"))
    code, report = json_report(exchange_repo, "--all")
    assert code == 1
    # Same org: one gear in two files (duplicate-name), claiming one version twice; the copy is also
    # a new file not named after its gear.
    assert rules_of(report, "acme/hello-world.json") == {"duplicate-version", "duplicate-name"}
    assert rules_of(report, "hello-copy.json") == {"duplicate-version", "duplicate-name", "file-name"}
    assert rules_of(report, "other/hello-world.json") == set()


def test_junit_has_one_case_per_spec(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    exchange_repo.write("gears/acme/bad.json", example_gear(name="bad", author=None))
    junit = tmp_path / "reports" / "validate.xml"
    code, _ = validate(exchange_repo, "--all", "--junit-xml", str(junit))
    assert code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {case.get("name").rsplit("/", 1)[-1]: case for case in suite.iter("testcase")}
    assert cases["hello-world.json"].find("failure") is None
    failure = cases["bad.json"].find("failure")
    assert failure.get("type") == "gear-schema" and "'author' is a required property" in failure.text


def test_rich_format_renders_a_table_per_file(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("gears/acme/bad.json", example_gear(license="WTFPL"))
    result = CliRunner().invoke(cli, ["validate", "--repo", str(exchange_repo.root), "--all", "--format", "rich"])
    assert result.exit_code == 1
    assert "failed" in result.output and "gear-schema" in result.output and "/license" in result.output


def test_every_rule_id_is_documented_and_stable() -> None:
    assert all(isinstance(text, str) and text for text in RULES.values())
    assert set(RULES) >= {
        "json-syntax", "file-name", "spec-location", "gear-schema", "boutique-schema", "boutique-semantics",
        "image-missing", "image-reference", "image-unpinned", "image-not-found", "version-taken",
        "duplicate-version", "already-processed", "invocation", "schema-format", "protected-path",
    }


class TestChangeDetection:
    def test_without_sentinel_every_spec_is_checked(self, copy_examples: ExchangeRepo) -> None:
        _, report = json_report(copy_examples)
        assert report["summary"]["total"] == 4

    def test_sentinel_limits_to_added_and_modified(self, copy_examples: ExchangeRepo) -> None:
        repo = copy_examples
        repo.set_sentinel(repo.git("rev-parse", "HEAD"))
        repo.commit("processed")
        repo.write("gears/acme/new.json", example_gear(name="new"))
        gear = json.loads((repo.root / "gears/neuro/skull-strip.json").read_text())
        gear["version"] = "2.2.0"
        repo.write("gears/neuro/skull-strip.json", gear)
        (repo.root / "gears/examples/file-metadata.json").unlink()
        repo.commit("add, modify, delete")
        repo.write("boutiques/acme/untracked.json", example_boutique(name="untracked"))
        _, report = json_report(repo)
        paths = sorted(r["path"].split("exchange/", 1)[-1] for r in report["results"])
        assert [p.rsplit("/", 3)[-3:] for p in paths] == [
            ["boutiques", "acme", "untracked.json"], ["gears", "acme", "new.json"], ["gears", "neuro", "skull-strip.json"]]

    def test_since_overrides_the_sentinel(self, copy_examples: ExchangeRepo) -> None:
        repo = copy_examples
        base = repo.git("rev-parse", "HEAD")
        repo.write("gears/acme/new.json", example_gear(name="new"))
        repo.commit("one more")
        repo.set_sentinel(repo.git("rev-parse", "HEAD"))
        repo.commit("processed")
        _, report = json_report(repo)
        assert report["summary"]["total"] == 0
        _, report = json_report(repo, "--since", base)
        assert [r["name"] for r in report["results"]] == ["new"]

    def test_unknown_sentinel_commit_is_a_repository_error(self, copy_examples: ExchangeRepo) -> None:
        copy_examples.set_sentinel("f" * 40)
        code, output = validate(copy_examples)
        assert code == 2
        assert ".sentinel names" in output


class TestExitCodes:
    def test_not_a_git_repository(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path), "--all"])
        assert result.exit_code == 2
        assert "not inside a git repository" in result.output

    def test_unknown_path(self, exchange_repo: ExchangeRepo) -> None:
        code, output = validate(exchange_repo, str(exchange_repo.root / "gears/nope.json"))
        assert code == 2 and "no such file" in output

    def test_paths_and_all_exclude_each_other(self, exchange_repo: ExchangeRepo) -> None:
        path = exchange_repo.write("gears/acme/x.json", example_gear())
        code, _ = validate(exchange_repo, "--all", str(path))
        assert code == 2

    def test_console_script_exit_codes_and_line_format(self, exchange_repo: ExchangeRepo) -> None:
        exchange_repo.write("gears/acme/x.json", example_gear(author=None))
        exe = Path(sys.executable).with_name("exchange")
        proc = subprocess.run([str(exe), "validate", "--all"], cwd=exchange_repo.root, capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 1
        assert proc.stdout.startswith("gears/acme/x.json:1:1: error[gear-schema]: 'author' is a required property")
        proc = subprocess.run([str(exe), "validate", "--all"], cwd=exchange_repo.root.parent, capture_output=True, text=True,
                              env={**os.environ, "GIT_CEILING_DIRECTORIES": str(exchange_repo.root.parent.parent)},
                              check=False)
        assert proc.returncode == 2 and "not inside a git repository" in proc.stderr


class TestInvocation:
    def test_gear_invocation_schema_and_validation(self, exchange_repo: ExchangeRepo) -> None:
        spec = exchange_repo.write("gears/acme/x.json", example_gear())
        result = CliRunner().invoke(cli, ["invocation-schema", str(spec)])
        schema = json.loads(result.output)
        assert schema["properties"]["config"]["properties"]["name"]["type"] == "string"
        good = exchange_repo.write("good.json", {"config": {"name": "you"}, "inputs": {}})
        bad = exchange_repo.write("bad.json", {"config": {"name": 3, "extra": 1}, "inputs": {}})
        assert CliRunner().invoke(cli, ["validate-invocation", str(spec), str(good)]).exit_code == 0
        result = CliRunner().invoke(cli, ["validate-invocation", str(spec), str(bad), "--format", "text"])
        assert result.exit_code == 1
        assert "error[invocation]: 3 is not of type 'string' (at /config/name)" in result.output
        assert "Additional properties are not allowed ('extra' was unexpected)" in result.output

    def test_boutique_invocation(self, exchange_repo: ExchangeRepo) -> None:
        spec = exchange_repo.write("boutiques/acme/wc.json", example_boutique())
        bad = exchange_repo.write("inv.json", {"input_file": "a.txt", "lines_only": "yes"})
        result = CliRunner().invoke(cli, ["validate-invocation", str(spec), str(bad), "--format", "text"])
        assert result.exit_code == 1 and "(at /lines_only)" in result.output
        missing = exchange_repo.write("inv2.json", {"lines_only": True})
        result = CliRunner().invoke(cli, ["validate-invocation", str(spec), str(missing), "--format", "text"])
        assert "'input_file' is a required property" in result.output

    def test_manifest_uses_its_embedded_schema(self, exchange_repo: ExchangeRepo) -> None:
        embedded = {"type": "object", "properties": {"config": {"type": "object", "required": ["only-here"]}}}
        document = manifest_for(example_gear())
        document["invocation-schema"] = embedded
        manifest = exchange_repo.write("manifests/acme/m.json", document)
        result = CliRunner().invoke(cli, ["invocation-schema", str(manifest)])
        assert json.loads(result.stdout) == embedded
        assert "older than today's generator" in result.stderr and "--regenerate" in result.stderr
        inv = exchange_repo.write("inv.json", {"config": {}})
        result = CliRunner().invoke(cli, ["validate-invocation", str(manifest), str(inv), "--format", "text"])
        assert "'only-here' is a required property" in result.output

    def test_invalid_invocation_json_names_line_and_column(self, exchange_repo: ExchangeRepo) -> None:
        spec = exchange_repo.write("gears/acme/x.json", example_gear())
        inv = exchange_repo.write("inv.json", '{"config": {,}}')
        result = CliRunner().invoke(cli, ["validate-invocation", str(spec), str(inv), "--format", "text"])
        assert result.exit_code == 1 and "inv.json:1:13: error[json-syntax]" in result.output


def test_check_images_asks_the_registry(exchange_repo: ExchangeRepo, registry) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    registry.push_image("acme/present", "1.0", [buffer.getvalue()])
    exchange_repo.write("gears/acme/present.json", example_gear(
        name="present", custom={"gear-builder": {"image": f"{registry.host}/acme/present:1.0"}}))
    exchange_repo.write("gears/acme/absent.json", example_gear(
        name="absent", custom={"gear-builder": {"image": f"{registry.host}/acme/present:2.0"}}))
    code, report = json_report(exchange_repo, "--all")
    assert code == 0, "without --check-images the registry is not asked"
    code, report = json_report(exchange_repo, "--all", "--check-images", "--insecure-registry", registry.host)
    assert code == 1
    assert rules_of(report, "present.json") == set()
    assert rules_of(report, "absent.json") == {"image-not-found"}


# Boutiques as they are written ---------------------------------------------------------------------

def boutique_with(container: dict) -> dict:
    return example_boutique(**{"container-image": container})


@pytest.mark.parametrize(("container", "reference"), [
    ({"type": "singularity", "image": "docker://acme/word-count:1.0.0"}, "docker.io/acme/word-count:1.0.0"),
    ({"type": "docker", "image": "acme/word-count:1.0.0", "index": "quay.io"}, "quay.io/acme/word-count:1.0.0"),
    ({"type": "docker", "image": "acme/word-count:1.0.0", "index": "https://quay.io/"}, "quay.io/acme/word-count:1.0.0"),
    ({"type": "docker", "image": "ghcr.io/acme/wc:1", "index": "quay.io"}, "ghcr.io/acme/wc:1"),
    ({"type": "singularity", "image": "acme/word-count:1.0.0", "index": "docker://"}, "docker.io/acme/word-count:1.0.0"),
    ({"type": "singularity", "image": "docker://acme/wc", "container-hash": "sha256:" + "ab" * 32},
     "docker.io/acme/wc@sha256:" + "ab" * 32),
])
def test_boutique_images_as_written_are_docker_references(container: dict, reference: str) -> None:
    from exchange_cli.reference import parse_reference
    from exchange_cli.specs import SpecKind, spec_image

    image = spec_image(boutique_with(container), SpecKind.BOUTIQUE)
    assert image.unsupported is None and image.conflict is None
    assert str(parse_reference(image.reference)) == reference


@pytest.mark.parametrize("image", ["shub://acme/word-count:1.0", "library://acme/default/wc:1.0",
                                   "oras://ghcr.io/acme/wc:1.0"])
def test_singularity_sources_are_a_clear_image_unsupported_problem(exchange_repo: ExchangeRepo, image: str) -> None:
    exchange_repo.write("boutiques/acme/word-count.json", boutique_with({"type": "singularity", "image": image}))
    code, output = validate(exchange_repo, "--all")
    assert code == 1
    assert f"error[image-unsupported]: {image!r} is a Singularity image source, not a Docker image" in output
    assert "(at /container-image/image)" in output


@pytest.mark.parametrize("container", [{"type": "singularity", "image": "docker://acme/word-count:1.0.0"},
                                       {"type": "docker", "image": "acme/word-count:1.0.0", "index": "quay.io"}])
def test_a_singularity_docker_image_and_an_index_validate(exchange_repo: ExchangeRepo, container: dict) -> None:
    exchange_repo.write("boutiques/acme/word-count.json", boutique_with(container))
    code, output = validate(exchange_repo, "--all")
    assert code == 0, output


def test_a_container_hash_that_contradicts_the_image_digest_is_refused(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("boutiques/acme/word-count.json", boutique_with(
        {"type": "docker", "image": "acme/wc@sha256:" + "cd" * 32, "container-hash": "sha256:" + "ab" * 32}))
    code, output = validate(exchange_repo, "--all")
    assert code == 1 and "error[image-reference]: container-hash" in output and "disagree" in output


def test_an_anyof_failure_names_the_real_cause_in_the_branch_meant_for_it(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("gears/acme/hello-world.json",
                        example_gear(inputs={"x": {"base": "file", "type": {"enum": "dicom"}},
                                             "key": {"base": "api-key", "read-only": "no"}}))
    code, output = validate(exchange_repo, "--all")
    assert code == 1
    assert "error[gear-schema]: 'dicom' is not of type 'array' (at /inputs/x/type/enum)" in output
    assert "error[gear-schema]: 'no' is not of type 'boolean' (at /inputs/key/read-only)" in output
    assert "not valid under any of the given schemas" not in output and "…" not in output


def test_a_spec_in_a_misspelled_folder_is_warned_about_with_its_place(exchange_repo: ExchangeRepo) -> None:
    """`gear/jane/x.json` was silently ignored: the branch job green, the gear never published."""
    exchange_repo.write("gear/jane/x.json", example_gear(name="x"))
    exchange_repo.write("Boutiques/acme/y.json", example_gear(name="y"))
    exchange_repo.write("gears/z.json", example_gear(name="z"))
    exchange_repo.write("docs/example.json", {"not": "a spec"})
    exchange_repo.write("gears/jane/ok.json", example_gear(name="ok"))
    result = CliRunner().invoke(cli, ["validate", "--all", "--repo", str(exchange_repo.root), "--format", "json"])
    stray = {r["path"]: r["problems"][0]["message"] for r in json.loads(result.stdout)["results"]
             if r["problems"] and r["problems"][0]["rule"] == "stray-spec"}
    assert set(stray) == {"gear/jane/x.json", "Boutiques/acme/y.json"}, stray
    assert stray["gear/jane/x.json"].endswith("did you mean gears/jane/x.json?")
    assert stray["Boutiques/acme/y.json"].endswith("did you mean boutiques/acme/y.json?")
    text = CliRunner().invoke(cli, ["validate", "--all", "--repo", str(exchange_repo.root), "--format", "text"])
    assert "gear/jane/x.json: warning[stray-spec]" in text.output


def test_validate_checks_a_contributors_own_file_outside_any_exchange(tmp_path: Path) -> None:
    """`validate FILE` outside an exchange (a gear's own repository) refused to run."""
    gear_repo = tmp_path / "my-gear"
    init_repo(gear_repo)
    good = gear_repo / "manifest.json"
    good.write_text(json.dumps(example_gear(name="mine")))
    bad = tmp_path / "loose.json"
    bad.write_text(json.dumps(example_gear(name="mine", license="nope")))
    ok = CliRunner().invoke(cli, ["validate", str(good), "--repo", str(gear_repo), "--format", "text"])
    assert ok.exit_code == 0, ok.output
    assert "not inside an exchange" in ok.stderr
    failed = CliRunner().invoke(cli, ["validate", str(bad), "--repo", str(tmp_path), "--format", "json"])
    assert failed.exit_code == 1
    (result,) = json.loads(failed.stdout)["results"]
    assert {p["rule"] for p in result["problems"]} == {"gear-schema"}
