"""The text formats package databases share: RFC 822-like stanzas (dpkg status, Python METADATA, R
DESCRIPTION) and apk's one-letter lines. Bounded and forgiving: a record is a dict of its first
occurrence of each field; a malformed line is skipped, never an error, since the files are a
contributor's. Continuation lines are joined only where a caller asks for a field's full text.
"""

from __future__ import annotations

from collections.abc import Iterator

# A record with more fields than this is not a package record; the rest of its fields are ignored.
MAX_FIELDS = 512


def decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """The blank-line separated records of a Debian control-style file, each field's first line only
    (with its continuation lines for a field that needs them: see `continued`)."""
    record: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if record:
                yield record
            record, last = {}, ""
            continue
        if line[0] in " \t":
            if last:
                record[last] += "\n" + line.strip()
            continue
        key, colon, value = line.partition(":")
        if not colon or len(record) >= MAX_FIELDS:
            last = ""
            continue
        last = key.strip()
        record.setdefault(last, value.strip())
    if record:
        yield record


def headers(text: str) -> dict[str, list[str]]:
    """RFC 822 headers (Python core metadata) up to the first blank line: every value of each field."""
    found: dict[str, list[str]] = {}
    count = 0
    for line in text.splitlines():
        if not line.strip():
            break
        if line[0] in " \t" or count >= MAX_FIELDS:
            continue
        key, colon, value = line.partition(":")
        if colon:
            count += 1
            found.setdefault(key.strip().lower(), []).append(value.strip())
    return found


def apk_records(text: str) -> Iterator[dict[str, str]]:
    """lib/apk/db/installed: blank-line separated records of `X:value` lines (first of each letter kept)."""
    record: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            if record:
                yield record
            record = {}
            continue
        if len(line) >= 2 and line[1] == ":":
            record.setdefault(line[0], line[2:])
    if record:
        yield record
