"""`exchange sbom` and `exchange packages` on what `exchange process` published: the SBOMs alone answer,
checked against the sha256 their manifests pin; versions published before SBOMs are named, not hidden."""

from __future__ import annotations

import itertools
import json
import subprocess

import pytest
from click.testing import CliRunner

from exchange_cli.cli import cli
from exchange_cli.demo_image import build_demo_image
from exchange_cli.sbom.query import PackageSpec, compare_versions
from tests.infra import require_executable
from tests.infra.commands import catalog_site
from tests.infra.gitrepo import gear_and_image
from tests.infra.process_world import World, forget_sbom

STATUS = b"""Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2
"""
NUMPY = b"Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\nLicense: BSD-3-Clause\n"


def add_packaged_gear(process_world: World, name: str, version: str, data: dict[str, bytes]) -> None:
    gear, image = gear_and_image("acme", name, version)
    build_demo_image(process_world.images, image, gear, data=data)
    process_world.repo.write(f"gears/acme/{name}.json", gear)


@pytest.fixture
def published(process_world: World) -> World:
    add_packaged_gear(process_world, "pyapp", "1.0.0", {
        "var/lib/dpkg/status": STATUS,
        "usr/lib/python3/dist-packages/numpy-1.26.4.dist-info/METADATA": NUMPY})
    process_world.repo.commit("add pyapp")
    process_world.repo.git("push", "-q", "origin", "master")
    result = CliRunner().invoke(cli, process_world.args())
    assert result.exit_code == 0, result.output
    return process_world


def run(process_world: World, *args: str):
    return CliRunner().invoke(cli, [*args, "--repo", str(process_world.repo.root)])


def test_sbom_prints_the_packages_and_the_published_document(published: World) -> None:
    result = run(published, "sbom", "acme/pyapp")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "acme/pyapp@1.0.0: 3 packages, OS demo"
    assert lines[1].split() == ["ECOSYSTEM", "NAME", "VERSION", "LICENSE"]
    assert [line.split() for line in lines[2:]] == [["deb", "libssl3", "3.0.11-1~deb12u2", "-"],
                                                    ["deb", "openssl", "3.0.11-1~deb12u2", "-"],
                                                    ["pypi", "numpy", "1.26.4", "BSD-3-Clause"]]
    raw = run(published, "sbom", "acme/pyapp", "--format", "cyclonedx")
    manifest = next((published.repo.root / "manifests" / "acme").glob("acme-pyapp-*.json"))
    sbom_url = json.loads(manifest.read_text())["exchange"]["sbom-url"]
    assert raw.stdout_bytes == (published.bucket / sbom_url.rsplit("/", 1)[1]).read_bytes()


def test_packages_finds_the_versions_shipping_a_package(published: World) -> None:
    def versions(spec: str) -> list[tuple[str, str]]:
        result = run(published, "packages", spec, "--format", "json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["searched"] == 3 and report["without-sbom"] == []
        return [(match["version"], match["name"]) for match in report["matches"]]

    assert versions("openssl<3.0.13") == [("acme/pyapp@1.0.0", "openssl")]
    assert versions("openssl>=3.0.13") == []
    assert versions("openssl>3.0.11-1~deb12u1") == [("acme/pyapp@1.0.0", "openssl")]
    assert versions("numpy") == [("acme/pyapp@1.0.0", "numpy")]
    assert versions("pkg:pypi/NumPy") == [("acme/pyapp@1.0.0", "numpy")]
    assert versions("pkg:deb/numpy") == []
    assert versions("pkg:deb/demo/libssl3@3.0.11-1~deb12u2") == [("acme/pyapp@1.0.0", "libssl3")]
    text = run(published, "packages", "openssl<3.0.13")
    assert text.exit_code == 0 and text.output.splitlines()[1].startswith("acme/pyapp@1.0.0  openssl  3.0.11-1~deb12u2")


def test_an_altered_sbom_is_refused_and_an_old_manifest_is_named(published: World) -> None:
    manifest = next((published.repo.root / "manifests" / "acme").glob("acme-pyapp-*.json"))
    document = json.loads(manifest.read_text())
    stored = published.bucket / document["exchange"]["sbom-url"].rsplit("/", 1)[1]
    stored.write_bytes(stored.read_bytes().replace(b"3.0.11", b"3.0.99"))
    result = run(published, "sbom", "acme/pyapp")
    assert result.exit_code != 0 and "the SBOM hashes to sha256:" in result.output
    failed = run(published, "packages", "openssl")
    assert failed.exit_code == 1 and "not searched:" in failed.output
    # A manifest published before SBOMs: searched around, and said so.
    for key in ("sbom-url", "sbom-sha256"):
        del document["exchange"][key]
    manifest.write_text(json.dumps(document, indent=2))
    old = run(published, "sbom", "acme/pyapp")
    assert old.exit_code != 0 and "acme/pyapp@1.0.0 was published without an SBOM" in old.output
    report = json.loads(run(published, "packages", "openssl", "--format", "json").stdout)
    assert report["without-sbom"] == ["acme/pyapp@1.0.0"] and report["matches"] == []


def test_the_manifest_summarises_the_sbom_and_the_catalog_shows_it(published: World, tmp_path) -> None:
    manifest = next((published.repo.root / "manifests" / "acme").glob("acme-pyapp-*.json"))
    block = json.loads(manifest.read_text())["exchange"]
    assert (block["sbom-packages"], block["sbom-os"]) == (3, "demo")
    site = catalog_site(published.repo.root, tmp_path)
    page = (site / "gears/acme/pyapp.html").read_text()
    assert f"{block['sbom-url']} (3 packages, demo)" in page


def test_backfill_gives_an_old_manifest_the_sbom_a_run_gives(published: World) -> None:
    before, content = forget_sbom(published, "pyapp")
    result = run(published, "backfill-sbom", "--bucket", published.bucket.as_uri())
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("SBOM made for manifests/acme/acme-pyapp-sha384-")
    manifest = next((published.repo.root / "manifests" / "acme").glob("acme-pyapp-*.json"))
    assert json.loads(manifest.read_text())["exchange"] == before, "the keys a run gives, with the same values"
    assert (published.bucket / before["sbom-url"].rsplit("/", 1)[1]).read_bytes() == content, \
        "the same bytes as the export's: the same rootfs gives the same SBOM"
    assert published.repo.git("log", "-1", "--format=%s") == "Backfill SBOMs for 1 manifest(s)"
    assert published.repo.git("status", "--porcelain") == ""
    again = run(published, "backfill-sbom", "--bucket", published.bucket.as_uri())
    assert again.exit_code == 0 and "no manifest needed an SBOM" in again.output


def test_backfill_refuses_a_rootfs_that_is_not_the_one_its_manifest_pins(published: World) -> None:
    before, _ = forget_sbom(published, "pyapp")
    rootfs = published.bucket / before["rootfs-url"].rsplit("/", 1)[1]
    data = bytearray(rootfs.read_bytes())
    data[len(data) // 2] ^= 0xFF
    rootfs.write_bytes(bytes(data))
    result = run(published, "backfill-sbom", "acme/pyapp", "--bucket", published.bucket.as_uri())
    # Whichever comes first: the damaged deflate stream, or the hash of the whole object.
    assert result.exit_code == 1 and ("no SBOM made from it" in result.output or "not a gzip tar" in result.output)
    assert not (published.bucket / before["sbom-url"].rsplit("/", 1)[1]).exists()
    assert published.repo.git("log", "-1", "--format=%s") == "pyapp as published before SBOMs"


@pytest.mark.parametrize("text", ["", "openssl<", "a<<1", "pkg:"])
def test_a_bad_spec_is_a_usage_error(process_world: World, text: str) -> None:
    result = run(process_world, "packages", text)
    assert result.exit_code == 2 and "error:" in result.output


VERSIONS = ["1.0", "1.0-1", "1.0-2", "1:0.9", "1.0~rc1", "1.0+b1", "1.0a", "1.0.1", "2.36-9+deb12u4", "2.36-9",
            "3.0.11-1~deb12u2", "3.0.13-1", "0.0", "1.0-1ubuntu1", "1.0-1.1", "1.0~~", "1.0~", "10", "9"]


def test_debian_versions_compare_as_dpkg_does() -> None:
    dpkg = require_executable("dpkg")
    for left, right in itertools.combinations(VERSIONS, 2):
        ours = compare_versions(left, right, "deb")
        judged = next(result for result, op in ((-1, "lt"), (0, "eq"), (1, "gt"))
                      if subprocess.run([dpkg, "--compare-versions", left, op, right], check=False).returncode == 0)
        assert ours == judged, (left, right)


def test_package_specs() -> None:
    assert PackageSpec.parse("openssl<3.0.13") == PackageSpec("openssl", None, None, "<", "3.0.13")
    assert PackageSpec.parse("pkg:pypi/torch") == PackageSpec("torch", "pypi", None, None, None)
    assert PackageSpec.parse("numpy == 1.26.4") == PackageSpec("numpy", None, None, "==", "1.26.4")
