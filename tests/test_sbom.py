"""The SBOM collected while the flattener writes the rootfs: which files it reads, what each database
yields, hostile files (bounded, warned, never a traceback), and a deterministic, schema-valid document.

The layers are made by tests/layers.py and flattened for real; the database files here test the parsers'
edge cases. That real package managers agree is tests/test_sbom_debian.py's judge.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import given
from hypothesis import strategies as st

from exchange_cli.rootfs.flatten import flatten
from exchange_cli.rootfs.layertar import CHUNK
from exchange_cli.rootfs.tarball import write_rootfs
from exchange_cli.sbom import Findings, render
from exchange_cli.sbom.collect import CAPS, MAX_PACKAGES, Collector, kind_of
from tests.infra import require_executable
from tests.infra.debian_licences import JUDGE, declared, in_sbom
from tests.layers import Entry, file, hardlink, make_layer, symlink, whiteout, zeros

DPKG_STATUS = b"""Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library
 continuation line: Package: not-a-package

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.11-1~deb12u2
"""
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'


def collect(tmp_path: Path, *layers: list[Entry]) -> Findings:
    blobs = [make_layer(tmp_path, entries, name=f"layer-{index}.tar") for index, entries in enumerate(layers)]
    collector = Collector()
    write_rootfs(blobs, io.BytesIO(), watch=collector)
    return collector.finish()


def purls(findings: Findings) -> set[str]:
    document = json.loads(render(findings, "00" * 48))
    return {component["purl"] for component in document.get("components", []) if "purl" in component}


def test_dpkg_status_lists_installed_packages_with_os_namespace(tmp_path):
    findings = collect(tmp_path, [file("etc/os-release", OS_RELEASE), file("var/lib/dpkg/status", DPKG_STATUS)])
    assert purls(findings) == {
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc",
        "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
    }
    assert findings.os is not None and findings.os.pretty_name == "Debian GNU/Linux 12 (bookworm)"


def test_the_upper_layer_wins_and_a_deleted_database_lists_nothing(tmp_path):
    old = b"Package: a\nStatus: install ok installed\nVersion: 1\n"
    new = b"Package: a\nStatus: install ok installed\nVersion: 2\n"
    assert purls(collect(tmp_path, [file("var/lib/dpkg/status", old)], [file("var/lib/dpkg/status", new)])) \
        == {"pkg:deb/a@2"}
    assert purls(collect(tmp_path, [file("var/lib/dpkg/status", old)], [whiteout("var/lib/dpkg/status")])) == set()


def test_distroless_status_d_and_os_release_through_a_symlink(tmp_path):
    findings = collect(tmp_path, [
        symlink("etc/os-release", "../usr/lib/os-release"),
        file("usr/lib/os-release", b"ID=debian\nVERSION_ID=12\n"),
        file("var/lib/dpkg/status.d/base-files", b"Package: base-files\nVersion: 12.4\nArchitecture: amd64\n"),
        file("var/lib/dpkg/status.d/base-files.md5sums", b"d41d8cd98f00b204e9800998ecf8427e  etc/x\n"),
    ])
    assert purls(findings) == {"pkg:deb/debian/base-files@12.4?arch=amd64&distro=debian-12"}


def test_a_rootfs_listing_more_packages_than_the_cap_lists_the_first_and_says_so(tmp_path):
    """A hostile image could declare millions of packages within the gate's bytes: each would be a component
    in the child's memory, the document and every reader's. The first MAX_PACKAGES are listed, in the
    flattener's order, and one warning names where the cap was reached; later databases add nothing."""
    stanzas = "".join(f"Package: p{n}\nStatus: install ok installed\nVersion: 1\n\n" for n in range(MAX_PACKAGES - 2))
    findings = collect(tmp_path, [
        file("lib/apk/db/installed", b"P:musl\nV:1.2.4-r2\n\nP:zlib\nV:1.3-r0\n\nP:busybox\nV:1.36-r0\n"),
        file("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", b"Name: six\nVersion: 1.16.0\n\n"),
        file("var/lib/dpkg/status", stanzas.encode()),
        file("var/lib/dpkg/status.d/zz-more", b"Package: late\nVersion: 1\n"),
    ])
    assert len(findings.packages) == MAX_PACKAGES
    assert [p.name for p in findings.packages[:4]] == ["musl", "zlib", "busybox", "six"]
    assert findings.packages[-1].name == f"p{MAX_PACKAGES - 5}" and "late" not in {p.name for p in findings.packages}
    assert findings.warnings == [(f"var/lib/dpkg/status: the rootfs lists more than {MAX_PACKAGES:,} packages; "
                                  "the rest are not in the SBOM")]


def test_debian_licences_are_what_the_copyright_files_declare(tmp_path):
    """This machine's own copyright files (dpkg's machine-readable, libc6's free-form, bash's with nine
    licences); the judge reads them with sed and grep. A package without a file has no licence, and a
    file a later layer deletes declares nothing."""
    packages = ["dpkg", "libc6", "bash"]
    copyrights = [file(f"usr/share/doc/{name}/copyright", Path(f"/usr/share/doc/{name}/copyright").read_bytes())
                  for name in packages]
    status = "".join(f"Package: {name}\nStatus: install ok installed\nVersion: 1\n\n"
                     for name in [*packages, "no-doc"]).encode()
    findings = collect(tmp_path, [file("etc/os-release", OS_RELEASE), *copyrights, file("var/lib/dpkg/status", status)])
    components = json.loads(render(findings, "00" * 48))["components"]
    judged = declared(subprocess.run(["sh", "-c", JUDGE, "sh", *packages, "no-doc"], capture_output=True,
                                     text=True, check=True).stdout)
    assert in_sbom(components) == judged
    assert {package for package, _ in judged} == set(packages) and len(judged) >= 12
    deleted = collect(tmp_path, [*copyrights, file("var/lib/dpkg/status", status)], [whiteout("usr/share/doc/bash")])
    assert {package.name: bool(package.licenses) for package in deleted.packages} \
        == {"dpkg": True, "libc6": True, "bash": False, "no-doc": False}


def test_apk_installed_with_licence(tmp_path):
    installed = b"C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:zlib\nV:1.3-r0\nA:x86_64\nL:Zlib\n"
    findings = collect(tmp_path, [file("etc/os-release", b"ID=alpine\nVERSION_ID=3.19.0\n"),
                                  file("lib/apk/db/installed", installed)])
    document = json.loads(render(findings, "00" * 48))
    by_name = {component["name"]: component for component in document["components"]}
    assert by_name["musl"]["purl"] == "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.0"
    assert by_name["zlib"]["licenses"] == [{"license": {"id": "Zlib"}}]


def test_python_dist_info_egg_info_and_licences(tmp_path):
    site = "usr/local/lib/python3.11/site-packages"
    findings = collect(tmp_path, [
        file(f"{site}/Foo_Bar-1.0.dist-info/METADATA",
             b"Metadata-Version: 2.4\nName: Foo_Bar\nVersion: 1.0\nLicense-Expression: MIT OR Apache-2.0\n\nbody\n"),
        file(f"{site}/six-1.16.0.dist-info/METADATA",
             b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nClassifier: License :: OSI Approved :: MIT License\n"
             b"Classifier: License :: Other/Proprietary License\n"),
        file(f"{site}/old-2.0.egg-info/PKG-INFO", b"Name: old\nVersion: 2.0\nLicense: UNKNOWN\n"),
        file("usr/lib/python3/dist-packages/distutils_pkg-0.1.egg-info", b"Name: distutils-pkg\nVersion: 0.1\n"),
        file(f"{site}/README/METADATA", b"Name: notadistribution\nVersion: 1\n"),  # not in a .dist-info
    ])
    document = json.loads(render(findings, "00" * 48))
    by_name = {component["name"]: component for component in document["components"]}
    assert set(by_name) == {"Foo_Bar", "six", "old", "distutils-pkg"}
    assert by_name["Foo_Bar"]["purl"] == "pkg:pypi/foo-bar@1.0"
    assert by_name["Foo_Bar"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert by_name["six"]["licenses"] == [{"license": {"name": "MIT License"}},
                                          {"license": {"name": "Other/Proprietary License"}}]
    assert "licenses" not in by_name["old"]


def test_conda_and_r_packages(tmp_path):
    conda = {"name": "numpy", "version": "1.26.4", "build": "py311h64a7726_0", "channel": "conda-forge",
             "license": "BSD-3-Clause", "subdir": "linux-64", "files": ["lib/x"]}
    description = b"Package: jsonlite\nVersion: 1.8.8\nLicense: MIT + file LICENSE\nBuilt: R 4.3.2; ; 2024\n"
    wrapped = (b"Package: Matrix\nVersion: 1.6-5\nVersion: 9.9\nLicense: GPL (>= 2) | file\n    LICENCE\n"
               b"Built: R 4.3.2; x86_64-pc-linux-gnu; 2024\n")
    findings = collect(tmp_path, [
        file("opt/conda/conda-meta/numpy-1.26.4-py311h64a7726_0.json", json.dumps(conda).encode()),
        file("opt/conda/conda-meta/history", b"==> 2024 <==\n"),
        file("usr/local/lib/R/site-library/jsonlite/DESCRIPTION", description),
        file("usr/lib/R/library/Matrix/DESCRIPTION", wrapped),  # a wrapped field; the first Version counts
        file("usr/local/lib/R/site-library/other/DESCRIPTION", description),  # names another directory
        file("src/jsonlite/DESCRIPTION", description.replace(b"Built", b"Date")),  # a source tree's
    ])
    assert purls(findings) == {
        "pkg:conda/numpy@1.26.4?build=py311h64a7726_0&channel=conda-forge&subdir=linux-64",
        "pkg:cran/jsonlite@1.8.8",
        "pkg:cran/Matrix@1.6-5",
    }
    assert {p.name: p.licenses for p in findings.packages}["Matrix"] == ("GPL (>= 2) | file LICENCE",)


RPM_SPEC = """Name: hello-sbom
Version: 1.2
Release: 3
Epoch: 2
Summary: a package for the SBOM's test
License: MIT AND (Apache-2.0 OR BSD-3-Clause)
BuildArch: noarch
%description
An empty package.
%files
"""


def real_rpm_database(tmp_path: Path) -> bytes:
    """An rpmdb.sqlite made by rpm itself: a package built by rpmbuild, recorded with `rpm -i --justdb`."""
    rpmbuild, rpm = require_executable("rpmbuild"), require_executable("rpm")
    (tmp_path / "SPECS").mkdir()
    (tmp_path / "SPECS/hello.spec").write_text(RPM_SPEC)
    subprocess.run([rpmbuild, "--define", f"_topdir {tmp_path}", "-bb", str(tmp_path / "SPECS/hello.spec")],
                   check=True, capture_output=True)
    database = tmp_path / "db"
    subprocess.run([rpm, "--dbpath", str(database), "--initdb"], check=True, capture_output=True)
    subprocess.run([rpm, "--dbpath", str(database), "-i", "--justdb", "--nodeps",
                    *map(str, (tmp_path / "RPMS/noarch").glob("*.rpm"))], check=True, capture_output=True)
    assert (database / "rpmdb.sqlite").exists(), "rpm did not use its sqlite backend"
    return (database / "rpmdb.sqlite").read_bytes()


def test_rpm_sqlite_database_and_the_unsupported_berkeley_db(tmp_path):
    findings = collect(tmp_path, [file("etc/os-release", b"ID=fedora\nVERSION_ID=39\n"),
                                  file("usr/lib/sysimage/rpm/rpmdb.sqlite", real_rpm_database(tmp_path)),
                                  file("var/lib/rpm/Packages", b"\0" * 100)])
    assert purls(findings) == {"pkg:rpm/fedora/hello-sbom@1.2-3?arch=noarch&distro=fedora-39&epoch=2"}
    assert findings.packages[0].licenses == ("MIT AND (Apache-2.0 OR BSD-3-Clause)",)
    assert findings.warnings == [("var/lib/rpm/Packages: an rpm database in the Berkeley DB format, which is not "
                                  "read; its packages are not listed")]


@pytest.mark.parametrize(("path", "data", "warning"), [
    ("usr/lib/sysimage/rpm/rpmdb.sqlite", b"not sqlite at all" * 10, "not an rpm sqlite database"),
    ("opt/conda/conda-meta/x-1-0.json", b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ("opt/conda/conda-meta/y-1-0.json", b"\xff\xfe garbage", "not JSON"),
    ("etc/os-release", b"ID='unterminated\nID=/../x\n", "no ID="),
])
def test_hostile_files_are_warnings_not_tracebacks(tmp_path, path, data, warning):
    findings = collect(tmp_path, [file(path, data)])
    assert findings.packages == []
    assert len(findings.warnings) == 1 and warning in findings.warnings[0] and findings.warnings[0].startswith(path)


def test_a_file_over_its_cap_is_not_read_but_named(tmp_path):
    findings = collect(tmp_path, [zeros("var/lib/dpkg/status", CAPS["dpkg"] + 1)])
    assert findings.packages == []
    cap = CAPS["dpkg"]
    assert findings.warnings == [(f"var/lib/dpkg/status: {cap + 1:,} bytes, more than the {cap:,} a dpkg record may hold; "
                                 "not read")]


def test_a_warning_about_a_file_whose_name_is_not_utf8_is_written_escaped(tmp_path):
    """The name's undecodable byte (a surrogate once read) made the document unwritable: a traceback."""
    path = "opt/x\udcff.dist-info/METADATA"
    findings = collect(tmp_path, [zeros(path, CAPS["python"] + 1)])
    document = render(findings, "00" * 48)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.decode()) is None
    assert b"opt/x\\udcff.dist-info/METADATA" in document
    assert [item["value"] for item in json.loads(document)["metadata"]["properties"]] == findings.warnings


def test_a_hard_linked_database_is_read_through_its_link(tmp_path):
    status = b"Package: a\nStatus: install ok installed\nVersion: 1\n"
    findings = collect(tmp_path, [file("srv/status", status), hardlink("var/lib/dpkg/status", "srv/status")])
    assert [package.name for package in findings.packages] == ["a"]


def test_paths_are_matched_by_directory_and_name():
    assert kind_of("var/lib/dpkg/", "status") == "dpkg"
    assert kind_of("usr/var/lib/dpkg/", "status") is None
    assert kind_of("etc/", "status") is None
    assert kind_of("lib/apk/db/", "installed") == "apk"
    assert kind_of("opt/conda/", "x.json") is None
    assert kind_of("opt/conda/envs/a/conda-meta/", "x.json") == "conda"
    assert kind_of("usr/lib/python3/dist-packages/a.egg-info/", "PKG-INFO") == "python"
    assert kind_of("usr/lib/python3/dist-packages/a.egg-info/", "METADATA") is None
    assert kind_of("usr/share/doc/jq/", "copyright") == "dpkg-copyright"
    assert kind_of("usr/share/doc/jq/examples/", "copyright") is None
    assert kind_of("usr/share/doc/", "copyright") is None
    assert kind_of("opt/usr/share/doc/jq/", "copyright") is None


def test_the_document_is_deterministic_valid_cyclonedx_and_merges_one_package_at_two_paths(tmp_path):
    metadata = b"Name: six\nVersion: 1.16.0\n"
    layers = [file("etc/os-release", OS_RELEASE), file("var/lib/dpkg/status", DPKG_STATUS),
              file("a/six-1.16.0.dist-info/METADATA", metadata), file("b/six-1.16.0.dist-info/METADATA", metadata),
              file("var/lib/rpm/Packages", b"")]
    first, second = render(collect(tmp_path, layers), "ab" * 48), render(collect(tmp_path, layers), "ab" * 48)
    assert first == second
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(first.decode()) is None
    document = json.loads(first)
    assert document["serialNumber"] == json.loads(render(Findings(), "ab" * 48))["serialNumber"]  # the rootfs's
    assert "timestamp" not in document["metadata"]
    six = next(component for component in document["components"] if component["name"] == "six")
    assert [item["value"] for item in six["properties"] if item["name"] == "exchange:location"] \
        == ["a/six-1.16.0.dist-info/METADATA", "b/six-1.16.0.dist-info/METADATA"]
    assert document["metadata"]["properties"][0]["name"] == "exchange:sbom:warning"
    assert json.loads(render(collect(tmp_path, layers), "cd" * 48))["serialNumber"] != document["serialNumber"]


_DIRECTORIES = ["", "var/lib/dpkg/", "var/lib/dpkg/status.d/", "lib/apk/db/", "var/lib/rpm/", "usr/lib/sysimage/rpm/",
                "etc/", "usr/lib/", "opt/conda/conda-meta/", "x/a.dist-info/", "x/a.egg-info/", "usr/lib/R/site-library/a/",
                "usr/share/doc/a/", "usr/share/doc/"]
_NAMES = ["status", "installed", "rpmdb.sqlite", "Packages", "Packages.db", "METADATA", "PKG-INFO", "DESCRIPTION",
          "os-release", "a.json", "a.egg-info", "libc6", "libc6.md5sums", "README", "status.json", "x.py", "copyright"]


@given(st.text(max_size=8), st.sampled_from(_DIRECTORIES), st.sampled_from(_NAMES) | st.text(max_size=12))
def test_the_flattener_asks_about_every_file_the_collector_would_take(above, known, name):
    """The emitter asks `wants` only about candidates (Collector.names, .suffixes, .directory_suffixes): each
    path `kind_of` recognises must be one, or its database would silently go unread."""
    directory = (above.replace("/", "") + "/" + known) if above and known else known
    candidate = (name in Collector.names or name.endswith(Collector.suffixes)
                 or directory.endswith(Collector.directory_suffixes))
    assert kind_of(directory, name) is None or candidate


def test_the_watch_is_asked_only_about_files_it_could_want(tmp_path):
    """Names and suffixes match far more files than the collector reads (a quarter of the big benchmark
    image's files end in .json, node_modules holds thousands of package.json, a job tree as many files
    named status): a conda record is known by its directory, and the flattener asks the watch's pure
    test before it sorts and asks `wants`, so that the others are neither sorted nor asked about one by
    one. What could be wanted is asked about in the stream's order, the refused rpm format's warning
    included."""
    asked: list[str] = []
    considered: list[str] = []

    class Recording(Collector):
        def could_want(self, directory: str, name: str) -> bool:
            considered.append(directory + name)
            return super().could_want(directory, name)

        def wants(self, directory: str, name: str) -> int:
            asked.append(directory + name)
            return super().wants(directory, name)

    conda_record = json.dumps({"name": "zlib", "version": "1.3", "build": "h0", "channel": "conda-forge"}).encode()
    layer = make_layer(tmp_path, [*(file(f"app/node_modules/m{n}/package.json", b"{}") for n in range(300)),
                                  *(file(f"srv/jobs/j{n}/status", b"done") for n in range(300)),
                                  file("opt/conda/conda-meta/zlib-1.3-h0.json", conda_record),
                                  file("var/lib/rpm/Packages", b"Berkeley DB"), file("etc/os-release", OS_RELEASE)])
    collector = Recording()
    flatten([layer], io.BytesIO(), watch=collector)
    assert asked == ["etc/os-release", "opt/conda/conda-meta/zlib-1.3-h0.json", "var/lib/rpm/Packages"]
    assert not [path for path in considered if path.endswith("package.json")], "a .json is not a name to test"
    assert len(considered) == 300 + len(asked)
    findings = collector.finish()
    assert [package.name for package in findings.packages] == ["zlib"]
    assert any("Berkeley DB" in warning for warning in findings.warnings)


def test_the_watch_has_its_files_before_the_stream_is_written_and_in_its_order(tmp_path):
    """The package databases come last in the canonical order (usr/share/doc/, var/lib/dpkg/): shown as the
    stream passed them, they reached the SBOM's process in the export's last moments, and the export waited
    for their parsing. They are shown before the first byte is written now, in the order the stream has
    them, so that the collector sees what it saw (a package's licences before its status record)."""
    written: list[int] = []  # what the flattener had handed over when each file was shown

    class Sink:
        def write(self, block: bytearray) -> None:
            written.append(len(block))

    shown: list[tuple[str, int]] = []

    class Recording(Collector):
        def take(self, path: str, data: bytes | None, size: int) -> None:
            shown.append((path, sum(written)))
            super().take(path, data, size)

    copyright_file = (b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
                      b"Files: *\nCopyright: 2024 Someone\nLicense: MIT\n")
    layer = make_layer(tmp_path, [zeros("aaa/large", 3 * CHUNK), file("var/lib/dpkg/status", DPKG_STATUS),
                                  file("usr/share/doc/openssl/copyright", copyright_file),
                                  file("etc/os-release", OS_RELEASE), zeros("zzz/after", CHUNK),
                                  file("usr/share/doc/libc6-dev/copyright", copyright_file),
                                  file("usr/share/doc/libc6/copyright", copyright_file)])
    collector = Recording()
    flatten([layer], Sink(), watch=collector)
    # libc6 before libc6-dev, as the stream has them (by component), not as their paths sort ("-" < "/")
    assert shown == [("etc/os-release", 0), ("usr/share/doc/libc6/copyright", 0),
                     ("usr/share/doc/libc6-dev/copyright", 0), ("usr/share/doc/openssl/copyright", 0),
                     ("var/lib/dpkg/status", 0)]
    assert sum(written) > 4 * CHUNK  # the stream was written, after
    findings = collector.finish()
    assert {(package.name, package.licenses) for package in findings.packages} == {
        ("libc6", ("MIT",)), ("openssl", ("MIT",))}
