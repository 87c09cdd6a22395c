"""The report every `exchange process` run writes, and `exchange history`, on process_world (tests/infra)."""

from __future__ import annotations

import json
import re
from hashlib import sha256
from pathlib import Path

from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from tests.infra.gitrepo import example_gear
from tests.infra.process_world import World, reject_pushes


def run_with_report(world: World, report_dir: Path, *extra: str) -> Result:
    return CliRunner().invoke(cli, world.args("--report", str(report_dir), *extra))


def read_report(report_dir: Path, label: str = "process") -> tuple[dict, str]:
    return json.loads((report_dir / f"{label}.json").read_text()), (report_dir / f"{label}.md").read_text()


def test_a_published_run_reports_every_spec(process_world: World, tmp_path: Path) -> None:
    result = run_with_report(process_world, tmp_path / "report")
    assert result.exit_code == 0, result.output
    report, markdown = read_report(tmp_path / "report")
    assert report["result"] == "succeeded" and report["error"] is None and report["pushed"]
    assert report["source-commit"] == process_world.repo.git("rev-parse", "HEAD~2")
    assert [spec["spec"] for spec in report["specs"]] == ["gears/acme/hello.json", "gears/acme/other.json"]
    for spec in report["specs"]:
        assert spec["outcome"] == "published"
        assert spec["image-config-digest"].startswith("sha256:")
        assert spec["rootfs-size"] == (process_world.bucket / spec["artifact"]).stat().st_size
        assert spec["export-seconds"] >= 0 and spec["upload-seconds"] >= 0
        assert process_world.repo.git("log", "-1", "--format=%s", spec["commit"]) == f"Process {spec['title']}"
        assert f"| {spec['title']} | published |" in markdown
        # The SBOM beside it, as the bucket holds it: its URL, hash and package count, in both forms.
        sbom = process_world.bucket / (spec["artifact"] + ".sbom.json")
        assert spec["sbom-url"].endswith("/" + sbom.name) and spec["sbom-sha256"] == sha256(sbom.read_bytes()).hexdigest()
        components = json.loads(sbom.read_bytes())["components"]
        assert spec["sbom-packages"] == len([c for c in components if c["type"] != "operating-system"])
        assert f"| {spec['sbom-packages']} packages" in markdown
        assert spec["squashfs-url"] is None and spec["squashfs-size"] is None, "none was asked for"
    assert report["rollback"] is None and "Rolled back" not in markdown


def test_a_failed_push_reports_what_was_rolled_back(process_world: World, tmp_path: Path) -> None:
    start = process_world.repo.git("rev-parse", "HEAD")
    reject_pushes(process_world.remote)
    result = run_with_report(process_world, tmp_path / "report")
    assert result.exit_code == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: push to origin master failed: ") and "rejected by policy" in line, result.stderr
    report, markdown = read_report(tmp_path / "report")
    assert report["result"] == "failed" and "rejected by policy" in report["error"]
    assert report["rollback"]["branch-reset-to"] == start
    # Each rootfs and the SBOM beside it.
    assert sorted(report["rollback"]["deleted"]) == sorted(name for spec in report["specs"]
                                                           for name in (spec["artifact"], spec["artifact"] + ".sbom.json"))
    assert [spec["outcome"] for spec in report["specs"]] == ["rolled back", "rolled back"]
    assert "## Rolled back" in markdown and f"branch reset to `{start}`" in markdown
    assert process_world.bucket_objects() == {}


def test_a_validation_failure_is_reported_too(process_world: World, tmp_path: Path) -> None:
    process_world.repo.write("gears/acme/broken.json", example_gear(name="broken", author=None))
    process_world.repo.commit("broken gear")
    result = run_with_report(process_world, tmp_path / "report")
    assert result.exit_code == 1
    assert "error: 1 spec(s) failed validation; nothing was processed" in result.output
    assert "broken.json:1:1: error[gear-schema]: 'author' is a required property" in result.output
    report, markdown = read_report(tmp_path / "report")
    assert report["result"] == "failed" and report["invalid-specs"] == ["gears/acme/broken.json"]
    assert report["specs"] == [] and "`gears/acme/broken.json`" in markdown


def test_nothing_to_do_is_a_report_as_well(process_world: World, tmp_path: Path) -> None:
    assert run_with_report(process_world, tmp_path / "first").exit_code == 0
    assert run_with_report(process_world, tmp_path / "second").exit_code == 0
    report, markdown = read_report(tmp_path / "second")
    assert report["result"] == "succeeded" and report["specs"] == [] and "Nothing to process." in markdown


def test_history_lists_processed_specs_newest_first(process_world: World) -> None:
    assert CliRunner().invoke(cli, process_world.args()).exit_code == 0
    process_world.add_gear("acme", "hello", "1.1.0")
    process_world.repo.commit("hello 1.1.0")
    assert CliRunner().invoke(cli, process_world.args()).exit_code == 0
    result = CliRunner().invoke(cli, ["history", "--repo", str(process_world.repo.root), "--format", "json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [(entry["spec"], entry["version"]) for entry in entries] == [
        ("gear acme/hello", "1.1.0"), ("gear acme/other", "2.0.0"), ("gear acme/hello", "1.0.0")]
    for entry in entries:
        assert process_world.repo.git("log", "-1", "--format=%s", entry["commit"]).startswith("Process gear")
        assert process_world.repo.git("log", "-1", "--format=%cI", entry["commit"]) == entry["date"]
        assert (process_world.repo.root / entry["manifest"]).is_file()
    text = CliRunner().invoke(cli, ["history", "--repo", str(process_world.repo.root), "--limit", "1"]).stdout
    newest = entries[0]
    assert text.splitlines() == [f"{newest['date']}  {newest['commit'][:12]}  gear acme/hello 1.1.0  {newest['manifest']}"]


def test_reports_go_to_a_private_place_by_default_never_a_shared_temp_dir(process_world: World, tmp_path: Path,
                                                                          monkeypatch) -> None:
    monkeypatch.delenv("EXCHANGE_REPORT_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    result = CliRunner().invoke(cli, process_world.args())
    assert result.exit_code == 0, result.output
    in_git_dir = process_world.repo.root / ".git" / "exchange" / "reports"
    assert read_report(in_git_dir)[0]["result"] == "succeeded"
    assert process_world.repo.git("status", "--porcelain") == "", "git never sees the reports"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    process_world.add_gear("acme", "third")
    process_world.repo.commit("third")
    process_world.repo.git("push", "-q", "origin", "master")
    assert CliRunner().invoke(cli, process_world.args()).exit_code == 0
    assert read_report(tmp_path / "state" / "exchange" / "reports")[0]["result"] == "succeeded"


def test_a_dry_run_writes_no_report(process_world: World, tmp_path: Path) -> None:
    result = run_with_report(process_world, tmp_path / "report", "--dry-run")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "report").exists()


def test_text_from_the_image_cannot_change_the_reports_markdown() -> None:
    """The OS comes from the image's os-release: a `|` would add a table cell, `[..](..)` a link, `<..>` HTML."""
    from exchange_cli.process.run_report import report_as_markdown

    hostile = "12 | evil [click](https://evil.example) <img src=x> `code` \x1b[31m"
    spec = {"title": "boutique acme/Tool | [x](https://evil.example) 1.0", "outcome": "published", "image": "example.org/hello:1", "artifact": "a.tgz",
            "rootfs-size": 1, "sbom-url": "https://bucket.example/a.tgz.sbom.json", "sbom-packages": 3,
            "sbom-os": hostile, "squashfs-size": None, "export-seconds": 1.0, "upload-seconds": 1.0}
    document = {"run": "process", "result": "succeeded", "source-commit": "abc", "started": "2026-12-06T00:00:00+00:00",
                "seconds": 1.0, "stages": [], "pushed": True, "replays": 0, "shard": None, "catalog": None,
                "error": None, "invalid-specs": [], "specs": [spec], "already-processed": [], "rollback": None}
    markdown = report_as_markdown(document)
    header, _, row = [line for line in markdown.splitlines() if line.startswith("|")][:3]
    cells = re.split(r"(?<!\\)\|", row)
    assert len(cells) == header.count("|") + 1, row
    assert cells[1] == " boutique acme/Tool \\| \\[x\\](https://evil.example) 1.0 ", "a boutique's free-text name"
    sbom = cells[header.split("|").index(" SBOM ")]
    assert sbom.startswith(" 3 packages, 12 \\| evil \\[click\\]") and sbom.endswith(" "), sbom
    os_text = sbom[len(" 3 packages, "):-len(" ")]
    assert not re.search(r"(?<!\\)[][<>`|]", os_text) and "\x1b" not in os_text, "no link, HTML or code: " + sbom


def test_an_error_or_a_file_name_cannot_close_the_reports_code() -> None:
    """A spec's file name and an error quoting a spec are shown as code that they cannot end early."""
    from exchange_cli.process.run_report import report_as_markdown

    error = "bad image 'x```\n# Pwned\n[click](https://evil.example)'"
    document = {"run": "process", "result": "failed", "source-commit": None, "started": "2026-12-06T00:00:00+00:00",
                "seconds": 1.0, "stages": ["plan"], "pushed": False, "replays": 0, "shard": None, "catalog": None,
                "error": error, "invalid-specs": ["gears/acme/a`` `b.json", "gears/acme/c`"], "specs": [],
                "already-processed": [], "rollback": None}
    lines = report_as_markdown(document).splitlines()
    fence = lines[lines.index("## Error") + 2]
    assert len(fence) >= 4 and set(fence) == {"`"}, "longer than the three backticks inside"
    body = lines[lines.index(fence) + 1:]
    assert body[:body.index(fence)] == error.splitlines(), "the whole error inside, closed only by its own fence"
    assert "- ```gears/acme/a`` `b.json```" in lines, "a span of three: the name's runs are of one and two"
    assert "- `` gears/acme/c` ``" in lines, "padded: a name's backtick must not touch the span's own"
