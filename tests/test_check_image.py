"""`exchange check-image`: gear and boutique images built by a real dockerd, each conformance rule failing and passing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from tests.infra.dockerd import BASE_IMAGE, Dockerd
from tests.infra.gitrepo import example_boutique, example_gear

RUN = b"#!/bin/bash\necho running\n"
WITH_BASH = f"FROM {BASE_IMAGE}\nRUN ln -s busybox /bin/bash\n"
GEAR_FILES = "COPY manifest.json run /flywheel/v0/\n"


def gear(name: str, **changes) -> dict:
    changes = {"command": None, **changes}  # the example sets one; these gears run /flywheel/v0/run
    return example_gear(name=name, custom={"gear-builder": {"image": f"check-{name}:1"}}, **changes)


def embedded(name: str, version: str = "1.0.0") -> bytes:
    return json.dumps(gear(name, version=version)).encode()


# name -> (Dockerfile, files); each image's gear spec is gear(name), which embeds version 1.0.0.
GEAR_IMAGES = {
    "good": (WITH_BASH + GEAR_FILES + "RUN chmod 755 /flywheel/v0/run\n", {"manifest.json": embedded("good"), "run": RUN}),
    "no-flywheel": (WITH_BASH, {}),
    "run-not-executable": (WITH_BASH + GEAR_FILES, {"manifest.json": embedded("run-not-executable"), "run": RUN}),
    "no-bash": (f"FROM {BASE_IMAGE}\n" + GEAR_FILES + "RUN chmod 755 /flywheel/v0/run\n",
                {"manifest.json": embedded("no-bash"), "run": RUN}),
    "bash-dangling": (f"FROM {BASE_IMAGE}\nRUN ln -s /opt/bash /bin/bash\n" + GEAR_FILES + "RUN chmod 755 /flywheel/v0/run\n",
                      {"manifest.json": embedded("bash-dangling"), "run": RUN}),
    "wrong-manifest": (WITH_BASH + GEAR_FILES + "RUN chmod 755 /flywheel/v0/run\n",
                       {"manifest.json": embedded("someone-else", "0.1.0"), "run": RUN}),
    "run-dangling": (WITH_BASH + "RUN mkdir -p /flywheel/v0 && ln -s /opt/gone/run /flywheel/v0/run\n", {}),
    "run-escapes": (WITH_BASH + "COPY run /opt/run\nRUN chmod 755 /opt/run && mkdir -p /flywheel/v0 "
                    "&& ln -s ../../../../../opt/run /flywheel/v0/run\n", {"run": RUN}),
    "run-via-links": (WITH_BASH + "COPY run /opt/tool/run\nRUN chmod 755 /opt/tool/run && mkdir -p /flywheel "
                      "&& ln -s /opt/tool /opt/current && ln -s ../opt/current /flywheel/v0\n", {"run": RUN}),
}
BOUTIQUE_DOCKERFILE = (f"FROM {BASE_IMAGE}\nCOPY tool /opt/tool/bin/tool\nRUN chmod 755 /opt/tool/bin/tool "
                       "&& ln -s /opt/tool/bin/missing /opt/local-tool\nENV PATH=/opt/tool/bin:/bin\n")
BOUTIQUE_IMAGE = ("check-boutique:1", BOUTIQUE_DOCKERFILE, {"tool": RUN})


@pytest.fixture(scope="module")
def check_images_built(dockerd: Dockerd) -> Dockerd:
    for name, (dockerfile, files) in GEAR_IMAGES.items():
        dockerd.build(dockerfile, f"check-{name}:1", files)
    dockerd.build(BOUTIQUE_IMAGE[1], BOUTIQUE_IMAGE[0], BOUTIQUE_IMAGE[2])
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
                               "container-image": {"type": "docker", "image": BOUTIQUE_IMAGE[0]}})


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
