"""Specs a hostile or careless contributor can commit: links out of the repository, and JSON that Python's
reader mishandles. Every reader (validate, process, the catalog, add-gear) refuses them the same way:
one problem naming the file, the place and the rule; a link is never followed, so nothing it points at
reaches a log, a report or a manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from exchange_cli.cli import cli
from exchange_cli.confined import NotConfined, read_below
from exchange_cli.specs import MAX_SPEC_BYTES
from tests.infra.commands import run_with_memory_cap
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo

SECRET = "s3cr3t-registry-token-4fz9"
LINE = re.compile(r"^(?P<path>[^:]+)(?::(?P<line>\d+):(?P<col>\d+))?: error\[(?P<rule>[a-z-]+)\]: (?P<message>.*)$")


def invoke(repo: ExchangeRepo, *args: str):
    return CliRunner().invoke(cli, [*args, "--repo", str(repo.root)])


def problem_lines(output: str) -> list[re.Match]:
    return [match for line in output.splitlines() if (match := LINE.match(line))]


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A file outside the exchange, shaped like ~/.docker/config.json. It is also JSON that fails every
    rule, so a reader that followed a link to it would report it."""
    path = tmp_path / "home" / ".docker" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"auths": {"registry.example.org": {"auth": SECRET}}, "name": SECRET}))
    return path


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text


def every_file_text(*roots: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for root in roots if root.exists()
                     for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts)


# Links -------------------------------------------------------------------------------------------

LINK_LAYOUTS = {
    # name: (link path, what it points to, the spec path validate is given, the place named)
    "file": ("gears/acme/x.json", "{secret}", "gears/acme/x.json", "gears/acme/x.json"),
    "file-inside": ("gears/acme/x.json", "{repo}/gears/acme/real.json", "gears/acme/x.json", "gears/acme/x.json"),
    "org-directory": ("gears/acme", "{secret_dir}", "gears/acme/config.json", "gears/acme"),
    "top-directory": ("boutiques", "{secret_dir}/..", "boutiques/.docker/config.json", "boutiques"),
}


def make_link(repo: ExchangeRepo, layout: str, secret_file: Path) -> tuple[str, str]:
    link, target, spec, place = LINK_LAYOUTS[layout]
    (repo.root / "gears/acme").mkdir(parents=True, exist_ok=True)
    if layout == "file-inside":
        repo.write("gears/acme/real.json", example_gear(name="real"))
    (repo.root / link).parent.mkdir(parents=True, exist_ok=True)
    if (repo.root / link).is_dir():
        (repo.root / link).rmdir()
    os.symlink(target.format(secret=secret_file, repo=repo.root, secret_dir=secret_file.parent), repo.root / link)
    return spec, place


@pytest.mark.parametrize("layout", sorted(LINK_LAYOUTS))
@pytest.mark.parametrize("selection", ["--all", "path", "changed"])
def test_validate_refuses_a_linked_spec_without_reading_it(exchange_repo: ExchangeRepo, secret_file: Path,
                                                           layout: str, selection: str) -> None:
    exchange_repo.write("gears/ok/hello-world.json", example_gear())
    spec, place = make_link(exchange_repo, layout, secret_file)
    exchange_repo.commit("a link")
    args = {"--all": ["--all"], "path": [str(exchange_repo.root / spec)],
            "changed": ["--since", exchange_repo.git("rev-parse", "HEAD~1")]}[selection]
    result = invoke(exchange_repo, "validate", "--format", "text", *args)
    assert result.exit_code == 1, result.output
    assert_no_secret(result.output)
    (refused,) = problem_lines(result.output)  # nothing else: the file was never read, no other rule saw it
    assert refused["rule"] == "spec-location", result.output
    assert refused["path"].endswith(spec) or refused["path"].endswith(place), result.output
    assert refused["message"].startswith(f"{place} is a symbolic link"), result.output
    if selection == "--all":
        assert " 0 passed" not in result.output.splitlines()[-1]


def test_a_link_in_the_way_is_refused_by_the_low_level_reader(tmp_path: Path, secret_file: Path) -> None:
    root = tmp_path / "repo"
    (root / "gears").mkdir(parents=True)
    os.symlink(secret_file.parent, root / "gears" / "acme")
    with pytest.raises(NotConfined, match="gears/acme is a symbolic link"):
        read_below(root, "gears/acme/config.json")
    os.mkfifo(root / "gears" / "fifo.json")  # a FIFO would block a plain open() for ever
    with pytest.raises(NotConfined, match="is not a regular file"):
        read_below(root, "gears/fifo.json")


def test_a_spec_outside_the_repository_is_refused(exchange_repo: ExchangeRepo, secret_file: Path) -> None:
    result = invoke(exchange_repo, "validate", "--format", "text", str(secret_file))
    assert result.exit_code == 1
    (line,) = problem_lines(result.output)
    assert line["rule"] == "spec-location" and "is outside the repository" in line["message"]
    assert_no_secret(result.output)


@pytest.fixture
def hostile_spec_world(exchange_repo: ExchangeRepo, tmp_path: Path) -> dict[str, Path]:
    images = tmp_path / "images"
    exchange_repo.add_gear_with_image(images, "acme", "hello")
    exchange_repo.commit("a gear")
    exchange_repo.push_to_new_remote(tmp_path / "remote.git")
    (tmp_path / "bucket").mkdir()
    return {"images": images, "bucket": tmp_path / "bucket", "reports": tmp_path / "reports",
            "cache": tmp_path / "cache"}


def process_args(repo: ExchangeRepo, world: dict[str, Path], *extra: str) -> list[str]:
    return ["process", "--repo", str(repo.root), "--bucket", world["bucket"].as_uri(), "--oci-layout",
            str(world["images"]), "--cache-dir", str(world["cache"]), "--report", str(world["reports"]), "--quiet",
            *extra]


def test_process_refuses_a_committed_link_and_publishes_nothing(exchange_repo: ExchangeRepo, hostile_spec_world: dict[str, Path],
                                                                secret_file: Path) -> None:
    os.symlink(secret_file, exchange_repo.root / "gears/acme/x.json")
    exchange_repo.commit("a link to the CI machine's docker credentials")
    head = exchange_repo.git("rev-parse", "HEAD")
    result = CliRunner().invoke(cli, process_args(exchange_repo, hostile_spec_world))
    assert result.exit_code == 1, result.output
    assert "gears/acme/x.json: error[spec-location]: gears/acme/x.json is a symbolic link" in result.output
    assert_no_secret(result.output, every_file_text(hostile_spec_world["reports"], hostile_spec_world["bucket"], exchange_repo.root / "manifests"))
    assert list(hostile_spec_world["bucket"].iterdir()) == []
    assert exchange_repo.git("rev-parse", "HEAD") == head


def test_the_catalog_skips_a_linked_spec(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    # Outside the repository, a file that reads as a perfectly good spec: only the link makes it wrong.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "spec.json").write_text(json.dumps(example_gear(name="leak", description=SECRET)))
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    os.symlink(outside / "spec.json", exchange_repo.root / "gears" / "acme" / "leak.json")
    os.symlink(outside, exchange_repo.root / "gears" / "leak")
    os.symlink(outside / "missing", exchange_repo.root / "gears" / "acme" / "dangling.json")
    exchange_repo.commit("links")
    for args in (["index", "-o", "-"], ["list"], ["inventory", "--csv", "-"]):
        result = invoke(exchange_repo, *args)
        assert result.exit_code == 0, result.output
        assert_no_secret(result.output)
        assert "hello" in result.output and "leak" not in result.output and "dangling" not in result.output


@pytest.mark.parametrize("link", ["file", "manifests-directory"])
def test_a_linked_manifest_is_never_read(exchange_repo: ExchangeRepo, tmp_path: Path, link: str) -> None:
    """Manifests are committed files too: a contributor's pull request can add a link under manifests/.
    Outside the repository, a file that reads as a perfectly good manifest; the catalog (published on
    every run with --publish-index), list and verify-storage must name the link, not read it."""
    outside = tmp_path / "elsewhere" / "acme"
    outside.mkdir(parents=True)
    leak = {"gear": example_gear(name="leak", description=SECRET),
            "exchange": {"git-commit": "0" * 40, "rootfs-hash": "sha384:" + "0" * 96,
                         "rootfs-url": "https://downloads.example.org/acme-leak-sha384-" + "0" * 96 + ".tgz"}}
    (outside / "acme-leak.json").write_text(json.dumps(leak))
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    if link == "file":
        exchange_repo.write("manifests/acme/.keep.json", {})
        (exchange_repo.root / "manifests/acme/.keep.json").unlink()
        os.symlink(outside / "acme-leak.json", exchange_repo.root / "manifests/acme/acme-leak.json")
        place = "manifests/acme/acme-leak.json"
    else:
        shutil.rmtree(exchange_repo.root / "manifests", ignore_errors=True)
        os.symlink(outside.parent, exchange_repo.root / "manifests")
        place = "manifests"
    exchange_repo.commit("a link among the manifests")
    for args in (["index", "-o", "-"], ["index", "-o", "-", "--format", "legacy"], ["list"]):
        result = invoke(exchange_repo, *args)
        assert result.exit_code == 0, result.output
        assert_no_secret(result.output)
        assert "leak" not in result.output.replace(place, "")
        assert f"{place}: is a symbolic link" in result.output, result.output
    (tmp_path / "bucket").mkdir()
    audit = invoke(exchange_repo, "verify-storage", "--bucket", (tmp_path / "bucket").as_uri())
    assert audit.exit_code == 1 and f"{place}: is a symbolic link" in audit.output, audit.output
    assert_no_secret(audit.output)


@pytest.mark.parametrize("link", ["file", "directory"])
def test_add_gear_neither_reads_nor_writes_through_a_link(exchange_repo: ExchangeRepo, secret_file: Path,
                                                          tmp_path: Path, link: str) -> None:
    if link == "file":
        (exchange_repo.root / "gears/acme").mkdir(parents=True)
        os.symlink(secret_file, exchange_repo.root / "gears/acme/hello-world.json")
        place = "gears/acme/hello-world.json"
    else:
        (exchange_repo.root / "gears").mkdir()
        os.symlink(secret_file.parent, exchange_repo.root / "gears/acme")
        place = "gears/acme"
    exchange_repo.commit("a link")
    source = tmp_path / "manifest.json"
    source.write_text(json.dumps(example_gear()))
    before = sorted(p.name for p in secret_file.parent.iterdir()), secret_file.read_text()
    result = invoke(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].startswith(
        f"error: not writing gears/acme/hello-world.json: {place} is a symbolic link")
    assert_no_secret(result.output)
    assert (sorted(p.name for p in secret_file.parent.iterdir()), secret_file.read_text()) == before
    assert exchange_repo.git("status", "--porcelain") == ""


# JSON that Python's reader mishandles -------------------------------------------------------------

def _deep(levels: int) -> bytes:
    return b'{"name": ' + b"[" * levels + b"]" * levels + b"}"


HOSTILE_JSON = {
    # name: (file content, rule, line, column, message fragment)
    "deep-nesting": (_deep(100_000), "json-syntax", 1, 109, "nested more than 100 levels deep"),
    "nan": (b'{\n  "name": "x",\n  "version": NaN\n}', "json-syntax", 3, 14, "NaN is not a JSON value"),
    "infinity": (b'{"version": -Infinity}', "json-syntax", 1, 13, "-Infinity is not a JSON value"),
    "huge-integer": (b'{"version": ' + b"7" * 100_000 + b"}", "json-syntax", 1, 13,
                     "a number 100000 characters long; at most 4300 are read"),
    "float-overflow": (b'{"version": 1e400}', "json-syntax", 1, 13, "1e400 is too large for a 64-bit float"),
    "not-utf-8": (b'{\n  "name": "caf\xe9"\n}', "json-syntax", 2, 15, "not UTF-8 text: byte 0xe9"),
    "lone-surrogate": (b'{"name": "\\udc80"}', "json-syntax", 1, 10, "unpaired UTF-16 surrogate"),
    "duplicate-key": (b'{\n  "name": "safe",\n  "name": "other"\n}', "json-duplicate-key", 3, 3,
                      'duplicate key "name" (first at 2:3)'),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_JSON))
def test_validate_names_file_place_and_rule_and_goes_on(exchange_repo: ExchangeRepo, case: str) -> None:
    content, rule, line, column, fragment = HOSTILE_JSON[case]
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    (exchange_repo.root / "gears/acme/bad.json").write_bytes(content)
    result = invoke(exchange_repo, "validate", "--all", "--format", "text")
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    (problem,) = problem_lines(result.output)
    assert problem["path"].endswith("gears/acme/bad.json")
    assert (problem["rule"], int(problem["line"]), int(problem["col"])) == (rule, line, column), result.output
    assert fragment in problem["message"]
    assert result.output.splitlines()[-1] == "2 spec(s) checked: 1 passed, 1 failed, 0 already processed"


def test_json_report_carries_the_new_rule(exchange_repo: ExchangeRepo) -> None:
    (exchange_repo.root / "gears/acme").mkdir(parents=True)
    (exchange_repo.root / "gears/acme/bad.json").write_bytes(HOSTILE_JSON["duplicate-key"][0])
    result = invoke(exchange_repo, "validate", "--all", "--format", "json")
    (problem,) = json.loads(result.output)["results"][0]["problems"]
    assert (problem["rule"], problem["line"], problem["column"]) == ("json-duplicate-key", 3, 3)


@pytest.mark.parametrize("case", ["not-utf-8", "duplicate-key", "deep-nesting", "huge-integer"])
def test_process_fails_validation_cleanly_on_hostile_json(exchange_repo: ExchangeRepo, hostile_spec_world: dict[str, Path],
                                                         case: str) -> None:
    """`process` validates with the same reader it plans with: what validate refuses never reaches export."""
    content, rule, line, column, _ = HOSTILE_JSON[case]
    (exchange_repo.root / "gears/acme/bad.json").write_bytes(content)
    exchange_repo.commit("hostile spec")
    result = CliRunner().invoke(cli, process_args(exchange_repo, hostile_spec_world))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"gears/acme/bad.json:{line}:{column}: error[{rule}]" in result.output
    assert list(hostile_spec_world["bucket"].iterdir()) == []


CATALOG_CASES = {
    # A spec with a name and a version, so a lenient reader would list it, and one hostile part.
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "nan": b"NaN",
    "huge-integer": b"7" * 100_000,
    "lone-surrogate": b'"\\udc80"',
    "duplicate-key": b'1, "version": "2.0.0"',
}


@pytest.mark.parametrize("case", sorted(CATALOG_CASES))
def test_catalog_readers_skip_what_validate_refuses(exchange_repo: ExchangeRepo, case: str) -> None:
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    content = b'{"name": "bad", "version": "1.0.0", "x": ' + CATALOG_CASES[case] + b"}"
    (exchange_repo.root / "gears/acme/bad.json").write_bytes(content)
    exchange_repo.commit("hostile spec")
    result = invoke(exchange_repo, "index", "-o", "-")
    assert result.exit_code == 0, result.output
    assert [entry["name"] for entry in json.loads(result.output)["entries"]] == ["hello-world"]


@pytest.mark.parametrize("case", ["deep-nesting", "nan", "duplicate-key"])
def test_validate_invocation_reads_the_invocation_strictly(exchange_repo: ExchangeRepo, case: str) -> None:
    content, rule, line, column, fragment = HOSTILE_JSON[case]
    spec = exchange_repo.write("gears/acme/hello.json", example_gear())
    invocation = exchange_repo.root / "job.json"
    invocation.write_bytes(content)
    result = CliRunner().invoke(cli, ["validate-invocation", str(spec), str(invocation), "--format", "text"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    (problem,) = problem_lines(result.output)
    assert problem["path"].endswith("job.json") and (problem["rule"], int(problem["line"]), int(problem["col"])) == (
        rule, line, column)
    assert fragment in problem["message"]


@pytest.mark.parametrize("command", ["add-gear", "invocation-schema"])
def test_json_read_outside_validation_is_one_line(exchange_repo: ExchangeRepo, tmp_path: Path, command: str) -> None:
    source = tmp_path / "manifest.json"
    source.write_bytes(HOSTILE_JSON["deep-nesting"][0])
    args = [command, str(source), *(["--org", "acme", "--repo", str(exchange_repo.root)] if command == "add-gear" else [])]
    result = subprocess.run([sys.executable, "-m", "exchange_cli", *args], capture_output=True, text=True,
                            cwd=exchange_repo.root, check=False)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {source}:1:109: nested more than 100 levels deep [json-syntax]"
    assert result.returncode == 1


# Huge values and huge files ----------------------------------------------------------------------

BIG = 900_000  # characters: under the size limit, so the spec is read and its values are quoted

HUGE_VALUES = {
    # name: (change to a valid gear, rule, where, what the message must still say after the value)
    "array-label": (lambda g: g.update(label=list(range(10_000))), "gear-schema", "/label",
                    "(10,000 items) is not of type 'string'"),
    "long-name": (lambda g: g.update(name="a" * BIG), "gear-schema", "/name", f"({BIG:,} characters) is too long"),
    "long-url": (lambda g: g.update(url="x" * BIG), "schema-format", "/url", "is not a 'uri'"),
    "long-license": (lambda g: g.update(license="L" * BIG), "gear-schema", "/license",
                     f"({BIG:,} characters) is not one of the"),
    "long-image": (lambda g: g["custom"]["gear-builder"].update(image="registry.example.org/" + "A" * BIG),
                   "image-reference", "/custom/gear-builder/image", "is invalid: components are lower-case letters"),
    "long-key": (lambda g: g["config"].update({"k" * BIG: 1}), "gear-schema", "/config/kkkk",
                 "1 is not of type 'object'"),
    "long-new-name": (lambda g: g.update(name="a" * BIG), "file-name", "/name", ".json, not huge.json"),
}


def huge_spec(case: str) -> dict:
    gear = example_gear()
    gear["config"] = {}
    HUGE_VALUES[case][0](gear)
    return gear


@pytest.mark.parametrize("case", sorted(HUGE_VALUES))
def test_a_huge_value_is_quoted_short_and_the_rule_still_shows(exchange_repo: ExchangeRepo, tmp_path: Path,
                                                               case: str) -> None:
    _, rule, pointer, ending = HUGE_VALUES[case]
    exchange_repo.write("gears/acme/huge.json", huge_spec(case))
    junit = tmp_path / "junit.xml"
    text = invoke(exchange_repo, "validate", "--all", "--format", "text", "--junit-xml", str(junit))
    assert text.exit_code == 1, text.output[:2000]
    lines = [line for line in problem_lines(text.output) if line["rule"] == rule]
    assert lines, text.output[:2000]
    assert all(len(line.group(0)) < 800 for line in problem_lines(text.output)), [len(x) for x in text.output.splitlines()]
    assert any(ending in line["message"] and line.group(0).endswith(")") and pointer in line.group(0)
               for line in lines), text.output[:2000]
    assert len(junit.read_text()) < 8000
    report = invoke(exchange_repo, "validate", "--all", "--format", "json")
    assert len(report.output) < 8000
    problems = json.loads(report.output)["results"][0]["problems"]
    assert all(len(p["message"]) <= 500 and len(p["pointer"] or "") <= 80 for p in problems), problems
    assert any(p["rule"] == rule and ending in p["message"] for p in problems), problems
    rich = invoke(exchange_repo, "validate", "--all", "--format", "rich")
    assert rich.exit_code == 1 and len(rich.output) < 8000, rich.output[:2000]


def test_ten_thousand_problems_in_one_spec_print_a_bounded_report(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    from exchange_cli.validation.reporter import PROBLEMS_SHOWN

    gear = example_gear()
    gear["config"] = {f"option-{n}": n for n in range(10_000)}  # no option is an object: problems by the thousand
    exchange_repo.write("gears/acme/hello-world.json", gear)
    report = json.loads(invoke(exchange_repo, "validate", "--all", "--format", "json").output)
    total = len(report["results"][0]["problems"])  # JSON, read by programs, lists every one
    assert total >= 10_000
    junit = tmp_path / "junit.xml"
    text = invoke(exchange_repo, "validate", "--all", "--format", "text", "--junit-xml", str(junit))
    assert text.exit_code == 1
    lines = text.output.splitlines()
    assert len(problem_lines(text.output)) == PROBLEMS_SHOWN, text.output[:2000]
    path = problem_lines(text.output)[0]["path"]
    assert lines[PROBLEMS_SHOWN] == (f"{path}: {total - PROBLEMS_SHOWN:,} more problem(s) not shown "
                                     "(--format json lists every one)")
    assert len(lines) == PROBLEMS_SHOWN + 2  # and the summary
    assert junit.read_text().count("error[gear-schema]") == PROBLEMS_SHOWN
    rich = invoke(exchange_repo, "validate", "--all", "--format", "rich")
    assert rich.exit_code == 1 and "more problem(s) not shown" in rich.output and len(rich.output) < 50_000


def test_contributor_text_in_a_rich_table_is_never_markup(exchange_repo: ExchangeRepo) -> None:
    exchange_repo.write("gears/acme/markup.json", example_gear(name="hello[/b]", label=["[/x]"]))
    exchange_repo.write("gears/acme/hello-world.json", example_gear(maintainer="Evil [/i] <evil@example.org>"))
    exchange_repo.commit("square brackets")
    result = invoke(exchange_repo, "validate", "--all", "--format", "rich")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "hello[/b]" in result.output and "['[/x]'] is not of type 'string'" in result.output
    table = invoke(exchange_repo, "inventory")  # rich, like on a terminal
    assert table.exit_code == 0, table.exception
    assert "Evil [/i] <evil@example.org>" in table.output


def test_a_spec_over_the_size_limit_is_one_problem_never_read(exchange_repo: ExchangeRepo, hostile_spec_world: dict[str, Path]) -> None:
    exchange_repo.write("gears/acme/padded.json", example_gear(name="padded", description="x" * MAX_SPEC_BYTES))
    sparse = exchange_repo.root / "gears" / "acme" / "sparse.json"
    with sparse.open("wb") as handle:  # 8 GiB that cost nothing on disk; read whole, they cannot fit the cap
        handle.truncate(8 * 1024**3)
    result = run_with_memory_cap(["validate", "--all", "--format", "text"], cap=3 * 1024**3, cwd=exchange_repo.root)
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 1
    padded_size = (exchange_repo.root / "gears/acme/padded.json").stat().st_size
    assert [line.group(0) for line in problem_lines(result.stdout)] == [
        (f"gears/acme/padded.json: error[spec-size]: the file is {padded_size:,} bytes, over the limit of "
         f"{MAX_SPEC_BYTES:,} bytes; a spec is a few kilobytes of JSON"),
        (f"gears/acme/sparse.json: error[spec-size]: the file is 8,589,934,592 bytes, over the limit of "
         f"{MAX_SPEC_BYTES:,} bytes; a spec is a few kilobytes of JSON")]
    sparse.unlink()
    exchange_repo.commit("a spec past the limit")
    processed = CliRunner().invoke(cli, process_args(exchange_repo, hostile_spec_world))
    assert processed.exit_code == 1 and "gears/acme/padded.json: error[spec-size]" in processed.output
    assert list(hostile_spec_world["bucket"].iterdir()) == []
    listed = invoke(exchange_repo, "list")
    assert listed.exit_code == 0 and "padded" not in listed.output


def test_add_gear_never_reads_a_source_over_the_size_limit(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    sparse = tmp_path / "manifest.json"
    with sparse.open("wb") as handle:
        handle.truncate(8 * 1024**3)
    local = run_with_memory_cap(["add-gear", str(sparse), "--org", "acme", "--repo", str(exchange_repo.root)],
                                cap=3 * 1024**3)
    assert "Traceback" not in local.stderr and local.returncode == 1, local.stderr[-2000:]
    assert local.stderr.strip() == (f"error: {sparse}: the file is 8,589,934,592 bytes, over the limit of "
                                    f"{MAX_SPEC_BYTES:,} bytes; a spec is a few kilobytes of JSON [spec-size]")
    upstream = init_repo(tmp_path / "upstream")
    (upstream / "manifest.json").write_text(json.dumps(example_gear(description="x" * MAX_SPEC_BYTES)))
    subprocess.run(["git", "add", "-A"], cwd=upstream, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "big"], cwd=upstream, check=True)
    cloned = invoke(exchange_repo, "add-gear", upstream.as_uri(), "--org", "acme")
    assert cloned.exit_code == 1
    assert cloned.output.strip().endswith(f"bytes, over the limit of {MAX_SPEC_BYTES:,} bytes; a spec is a few "
                                          "kilobytes of JSON [spec-size]"), cloned.output
    assert exchange_repo.git("status", "--porcelain") == ""


def test_a_linked_policy_file_is_never_read(exchange_repo: ExchangeRepo, secret_file: Path) -> None:
    exchange_repo.write("gears/acme/hello-world.json", example_gear())
    os.symlink(secret_file, exchange_repo.root / ".exchange.yaml")  # JSON is YAML: its values would be quoted
    exchange_repo.commit("a linked policy")
    result = subprocess.run([sys.executable, "-m", "exchange_cli", "validate", "--all"], capture_output=True,
                            text=True, cwd=exchange_repo.root, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert_no_secret(result.stdout, result.stderr)
    assert result.stderr.strip() == ("error: .exchange.yaml is a symbolic link; the policy must be a regular file in "
                                     "the repository, and links are never followed")


# --- other files of the repository that commands read: the same rule -----------------------------------


def test_a_linked_sentinel_is_named_never_read(exchange_repo: ExchangeRepo, secret_file: Path) -> None:
    # The sentinel's content goes into an error ("unknown sentinel commit …") when it is not a commit.
    secret_file.write_text(SECRET + "\n")
    os.symlink(secret_file, exchange_repo.root / ".sentinel")
    result = invoke(exchange_repo, "validate")
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: .sentinel is a symbolic link; it must be a regular file holding a commit id")
    assert_no_secret(result.output)


def test_a_committed_key_that_is_a_link_is_refused(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    # A key read through a link could be any PEM file of the machine that runs `verify` or `process`.
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from exchange_cli.provenance.keys import KEY_SUFFIX, KEYS_DIR, PublicKey, UnusableKey, repository_keys

    key = PublicKey.from_pem(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), "generated")
    outside = tmp_path / "elsewhere.pub"
    outside.write_bytes(key.pem)
    keys = exchange_repo.root / KEYS_DIR
    keys.mkdir(parents=True)
    os.symlink(outside, keys / f"{key.key_id}{KEY_SUFFIX}")
    with pytest.raises(UnusableKey, match=rf"^{KEYS_DIR}/{key.key_id}\.pub is a symbolic link; keys must be "):
        repository_keys(exchange_repo.root)
    (keys / f"{key.key_id}{KEY_SUFFIX}").unlink()
    (keys / f"{key.key_id}{KEY_SUFFIX}").write_bytes(key.pem)
    assert [found.key_id for found in repository_keys(exchange_repo.root)] == [key.key_id]
