"""The judge of a Debian package's licences, in POSIX shell, not in our Python: what each package's
/usr/share/doc/<package>/copyright declares, read with sed and grep. A machine-readable file (its first
line a `Format:` field) names them on its `License:` lines; a free-form one points at
/usr/share/common-licenses/<name>. A doc directory or copyright file that is a symbolic link is skipped:
a rootfs holds no copyright file of its own for that package (its file is another package's), and the
SBOM reads only regular files.

Run it with the package names as arguments, under `sh -c JUDGE sh NAME...` (in a container of the image,
or on this machine); it prints `<package>\\t<licence>` lines.
"""

from __future__ import annotations

JUDGE = r"""
for package in "$@"; do
  file=/usr/share/doc/$package/copyright
  { [ -L "/usr/share/doc/$package" ] || [ -L "$file" ] || [ ! -f "$file" ]; } && continue
  if head -n 1 "$file" | grep -qi '^[[:space:]]*format[[:space:]]*:'; then
    sed -n 's/^[Ll][Ii][Cc][Ee][Nn][Ss][Ee][[:space:]]*:[[:space:]]*//p' "$file"
  else
    grep -o '/usr/share/common-licenses/[A-Za-z0-9][A-Za-z0-9_.+-]*' "$file" | sed 's|.*/||; s/\.*$//'
  fi | sed 's/[[:space:]]*$//' | grep -v '^$' | sed "s|^|$package	|"
done
"""


def declared(judge_output: str) -> set[tuple[str, str]]:
    """The judge's lines as (package, licence) pairs; licences compared without case (the SBOM's library
    writes a known SPDX id in its own case: BSD-3-clause is BSD-3-Clause)."""
    pairs = set()
    for line in judge_output.splitlines():
        package, _, licence = line.partition("\t")
        pairs.add((package, licence.lower()))
    return pairs


def in_sbom(components: list[dict]) -> set[tuple[str, str]]:
    """The same pairs from a CycloneDX document's Debian components."""
    pairs = set()
    for component in components:
        if not component.get("purl", "").startswith("pkg:deb/"):
            continue
        for choice in component.get("licenses", []):
            text = choice.get("expression") or choice["license"].get("id") or choice["license"].get("name")
            pairs.add((component["name"], text.lower()))
    return pairs
