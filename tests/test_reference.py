from __future__ import annotations

import pytest

from exchange_cli.reference import ReferenceError, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", None, None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("flywheel/dcm2niix:1.0.0", "docker.io", "flywheel/dcm2niix", "1.0.0", None),
        ("localhost:5000/a/b/c:tag", "localhost:5000", "a/b/c", "tag", None),
        ("localhost/x", "localhost", "x", None, None),
        ("127.0.0.1:5000/x@" + DIGEST, "127.0.0.1:5000", "x", None, DIGEST),
        ("gcr.io/p/x:1@" + DIGEST, "gcr.io", "p/x", "1", DIGEST),
        ("index.docker.io/library/x:1", "docker.io", "library/x", "1", None),
        ("[::1]:5000/x:1", "[::1]:5000", "x", "1", None),
        ("a/b__c/d-e.f:1_0", "docker.io", "a/b__c/d-e.f", "1_0", None),
    ],
)
def test_valid_references(text: str, registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.is_pinned is bool(tag or digest)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("x/UPPER:1", "repository path"),
        ("x:.bad", "tag"),
        ("x:" + "a" * 129, "tag"),
        ("x@sha256:abc", "digest"),
        ("x@md5", "digest"),
        ("reg_istry.io:5000/x:1", "registry"),
        ("a//b:1", "repository path"),
        ("a/b-:1", "repository path"),
        (" x:1", "white space"),
        ("x/" + "y" * 260 + ":1", "longer than"),
    ],
)
def test_invalid_references_say_which_part(text: str, fragment: str) -> None:
    with pytest.raises(ReferenceError, match=fragment):
        parse_reference(text)
