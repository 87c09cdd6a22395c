"""The SBOM of a real Debian image against its own package managers, the independent judge.

The image is made from real packages only: Debian's essential packages and a few .deb packages (with
what they depend on) by `mmdebstrap` from the machine's configured mirror, among them a Python
distribution packaged by Debian (python3-six), and pip's own wheel from PyPI installing itself and one
more wheel, then imported into the test dockerd. `dpkg-query -W` and
`python3 -m pip list`, run in a container of that image, must list exactly the SBOM's deb and pypi
components, and each package's copyright file, read there by sed and grep (tests/infra/debian_licences.py),
must declare exactly its component's licences.

What keeps it cheap (the test dockerd's vfs driver copies the whole rootfs for every container and
commit, so the image's size and the number of containers are most of the cost):
- the wheels go in while mmdebstrap has the rootfs (a customize hook), not in a `docker build`: no build
  container and no commit;
- pip from its PyPI wheel (run from the wheel, it installs itself), not Debian's python3-pip, which
  brings setuptools, wheel and ca-certificates (whose configuration alone ran some 1,500 processes): a
  quarter of mmdebstrap's CPU, and 19 of the image's 127 MB;
- `/usr` merged as debootstrap merges it for bookworm (mmdebstrap's merged-usr hook), not by the
  `usrmerge` package, which pulls in perl;
- the `essential` variant: the Essential: yes packages (dpkg among them), not minbase's apt and other
  Priority: required packages;
- documentation, man pages and translations left out as Docker's slim Debian images leave them out
  (dpkg path-exclude), the copyright files kept as they keep them: the SBOM reads those (licences), and
  none of the rest;
- mmdebstrap builds the chroot in a tmpfs;
- the three judges run in one container.

No Alpine case: Debian's `apk-tools` is not in bookworm (the suite this machine's mirror serves), and no
test pulls from Alpine's own mirrors; the apk parser is tested on hand-made files in tests/test_sbom.py.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from exchange_cli.export import ExportOptions, export_rootfs
from exchange_cli.image.blobcache import BlobCache
from tests.infra import missing_component, require_executable
from tests.infra.debian_licences import JUDGE as LICENCE_JUDGE
from tests.infra.debian_licences import declared, in_sbom
from tests.infra.tmpfs import small_tmpfs

SUITE = "bookworm"
DEBS = ["python3-six", "jq", "netbase"]  # python3-six: a Python distribution dpkg and pip both list
WHEELS = ["pip==24.0", "iniconfig==2.0.0"]
IMAGE = "sbom-debian:1"
MERGED_USR_HOOK = Path("/usr/share/mmdebstrap/hooks/merged-usr")  # shipped with Debian's mmdebstrap
# What Docker's slim Debian images leave out (their /etc/dpkg/dpkg.cfg.d/docker), as dpkg options.
SLIM = ["path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*", "path-exclude=/usr/share/locale/*"]
# pip run from its own wheel by the image's python3 (pip's documented bootstrap), offline, in the chroot of
# mmdebstrap's customize hook: it installs itself and the other wheels, copied into the image's /tmp first
# and removed after. Its failure is ours, not a missing component: it says so on stderr.
PIP_FAILED = "pip could not install the wheels in the image"

# Debian's PATH for root (/etc/login.defs): mmdebstrap's helpers are Debian's own (mmtarfilter, which runs once
# per essential package for the path-excludes, is `env python3`), not a user's shims in front of them (pyenv's
# bash shim cost more than the filter itself).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MMDEBSTRAP_TMPFS = "1g"  # a limit, not an allocation
DPKG_FORMAT = "${Package}\\t${Version}\\t${Architecture}\\n"
# The judges in one container (vfs copies the rootfs for each); a NUL, which none prints, between them. The
# third is tests/infra/debian_licences.py's, given every package dpkg knows.
JUDGES = r"""dpkg-query -W -f "$0" && printf "\0" && python3 -m pip list --format json && printf "\0" &&
sh -c "$1" sh $(dpkg-query -W -f '${Package} ')"""


def pip_install(pip_wheel: str) -> str:
    """The customize hook's command, `pip_wheel` the name of pip's own wheel among those in /tmp."""
    return (f"python3 /tmp/{pip_wheel}/pip install --isolated --quiet --no-index --no-cache-dir --no-compile "
            "--disable-pip-version-check --root-user-action=ignore --break-system-packages /tmp/*.whl "
            f"&& rm /tmp/*.whl || {{ echo '{PIP_FAILED}' >&2; exit 1; }}")


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
def debian_rootfs(tmp_path_factory: pytest.TempPathFactory, wheels: list[Path]) -> Path:
    """The rootfs tar made by mmdebstrap, the wheels installed in it by its pip, once per session."""
    mmdebstrap = require_executable("mmdebstrap")
    if not (MERGED_USR_HOOK / "setup00.sh").is_file():
        missing_component(f"mmdebstrap's merged-usr hook is not at {MERGED_USR_HOOK}")
    directory = tmp_path_factory.mktemp("debian")
    pip_wheel = next(wheel.name for wheel in wheels if wheel.name.startswith("pip-"))
    target = directory / "rootfs.tar"
    # The chroot is built in a tmpfs (about 270 MB at most): its files never need the disk, and ext4's
    # inode allocation and journal were half of mmdebstrap's system time. The tar is written outside it.
    with small_tmpfs(directory / "build", MMDEBSTRAP_TMPFS) as build:
        made = subprocess.run([mmdebstrap, "--quiet", "--variant=essential", f"--hook-dir={MERGED_USR_HOOK}",
                               *(f"--dpkgopt={option}" for option in SLIM), f"--include={','.join(DEBS)}",
                               f"--customize-hook=copy-in {' '.join(str(wheel) for wheel in wheels)} /tmp",
                               f'--customize-hook=chroot "$1" sh -c {shlex.quote(pip_install(pip_wheel))}',
                               SUITE, str(target)], env={**os.environ, "PATH": SYSTEM_PATH, "TMPDIR": str(build)},
                              check=False, capture_output=True, text=True)
    if made.returncode != 0 and PIP_FAILED in made.stderr:
        pytest.fail(f"{PIP_FAILED}: {made.stderr.strip()[-2000:]}", pytrace=False)
    if made.returncode != 0:
        missing_component(f"mmdebstrap could not make a {SUITE} rootfs from the configured mirror: "
                          f"{made.stderr.strip()[-300:]}")
    return target


@pytest.fixture(scope="session")
def debian_image(dockerd, debian_rootfs: Path) -> str:
    """The rootfs imported into the test dockerd, streamed from the file."""
    repository, _, tag = IMAGE.rpartition(":")
    with open(debian_rootfs, "rb") as rootfs:
        dockerd.client.api.import_image_from_data(rootfs, repository=repository, tag=tag)
    return IMAGE


def judge(dockerd, image: str) -> tuple[str, str, str]:
    """What `dpkg-query -W`, `python3 -m pip list --format json` and the licence judge print in a container
    of `image`."""
    output = dockerd.client.containers.run(image, ["sh", "-c", JUDGES, DPKG_FORMAT, LICENCE_JUDGE],
                                           network_mode="none", remove=True, stderr=False).decode()
    parts = output.split("\0")
    assert len(parts) == 3, f"the judges' output has not three parts: {output[-300:]!r}"
    return parts[0], parts[1], parts[2]


def test_sbom_lists_exactly_what_dpkg_and_pip_say(dockerd, docker_host, debian_image: str, tmp_path: Path):
    result = export_rootfs(debian_image, tmp_path / "rootfs.tgz", sbom=True,
                           options=ExportOptions(source="docker", cache=BlobCache(tmp_path / "cache")))
    assert result.sbom is not None
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(result.sbom.decode()) is None
    components = json.loads(result.sbom)["components"]
    packages = [c for c in components if "purl" in c]  # all but the operating system
    dpkg, pip, licences = judge(dockerd, debian_image)

    judged_debs = {tuple(line.split("\t")) for line in dpkg.splitlines()}
    our_debs = {(c["name"], c["version"], _qualifier(c["purl"], "arch")) for c in packages
                if c["purl"].startswith("pkg:deb/debian/")}
    assert our_debs == judged_debs
    assert set(DEBS) <= {name for name, _, _ in our_debs}

    judged_wheels = {(item["name"], item["version"]) for item in json.loads(pip)}
    our_wheels = {(c["name"], c["version"]) for c in packages if c["purl"].startswith("pkg:pypi/")}
    assert our_wheels == judged_wheels
    assert {tuple(wheel.split("==")) for wheel in WHEELS} <= our_wheels
    assert "six" in {name for name, _ in our_wheels}  # Debian's, in /usr/lib/python3/dist-packages

    judged_licences = declared(licences)
    assert in_sbom(components) == judged_licences
    assert {"jq", "dpkg", "libc6"} <= {package for package, _ in judged_licences}

    operating_system = next(c for c in components if c["type"] == "operating-system")
    assert (operating_system["name"], operating_system["version"]) == ("debian", "12")
    assert all(c["purl"].endswith("distro=debian-12") or "distro=debian-12&" in c["purl"]
               for c in packages if c["purl"].startswith("pkg:deb/"))


def _qualifier(purl: str, key: str) -> str:
    from packageurl import PackageURL

    return str(PackageURL.from_string(purl).qualifiers.get(key, ""))  # type: ignore[union-attr]
