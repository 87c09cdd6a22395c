"""`exchange check-image`: gear and boutique images in a real dockerd, each conformance rule failing and passing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.infra.dockerd import Dockerd
from tests.infra.gitrepo import example_boutique, example_gear
from tests.layers import Entry, directory, file, symlink

RUN = b"#!/bin/bash\necho running\n"
BASH = symlink("bin/bash", "busybox")


def gear(name: str, **changes) -> dict:
    changes = {"command": None, **changes}  # the example sets one; these gears run /flywheel/v0/run
    return example_gear(name=name, custom={"gear-builder": {"image": f"check-{name}:1"}}, **changes)


def embedded(name: str, version: str = "1.0.0") -> bytes:
    return json.dumps(gear(name, version=version)).encode()


def flywheel_v0(manifest: bytes, run_mode: int = 0o755) -> list[Entry]:
    """/flywheel/v0/ with manifest.json and the run script."""
    return [directory("flywheel"), directory("flywheel/v0"), file("flywheel/v0/manifest.json", manifest),
            file("flywheel/v0/run", RUN, mode=run_mode)]


# name -> the files over busybox-local's; each image's gear spec is gear(name), which embeds version 1.0.0.
# Imported, not built: the rules read the flattened tree, and an import takes a fraction of a build's time.
GEAR_IMAGES: dict[str, list[Entry]] = {
    "good": [BASH, *flywheel_v0(embedded("good"))],
    "no-flywheel": [BASH],
    "run-not-executable": [BASH, *flywheel_v0(embedded("run-not-executable"), run_mode=0o644)],
    "no-bash": flywheel_v0(embedded("no-bash")),
    "bash-dangling": [symlink("bin/bash", "/opt/bash"), *flywheel_v0(embedded("bash-dangling"))],
    "wrong-manifest": [BASH, *flywheel_v0(embedded("someone-else", "0.1.0"))],
    "run-dangling": [BASH, directory("flywheel"), directory("flywheel/v0"), symlink("flywheel/v0/run", "/opt/gone/run")],
    "run-escapes": [BASH, directory("opt"), file("opt/run", RUN, mode=0o755), directory("flywheel"),
                    directory("flywheel/v0"), symlink("flywheel/v0/run", "../../../../../opt/run")],
    "run-via-links": [BASH, directory("opt"), directory("opt/tool"), file("opt/tool/run", RUN, mode=0o755),
                      symlink("opt/current", "/opt/tool"), directory("flywheel"), symlink("flywheel/v0", "../opt/current")],
}
BOUTIQUE_TAG = "check-boutique:1"
BOUTIQUE_FILES = [directory("opt"), directory("opt/tool"), directory("opt/tool/bin"),
                  file("opt/tool/bin/tool", RUN, mode=0o755), symlink("opt/local-tool", "/opt/tool/bin/missing")]
BOUTIQUE_CONFIG = ["ENV PATH=/opt/tool/bin:/bin"]


@pytest.fixture(scope="module")
def check_images_built(dockerd: Dockerd) -> Dockerd:
    for name, entries in GEAR_IMAGES.items():
        dockerd.import_tree(f"check-{name}:1", entries)
    dockerd.import_tree(BOUTIQUE_TAG, BOUTIQUE_FILES, changes=BOUTIQUE_CONFIG)
    return dockerd


def check(tmp_path: Path, host: str, spec: dict, *extra: str, place: str = "gears/acme/spec.json"):
    path = tmp_path / place
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec))
    result = CliRunner().invoke(cli, ["check-image", str(path), "--source", "docker", "--cache-dir",
                                      str(tmp_path / "cache"), "--quiet", "--format", "json", *extra],
                                env={"DOCKER_HOST": host})
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    return result.exit_code, [(p["rule"], p["severity"], p["message"]) for p in report["results"][0]["problems"]]


def errors(problems: list) -> list[str]:
    return [rule for rule, severity, _ in problems if severity == "error"]


def test_a_conforming_gear_passes(check_images_built: Dockerd, tmp_path: Path) -> None:
    code, problems = check(tmp_path, check_images_built.host, gear("good"))
    assert (code, problems) == (0, [])


@pytest.mark.parametrize(("name", "rules", "text"), [
    ("no-flywheel", ["rootfs-flywheel-dir", "rootfs-run-script"], "/flywheel/v0 does not exist"),
    ("run-not-executable", ["rootfs-run-script"], "not executable (mode 0644)"),
    ("no-bash", ["rootfs-bash"], "no executable bash in /bin, /usr/bin"),
    ("bash-dangling", ["rootfs-bash"], "/bin/bash is a dangling symlink (/bin/bash -> /opt/bash): /opt does not exist"),
    ("wrong-manifest", ["rootfs-manifest-mismatch"],
     "name: 'someone-else' in the image, 'wrong-manifest' in the spec; version: '0.1.0' in the image, '1.0.0' in the spec"),
    ("run-dangling", ["rootfs-symlink"], "/flywheel/v0/run is a dangling symlink (/flywheel/v0/run -> /opt/gone/run): /opt does not exist"),
    ("run-escapes", ["rootfs-symlink"], "climbs out of the root filesystem"),
])
def test_each_gear_rule_fires(check_images_built: Dockerd, tmp_path: Path, name: str, rules: list[str], text: str) -> None:
    code, problems = check(tmp_path, check_images_built.host, gear(name))
    assert code == 1
    assert errors(problems) == rules
    assert any(text in message for _, _, message in problems), problems


def test_symlinks_that_resolve_inside_the_rootfs_pass(check_images_built: Dockerd, tmp_path: Path) -> None:
    """/flywheel/v0 -> ../opt/current -> /opt/tool: relative and absolute links, the run script found through both."""
    code, problems = check(tmp_path, check_images_built.host, gear("run-via-links"), "--skip-check", "rootfs-manifest-mismatch")
    assert (code, problems) == (0, [])


def test_a_gear_with_a_command_needs_no_run_script_but_its_executable(check_images_built: Dockerd, tmp_path: Path) -> None:
    code, problems = check(tmp_path, check_images_built.host, gear("no-flywheel", command="/bin/sh -c 'echo hi'"),
                           "--skip-check", "rootfs-flywheel-dir")
    assert code == 0 and errors(problems) == []
    code, problems = check(tmp_path, check_images_built.host, gear("no-flywheel", command="python3 run.py"),
                           "--skip-check", "rootfs-flywheel-dir")
    assert errors(problems) == ["rootfs-command"] and "not an executable file in any directory of PATH" in problems[-1][2]


def test_skipped_checks_are_reported_as_info_and_pass(check_images_built: Dockerd, tmp_path: Path) -> None:
    code, problems = check(tmp_path, check_images_built.host, gear("no-bash"), "--skip-check", "rootfs-bash")
    assert code == 0
    assert [(rule, severity) for rule, severity, _ in problems] == [("rootfs-bash", "info")]


def test_unknown_skip_is_a_usage_error(tmp_path: Path) -> None:
    spec = tmp_path / "gear.json"
    spec.write_text(json.dumps(gear("good")))
    result = CliRunner().invoke(cli, ["check-image", str(spec), "--skip-check", "gear-schema"])
    assert result.exit_code == 2 and "choose from rootfs-flywheel-dir" in result.output


def boutique(command_line: str) -> dict:
    return example_boutique(**{"command-line": command_line,
                               "container-image": {"type": "docker", "image": BOUTIQUE_TAG}})


@pytest.mark.parametrize(("command_line", "rules"), [
    ("tool [LINES_FLAG] [INPUT_FILE] > [OUTPUT_FILE]", []),  # on the image's PATH
    ("/opt/tool/bin/tool [INPUT_FILE] > [OUTPUT_FILE]", []),  # absolute
    ("FOO=1 exec wc [INPUT_FILE] > [OUTPUT_FILE]", []),  # /bin/wc, a busybox link
    ("python3 [INPUT_FILE] > [OUTPUT_FILE]", ["rootfs-command"]),  # on no directory of PATH
    ("/opt/other/bin/tool [INPUT_FILE] > [OUTPUT_FILE]", ["rootfs-command"]),
    ("/opt/local-tool [INPUT_FILE] > [OUTPUT_FILE]", ["rootfs-symlink"]),
])
def test_boutique_command_line_executable(check_images_built: Dockerd, tmp_path: Path, command_line: str, rules: list) -> None:
    code, problems = check(tmp_path, check_images_built.host, boutique(command_line), place="boutiques/acme/wc.json")
    assert errors(problems) == rules
    assert code == (1 if rules else 0)


def test_text_and_junit_reports(check_images_built: Dockerd, tmp_path: Path) -> None:
    good, bad = tmp_path / "gears/acme/good.json", tmp_path / "gears/acme/no-bash.json"
    good.parent.mkdir(parents=True)
    good.write_text(json.dumps(gear("good")))
    bad.write_text(json.dumps(gear("no-bash")))
    junit = tmp_path / "reports" / "check.xml"
    result = CliRunner().invoke(cli, ["check-image", str(good), str(bad), "--source", "docker", "--quiet",
                                      "--cache-dir", str(tmp_path / "cache"), "--junit-xml", str(junit)],
                                env={"DOCKER_HOST": check_images_built.host})
    assert result.exit_code == 1
    assert f"{bad}: error[rootfs-bash]: no executable bash" in result.stdout
    assert "2 image(s) checked: 1 passed, 1 failed" in result.stdout
    cases = ET.parse(junit).getroot().findall("testsuite/testcase")
    assert [(case.get("name"), case.find("failure") is not None) for case in cases] == [(str(good), False), (str(bad), True)]
    assert cases[1].find("failure").get("type") == "rootfs-bash"
