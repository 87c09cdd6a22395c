"""The text formats package databases share: RFC 822-like stanzas (dpkg status, Python METADATA, R
DESCRIPTION) and apk's one-letter lines. Bounded and forgiving: a record is a dict of its first
occurrence of each field; a malformed line is skipped, never an error, since the files are a
contributor's. Continuation lines are joined only where a caller asks for a field's full text.
"""

from __future__ import annotations

from collections.abc import Iterator

# A record with more fields than this is not a package record; the rest of its fields are ignored.
MAX_FIELDS = 512
MAX_CONTINUED = 64  # continuation lines kept per field (a Description's are many, and none is needed)


def decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """The blank-line separated records of a Debian control-style file: each field's first value, its
    continuation lines (a wrapped R `License:`) joined on, at most MAX_CONTINUED of them."""
    record: dict[str, str] = {}
    continued: dict[str, list[str]] = {}  # joined once per record: appending to a string would be quadratic
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if record:
                yield _joined(record, continued)
            record, continued, last = {}, {}, ""
            continue
        if line[0] in " \t":
            if last and len(pieces := continued.setdefault(last, [])) < MAX_CONTINUED:
                pieces.append(line.strip())
            continue
        key, colon, value = line.partition(":")
        if not colon or len(record) >= MAX_FIELDS:
            last = ""
            continue
        last = key.strip()
        if last in record:
            last = ""  # a repeated field: its first value counts, and so do only that one's continuation lines
            continue
        record[last] = value.strip()
    if record:
        yield _joined(record, continued)


def _joined(record: dict[str, str], continued: dict[str, list[str]]) -> dict[str, str]:
    for key, pieces in continued.items():
        record[key] = " ".join([record[key], *pieces]).strip()  # a wrapped value is one value
    return record


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
