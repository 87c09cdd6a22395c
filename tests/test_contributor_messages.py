"""What a contributor reads when a spec is wrong: the place in their own file, and what to write instead."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.infra.gitrepo import ExchangeRepo, example_gear, init_repo, run_git

LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<col>\d+): error\[(?P<rule>[a-z-]+)\]: (?P<message>.*)$")


def compact_gear(**changes) -> str:
    """A gear as a contributor might write it: two-space indent, short objects on one line, a blank line.
    Its layout differs from the four-space copy add-gear writes, so positions tell the two apart."""
    gear = example_gear(**changes)
    lines = ["{", ""]
    for key, value in gear.items():
        lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines[-1] = lines[-1].rstrip(",")
    return "\n".join(lines + ["}"]) + "\n"


def position_of(text: str, needle: str) -> tuple[int, int]:
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def add_gear(repo: ExchangeRepo, source: str):
    return CliRunner().invoke(cli, ["add-gear", source, "--org", "acme", "--repo", str(repo.root)])


def problem_lines(output: str) -> list[re.Match]:
    return [match for line in output.splitlines() if (match := LINE.match(line))]


def test_add_gear_places_problems_in_the_contributors_own_file(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    text = compact_gear(license="apache 2", version=7)
    source = tmp_path / "manifest.json"
    source.write_text(text)
    result = add_gear(exchange_repo, str(source))
    assert result.exit_code == 1, result.output
    found = {m["rule"] + m["message"][:20]: m for m in problem_lines(result.output)}
    license_hit = next(m for m in found.values() if "apache 2" in m["message"])
    assert license_hit["path"] == str(source)
    assert (int(license_hit["line"]), int(license_hit["col"])) == position_of(text, '"apache 2"')
    version_hit = next(m for m in found.values() if m["message"].startswith("7 "))
    assert (int(version_hit["line"]), int(version_hit["col"])) == position_of(text, "7,")
    assert not (exchange_repo.root / "gears").exists()


def test_add_gear_from_a_git_repository_names_the_file_in_it(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    upstream = init_repo(tmp_path / "gear-repo")
    text = compact_gear(license="MIT License")
    (upstream / "manifest.json").write_text(text)
    run_git(upstream, "add", "-A")
    run_git(upstream, "commit", "-q", "-m", "gear")
    result = add_gear(exchange_repo, f"{upstream.as_uri()}@master")
    assert result.exit_code == 1, result.output
    (hit,) = problem_lines(result.output)
    assert hit["path"] == f"{upstream.as_uri()}@master:manifest.json"
    assert (int(hit["line"]), int(hit["col"])) == position_of(text, '"MIT License"')
    assert "did you mean MIT?" in hit["message"]


@pytest.mark.parametrize(("written", "suggested"), [
    ("apache 2", "did you mean Apache-2.0?"),
    ("Apache License 2.0", "did you mean Apache-2.0?"),
    ("GPLv3", "did you mean GPL-3.0, LGPL-3.0 or AGPL-3.0?"),
    ("bsd", "did you mean BSD-2-Clause or BSD-3-Clause?"),
    ("WTFPL", "('AFL-1.1', 'AFL-1.2'"),  # nothing close: examples, not a bad guess
])
def test_an_unknown_license_gets_the_closest_spdx_ids_and_other(exchange_repo: ExchangeRepo, written: str,
                                                                 suggested: str) -> None:
    exchange_repo.write("gears/acme/hello-world.json", example_gear(license=written))
    result = CliRunner().invoke(cli, ["validate", "--repo", str(exchange_repo.root), "--all", "--format", "text"])
    (hit,) = problem_lines(result.output)
    assert hit["rule"] == "gear-schema"
    assert suggested in hit["message"], hit["message"]
    assert "'Other' stands for any value not in the list" in hit["message"]


@pytest.mark.parametrize(("text", "needle", "says"), [
    ('{\n  "name": "x",\n  "version": "1",\n}\n', ',\n}', "trailing comma before }"),
    ('{"name": "x", "labels": ["a", "b",]}\n', ',]', "trailing comma before ]"),
    ('{\n  "name": "x"\n  "version": "1"\n}\n', '"version"', 'missing comma before "version"'),
    ("{'name': 'x'}\n", "'name'", "a single quote: JSON strings and property names take double quotes"),
    ('{name: "x"}\n', 'name', 'property name name needs double quotes: "name"'),
    ('{\n  // the gear\n  "name": "x"}\n', '//', "a comment: JSON has no comments"),
    ('{"name": "x", "ok": True}\n', 'True', "True is not a JSON value"),
    ('{"name": "x", "inputs": {"a": [1, 2\n', '\n', "the text ends too early: 3 brackets are not closed (missing ]}})"),
    ('{"name": "x"} trailing\n', 'trailing', "more text after the end of the JSON value: trailing"),
])
def test_json_syntax_errors_say_what_was_found(exchange_repo: ExchangeRepo, tmp_path: Path, text: str, needle: str,
                                               says: str) -> None:
    exchange_repo.write("gears/acme/x.json", text)
    result = CliRunner().invoke(cli, ["validate", "--repo", str(exchange_repo.root), "--all", "--format", "text"])
    (hit,) = problem_lines(result.output)
    assert hit["rule"] == "json-syntax"
    assert hit["message"] == f"not valid JSON: {says}" or hit["message"].startswith(f"not valid JSON: {says}"), \
        hit["message"]
    if needle != "\n":
        assert (int(hit["line"]), int(hit["col"])) == position_of(text, needle)
    source = tmp_path / "manifest.json"
    source.write_text(text)
    added = add_gear(exchange_repo, str(source))
    assert added.exit_code != 0
    assert says in added.output, "add-gear says the same"
