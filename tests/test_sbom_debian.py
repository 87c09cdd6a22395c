"""The SBOM of a real Debian image against its own package managers, the independent judge.

The image is made from real packages only: a minbase Debian by `mmdebstrap` from the machine's configured
mirror (with a few .deb packages included), imported into the test dockerd, then two wheels downloaded
from PyPI installed by pip inside it. `dpkg-query -W` and `python3 -m pip list`, run in a container of
that image, must list exactly the SBOM's deb and pypi components.

No Alpine case: Debian's `apk-tools` is not in bookworm (the suite this machine's mirror serves), and no
test pulls from Alpine's own mirrors; the apk parser is tested on hand-made files in tests/test_sbom.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from exchange_cli.export import ExportOptions, export_rootfs
from exchange_cli.image.blobcache import BlobCache
from tests.infra import missing_component, require_executable

SUITE = "bookworm"
DEBS = ["python3-pip", "jq", "netbase"]
WHEELS = ["six==1.17.0", "iniconfig==2.0.0"]
IMAGE = "sbom-debian:1"


@pytest.fixture(scope="session")
def debian_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minbase Debian rootfs tar made by mmdebstrap, once per session."""
    mmdebstrap = require_executable("mmdebstrap")
    target = tmp_path_factory.mktemp("debian") / "rootfs.tar"
    made = subprocess.run([mmdebstrap, "--quiet", "--variant=minbase", f"--include={','.join(DEBS)}", SUITE,
                           str(target)], check=False, capture_output=True, text=True)
    if made.returncode != 0:
        missing_component(f"mmdebstrap could not make a {SUITE} rootfs from the configured mirror: "
                          f"{made.stderr.strip()[-300:]}")
    return target


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip"]
    got = subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "-d", str(directory), *WHEELS],
                         check=False, capture_output=True, text=True)
    if got.returncode != 0:
        missing_component(f"pip could not download {WHEELS} from PyPI: {got.stderr.strip()[-300:]}")
    return sorted(directory.glob("*.whl"))


@pytest.fixture(scope="session")
def debian_image(dockerd, debian_rootfs: Path, wheels: list[Path]) -> str:
    """The rootfs imported into the test dockerd, the wheels installed by pip inside it (no network)."""
    with open(debian_rootfs, "rb") as rootfs:
        dockerd.client.api.import_image_from_data(rootfs.read(), repository="sbom-debian-base", tag="1")
    files = {f"wheels/{wheel.name}": wheel.read_bytes() for wheel in wheels}
    dockerd.build("FROM sbom-debian-base:1\nCOPY wheels /wheels\n"
                  "RUN python3 -m pip install --no-index --break-system-packages /wheels/*.whl && rm -r /wheels\n",
                  IMAGE, files)
    return IMAGE


def run_in(dockerd, image: str, command: list[str]) -> str:
    output = dockerd.client.containers.run(image, command, network_mode="none", remove=True, stderr=False)
    return output.decode()


def test_sbom_lists_exactly_what_dpkg_and_pip_say(dockerd, docker_host, debian_image: str, tmp_path: Path):
    result = export_rootfs(debian_image, tmp_path / "rootfs.tgz", sbom=True,
                           options=ExportOptions(source="docker", cache=BlobCache(tmp_path / "cache")))
    assert result.sbom is not None
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(result.sbom.decode()) is None
    components = json.loads(result.sbom)["components"]
    packages = [c for c in components if "purl" in c]  # all but the operating system

    dpkg = run_in(dockerd, debian_image, ["dpkg-query", "-W", "-f", "${Package}\\t${Version}\\t${Architecture}\\n"])
    judged_debs = {tuple(line.split("\t")) for line in dpkg.splitlines()}
    our_debs = {(c["name"], c["version"], _qualifier(c["purl"], "arch")) for c in packages
                if c["purl"].startswith("pkg:deb/debian/")}
    assert our_debs == judged_debs
    assert {"jq", "python3-pip", "netbase"} <= {name for name, _, _ in our_debs}

    pip = run_in(dockerd, debian_image, ["python3", "-m", "pip", "list", "--format", "json"])
    judged_wheels = {(item["name"], item["version"]) for item in json.loads(pip)}
    our_wheels = {(c["name"], c["version"]) for c in packages if c["purl"].startswith("pkg:pypi/")}
    assert our_wheels == judged_wheels
    assert {("six", "1.17.0"), ("iniconfig", "2.0.0")} <= our_wheels

    operating_system = next(c for c in components if c["type"] == "operating-system")
    assert (operating_system["name"], operating_system["version"]) == ("debian", "12")
    assert all(c["purl"].endswith("distro=debian-12") or "distro=debian-12&" in c["purl"]
               for c in packages if c["purl"].startswith("pkg:deb/"))


def _qualifier(purl: str, key: str) -> str:
    from packageurl import PackageURL

    return str(PackageURL.from_string(purl).qualifiers.get(key, ""))  # type: ignore[union-attr]
