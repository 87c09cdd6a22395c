"""Debian's licences. dpkg records none: each package declares them in usr/share/doc/<package>/copyright.

A machine-readable file (DEP-5: its first field is `Format:`) names each licence on the first line of
a `License:` field, in a Files paragraph or a stand-alone licence paragraph. A free-form file points at
the text in /usr/share/common-licenses/<name>. Both are read as syft reads them. A package whose doc
directory is a link to another package's (libgcc-s1 -> gcc-12-base) has no file of its own here, and
gets no licence: the file under the other name is that package's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .fields import decode

DOC_DIRECTORY = "usr/share/doc/"
MAX_LICENSES = 64  # per file; a longer list is cut, its first ones kept
# On bytes, each led by a literal, which the regex engine scans for: an image's copyright files hold
# megabytes (boost's alone 2 MB each), and a line-anchored pattern read them ten times slower.
_FORMAT = re.compile(rb"\A\s*(?i:format)[ \t]*:")
_LICENSE_FIELD = re.compile(rb"\n(?i:license)[ \t]*:[ \t]*([^\n]*)")  # a field starts a line; the first is Format
_COMMON_LICENSE = re.compile(rb"/usr/share/common-licenses/([A-Za-z0-9][A-Za-z0-9_.+-]*)")


@dataclass(frozen=True)
class DeclaredLicenses:
    package: str  # the binary package whose doc directory holds the file
    licenses: tuple[str, ...]


def package_of(directory: str) -> str | None:
    """`usr/share/doc/<package>/` -> the package; None for any other directory."""
    if not directory.startswith(DOC_DIRECTORY):
        return None
    package = directory[len(DOC_DIRECTORY):-1]
    return package if package and "/" not in package else None


def parse(path: str, data: bytes) -> DeclaredLicenses:
    directory = path.rpartition("/")[0] + "/"
    package = package_of(directory)
    assert package is not None, f"{path}: not a package's copyright file"  # the collector asks only for those
    if _FORMAT.match(data):
        found = [decode(value).strip() for value in _LICENSE_FIELD.findall(data)]
    else:  # "see /usr/share/common-licenses/GPL-2." ends a sentence
        found = [decode(name).rstrip(".") for name in _COMMON_LICENSE.findall(data)]
    return DeclaredLicenses(package, tuple(dict.fromkeys(name for name in found if name))[:MAX_LICENSES])
