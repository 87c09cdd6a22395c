"""How the SBOM document is made: each component exactly as the CycloneDX library serializes it whole
(the library is the judge, over generated packages and hostile licences), the same bytes whatever order
the packages and the OS come in, and made by a child process that delivers the in-process document, whose
failure is one line that leaves no file, and which no interrupt or kill of the exporter leaves behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from cyclonedx.model import Property
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.schema.schema import SchemaVersion1Dot6
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_cli.sbom import Findings, OperatingSystem, Package, render, renderer
from exchange_cli.sbom.document import DocumentBuilder, DocumentHere, licenses_of, purl_of
from exchange_cli.sbom.renderer import PROCESS_FROM_BYTES, DocumentProcess, document_maker
from exchange_cli.testgates import GATES_ENV
from tests.infra.image_files import OciLayout
from tests.layers import file, write_layer_tar, zeros

DEBIAN = OperatingSystem("debian", "12", "Debian GNU/Linux", "Debian GNU/Linux 12 (bookworm)")
ALPINE = OperatingSystem("alpine", "3.19.0")
HOSTILE_LICENCES = [(), ("MIT",), ("GPL-2.0-or-later",), ("MIT OR Apache-2.0",), ("GPL-2+", "BSD-3-clause"),
                    ('a "quoted" licence\\',), ("\x01exchange-marker-name",), ("pkg:exchange-marker/purl",),
                    ("\x01exchange-marker-location000000", "\x01exchange-marker-ref"), ("Licence ünïcödé \u202e",),
                    ("MIT", "mit"), ("GPL-2+", "MIT OR Apache-2.0")]
# Lists of a few licences, ids and names mixed: the library sorts a list, and dedupes what it takes as one.
KNOWN = ["MIT", "mit", "Apache-2.0", "GPL-2+", "BSD-3-clause", "public-domain", "MIT OR Apache-2.0", "Zlib", "Expat"]


def whole(package_group: list[Package], os: OperatingSystem | None) -> str:
    """The library's own JSON of the component, a new Component made with every field: the judge."""
    first = min(package_group, key=lambda package: package.path)
    purl = purl_of(first, os)
    component = Component(
        type=ComponentType.APPLICATION if first.ecosystem in ("deb", "apk", "rpm") else ComponentType.LIBRARY,
        name=first.name, version=first.version, purl=purl, bom_ref=purl.to_string(),
        licenses=licenses_of(first.licenses),
        properties=[Property(name="exchange:ecosystem", value=first.ecosystem),
                    *(Property(name="exchange:location", value=path)
                      for path in sorted({package.path for package in package_group}))])
    return str(component.as_json(view_=SchemaVersion1Dot6))  # type: ignore[attr-defined]


def component_rows(document: bytes) -> list[str]:
    """The document's components as written: one a line, between the list's brackets."""
    text = document.decode()
    return text[text.index('"components":[\n') + len('"components":[\n'):-len("]}\n")].split(",\n")


strings = st.text(min_size=1, max_size=20)
packages = st.lists(
    st.tuples(st.sampled_from(["deb", "apk", "rpm", "pypi", "conda", "cran"]), strings, strings,
              st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=3, unique=True),
              st.sampled_from(HOSTILE_LICENCES) | st.lists(st.text(max_size=20), max_size=2).map(tuple)
              | st.lists(st.sampled_from(KNOWN), max_size=4).map(tuple),
              st.sampled_from([(), (("arch", "amd64"),)])),
    min_size=1, max_size=12)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(packages=packages, os=st.sampled_from([None, DEBIAN, ALPINE]))
def test_each_component_is_the_librarys_own_serialization(packages, os) -> None:
    """The writer serializes one component per shape with markers for its strings and fills in each
    package's; whatever the strings (quotes, escapes, controls, a licence named as a marker), every row
    must be the library's JSON of that component, made whole."""
    findings = Findings(os=os)
    groups: dict[str, list[Package]] = {}
    for index, (ecosystem, name, version, paths, licences, qualifiers) in enumerate(packages):
        for path in paths:  # one package at several paths: one component, several locations
            package = Package(ecosystem, f"{name}{index}", version, path, licences, qualifiers)
            findings.packages.append(package)
            groups.setdefault(purl_of(package, os).to_string(), []).append(package)
    rows = component_rows(render(findings, "ab" * 48))
    expected = {ref: whole(group, os) for ref, group in groups.items()}
    if os is not None:
        expected[f"os:{os.distro}"] = rows[[json.loads(row)["bom-ref"] for row in rows].index(f"os:{os.distro}")]
    assert rows == [expected[ref] for ref in sorted(expected)]


def debian_findings() -> Findings:
    findings = Findings(os=DEBIAN, warnings=["var/lib/rpm/Packages: Berkeley DB, not read"])
    findings.packages += [Package("deb", f"lib{n}", f"1.{n}-1", "var/lib/dpkg/status", qualifiers=(("arch", "amd64"),))
                          for n in range(40)]
    findings.packages += [Package("pypi", "six", "1.16.0", f"{site}/six-1.16.0.dist-info/METADATA", ("MIT",))
                          for site in ("a", "b")]
    return findings


def test_the_bytes_do_not_depend_on_the_order_packages_and_the_os_come_in() -> None:
    """The builder makes components as packages come; the OS, which names a distribution package's purl,
    may come after them (a later layer's os-release), and the same package may come from a second path."""
    findings = debian_findings()
    expected = render(findings, "cd" * 48)
    shuffled = list(findings.packages)
    random.Random(7).shuffle(shuffled)
    builder = DocumentBuilder()
    builder.choose_os(ALPINE)
    builder.add(shuffled[:20])
    builder.choose_os(None)
    builder.add(shuffled[20:])
    builder.choose_os(DEBIAN)
    assert builder.finish(findings.warnings, "cd" * 48) == expected
    assert b"pkg:deb/debian/lib7@1.7-1?arch=amd64&distro=debian-12" in expected


def debian_files() -> list[tuple[str, bytes | None, int]]:
    """A rootfs's files in the flattener's order, as (path, data or None when over its cap, size): every
    ecosystem's database, and every kind of warning (a refused rpm format, a file over its cap, an
    unreadable database, a path that is not UTF-8, bytes that are not either)."""
    copyright = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: {}\n"
    status = "".join(f"Package: lib{n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.{n}-1\n"
                     f"Description: library {n}\n \xff\xfe binary junk\n\n" for n in range(40))
    files: list[tuple[str, bytes | None, int]] = [
        ("etc/os-release", b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n', 0),
        ("opt/conda/conda-meta/huge-1.0-0.json", None, 1 << 30),
        ("opt/\udcff/weird-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: weird\nVersion: 1.0\n\n", 0),
        ("usr/lib/os-release", b"ID=alpine\nVERSION_ID=3.19\n", 0),
        ("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
         b"Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\n", 0),
        *((f"usr/share/doc/lib{n}/copyright", copyright.format(["GPL-2+", "MIT", "BSD-3-clause"][n % 3]).encode(), 0)
          for n in range(40)),
        ("var/lib/dpkg/status", status.encode("latin-1"), 0),
        ("var/lib/rpm/Packages", b"Berkeley DB", 0),
        ("var/lib/rpm/rpmdb.sqlite", b"not a database", 0),
    ]
    return [(path, data, size or len(data or b"")) for path, data, size in files]


def show(watch, files: list[tuple[str, bytes | None, int]]) -> None:
    """What the flattener does with a watch: asks, then says where the data of a file within its cap lies
    (here, all of them in one file, as a layer's tar holds them), else only its size; then that all were
    shown. The file is closed, and had no name, before the child reads it: it reads its own descriptor."""
    with tempfile.TemporaryFile() as layer:
        for path, data, size in files:
            directory, _, name = path.rpartition("/")
            limit = watch.wants(f"{directory}/" if directory else "", name)
            if not limit:
                continue
            if data is not None and len(data) <= limit:
                offset = layer.seek(0, os.SEEK_END)
                layer.write(data)
                layer.flush()
                watch.take_span(path, layer.fileno(), offset, len(data))
            else:
                watch.take(path, None, size)
        watch.all_shown()


def test_the_child_process_delivers_the_in_process_document() -> None:
    """The same files shown to the child's gate and to a collector here give the same bytes: the child
    reads each file where the gate says it lies, and the warnings come in the order they came."""
    with document_maker(0) as here:
        show(here.watch(), debian_files())
        here.finish("ef" * 48)
    expected = here.document()
    warnings = json.loads(expected)["metadata"]["properties"]
    assert len(warnings) == 3 and "Berkeley DB" in json.dumps(warnings), "each kind of warning is in it"
    assert b"pkg:pypi/weird@1.0" in expected and b"opt/\\udcff/weird" in expected, "a path that is not UTF-8"
    assert b"pkg:deb/debian/lib7@1.7-1?arch=amd64&distro=debian-12" in expected
    with document_maker(PROCESS_FROM_BYTES) as child:
        assert isinstance(child, DocumentProcess)
        show(child.watch(), debian_files())
        child.finish("ef" * 48)
        assert child.document() == expected
    assert child.process.poll() is not None, "the child outlived its context"


def test_a_slow_renderer_holds_the_flattener_back_instead_of_the_lines_piling_up(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The lines telling the child where files lie go through a bounded queue: a child that cannot keep up
    (here, stopped) makes the flattener wait, rather than the exporter holding the lines of a hostile
    image's 200,000 files with long paths. (The bound, made small here, is 32 MiB.)"""
    bound = 256 << 10
    monkeypatch.setattr(renderer, "MAX_QUEUED_BYTES", bound)
    status = b"Package: p\nStatus: install ok installed\nVersion: 1\n\n"
    layer = tmp_path / "layer"
    layer.write_bytes(status)
    paths = [f"var/lib/dpkg/status.d/{n:04d}{'p' * 3000}" for n in range(4 * bound // 3000)]
    with document_maker(PROCESS_FROM_BYTES) as child, layer.open("rb") as opened:
        assert isinstance(child, DocumentProcess)
        watch = child.watch()
        os.kill(child.process.pid, signal.SIGSTOP)
        try:
            producer = threading.Thread(target=lambda: [watch.take_span(path, opened.fileno(), 0, len(status))
                                                        for path in paths], daemon=True)
            producer.start()
            producer.join(timeout=2)
            assert producer.is_alive(), "the flattener waits for the child"
            assert child.queued <= bound + renderer.BATCH_BYTES + 4000
        finally:
            os.kill(child.process.pid, signal.SIGCONT)
        producer.join(timeout=120)
        assert not producer.is_alive()
        watch.all_shown()
        child.finish("ab" * 48)
        (component,) = json.loads(child.document())["components"]
    assert component["purl"] == "pkg:deb/p@1" and len(component["properties"]) == 1 + len(paths), "every file arrived"


def test_the_child_reads_a_layer_the_cache_evicted_after_the_flattener_opened_it(tmp_path: Path) -> None:
    """The child reads the files through its own descriptors of the layers, sent with the first file of
    each: a layer another process's cache trim deletes during the export (the exporter holds it open, as
    the flattener does) is still read whole, whenever the child gets to it; a child that opened the
    layers by their paths would find them gone."""
    status = b"Package: late\nStatus: install ok installed\nVersion: 2\n\n"
    layer = tmp_path / "cache" / "layers" / "sha256-0123.tar"
    layer.parent.mkdir(parents=True)
    layer.write_bytes(b"\0" * 1024 + status)
    with document_maker(PROCESS_FROM_BYTES) as child:
        assert isinstance(child, DocumentProcess)
        watch = child.watch()
        os.kill(child.process.pid, signal.SIGSTOP)  # it reads nothing before the layer is gone
        try:
            with layer.open("rb") as opened:
                assert watch.wants("var/lib/dpkg/", "status")
                watch.take_span("var/lib/dpkg/status", opened.fileno(), 1024, len(status))
                watch.all_shown()
            layer.unlink()
        finally:
            os.kill(child.process.pid, signal.SIGCONT)
        child.finish("cd" * 48)
        (component,) = json.loads(child.document())["components"]
    assert component["purl"] == "pkg:deb/late@2"


def test_a_file_past_its_layers_end_fails_the_document_in_one_line(tmp_path: Path) -> None:
    """The child reads what it is told to, and a span the layer does not hold (which the flattener, having
    checked every header against the layer's size, never sends) is one line, not a short file parsed."""
    layer = tmp_path / "layer"
    layer.write_bytes(b"Package: a\n")
    with document_maker(PROCESS_FROM_BYTES) as child, layer.open("rb") as opened:
        assert isinstance(child, DocumentProcess)
        watch = child.watch()
        watch.take_span("var/lib/dpkg/status", opened.fileno(), 0, 100)
        watch.all_shown()
        child.finish("ef" * 48)
        with pytest.raises(renderer.RendererFailed, match=r"^var/lib/dpkg/status: its layer file ends 89 bytes short of it$"):
            child.document()


# --- through the command, held at the gate where the SBOM's process has started ---------------------------


def start_held(tmp_path: Path, padding: int, at: str = "sbom") -> tuple[subprocess.Popen[str], Path]:
    """`exchange export --sbom` of a Debian-like image with `padding` bytes of zeros, held at the gate `at`
    (uncompressed layers: the padding costs no compression)."""
    layer = write_layer_tar(tmp_path / "layer.tar", [
        file("etc/os-release", b"ID=debian\nVERSION_ID=12\n"), zeros("opt/padding", padding),
        file("var/lib/dpkg/status", b"Package: a\nStatus: install ok installed\nVersion: 1\n")]).read_bytes()
    layout = OciLayout(tmp_path / "layout")
    layout.add(layout.image([layer], compression="none"), tag="img")
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / f"{at}.armed").touch()
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.Popen(
        [sys.executable, "-m", "exchange_cli", "export", f"oci:{layout.root}:img", "-o", str(out / "rootfs.tgz"),
         "--sbom", str(out / "sbom.json"), "--cache-dir", str(tmp_path / "cache"), "--quiet"],
        env={**os.environ, GATES_ENV: str(gates)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (gates / f"{at}.reached").exists():
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)
    return run, gates


def children_of(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def held_export(tmp_path: Path, at: str = "sbom") -> tuple[subprocess.Popen[str], Path, int]:
    """An export whose rootfs is large enough for a child to make the document, held at `at`: the child's pid."""
    run, gates = start_held(tmp_path, PROCESS_FROM_BYTES, at)
    children = children_of(run.pid)
    assert len(children) == 1 and "exchange_cli.sbom.child" in Path(f"/proc/{children[0]}/cmdline").read_text()
    return run, gates, children[0]


def sbom_children(pid: int) -> list[int]:
    return [child for child in children_of(pid)
            if "exchange_cli.sbom.child" in Path(f"/proc/{child}/cmdline").read_text()]


def test_a_small_rootfs_has_its_document_made_here_unless_a_child_was_started_early() -> None:
    """A child's start would cost more than a small export: `exchange process` makes such a document here.
    One started early (by `exchange export`, before its exporter was imported) is used whatever the size."""
    with document_maker(1 << 20) as maker:
        assert isinstance(maker, DocumentHere)
    early = DocumentProcess()
    with document_maker(1 << 20, early) as maker:
        assert maker is early
    assert gone(early.process.pid)


def test_the_export_commands_sbom_process_starts_before_the_image_is_opened(tmp_path: Path) -> None:
    """Its interpreter's start and the library's import overlap the exporter's own start (renderer.py);
    the document of a rootfs however small is then the child's, and the same."""
    run, gates = start_held(tmp_path, 1 << 20, at="open")
    assert len(sbom_children(run.pid)) == 1, "no SBOM process yet when the image is about to be opened"
    (gates / "open.armed").unlink()
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    document = json.loads((tmp_path / "out" / "sbom.json").read_bytes())
    assert [component["bom-ref"] for component in document["components"]] \
        == ["os:debian-12", "pkg:deb/debian/a@1?distro=debian-12"]


def test_an_image_that_cannot_be_opened_leaves_no_sbom_process_started_early(tmp_path: Path) -> None:
    """In one process (as a program calling the command would): the early child is ended with the command,
    not left waiting for an export that never comes."""
    from click.testing import CliRunner

    from exchange_cli.cli import cli

    result = CliRunner().invoke(cli, ["export", f"oci:{tmp_path / 'missing'}:img", "-o", str(tmp_path / "r.tgz"),
                                      "--sbom", str(tmp_path / "sbom.json"), "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 1 and result.output.startswith(f"error: oci:{tmp_path / 'missing'}:img: "), \
        result.output
    assert sbom_children(os.getpid()) == [], "the early child outlived its command"
    assert not (tmp_path / "sbom.json").exists() and not (tmp_path / "r.tgz").exists()


def gone(pid: int, *, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("at", ["open", "sbom"])
def test_a_renderer_that_dies_fails_the_export_in_one_line_and_leaves_no_file(tmp_path: Path, at: str) -> None:
    run, gates, renderer = held_export(tmp_path, at)
    os.kill(renderer, signal.SIGKILL)
    (gates / f"{at}.armed").unlink()
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1, stderr
    assert stderr.strip().splitlines() == [
        f"error: oci:{tmp_path / 'layout'}:img: the SBOM could not be made: the SBOM's process ended by signal 9"]
    assert list((tmp_path / "out").iterdir()) == [], "no tarball, no SBOM, no temporary file"


@pytest.mark.parametrize("at", ["open", "sbom"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_no_interrupt_or_kill_of_the_exporter_leaves_its_renderer_behind(tmp_path: Path, signum: int, at: str) -> None:
    """SIGINT and SIGTERM: the exporter ends it on the way out. SIGKILL: nobody can, so it ends itself at
    the end of its input. Whether the export has begun (`sbom`) or the image is not even opened (`open`:
    the child was started early)."""
    run, gates, renderer = held_export(tmp_path, at)
    run.send_signal(signum)
    run.communicate(timeout=60)
    assert run.returncode != 0
    assert gone(renderer), f"the renderer {renderer} outlived its exporter ({signum!r})"
    (gates / f"{at}.armed").unlink()
    assert [path.name for path in (tmp_path / "out").iterdir()] == []
