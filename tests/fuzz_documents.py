"""Fuzzing every reader of a document from outside: envelopes, statements, policy files, lease and
ownership records, manifests. Whatever the bytes, a reader returns its record or raises its own one-line
error; no other exception escapes, and memory stays bounded (the driver runs under RLIMIT_AS).

    .venv/bin/python tests/fuzz_documents.py --minutes 10     # the hunt, by hand (docs/testing.md)
    .venv/bin/python tests/fuzz_documents.py --examples 300   # what tests/test_fuzz_documents.py runs in CI

Each reader is fed three kinds of input: arbitrary bytes, arbitrary JSON/YAML-shaped values, and a
real document with one subtree replaced by an arbitrary value (the shapes that get past the first checks).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exchange_cli.errors import ExchangeError
from exchange_cli.manifests import parse_manifest
from exchange_cli.ownership import Ownership
from exchange_cli.provenance.dsse import EnvelopeError, parse_envelopes, sign_envelope
from exchange_cli.provenance.signers import LocalKeySigner, generate_private_key
from exchange_cli.provenance.statement import StatementError, build_statement, read_statement, statement_bytes
from exchange_cli.storage.lease import LeaseRecord
from exchange_cli.validation.policy import parse_policy
from tests.infra.publication import facts

MEMORY_LIMIT = 1536 * 1024 * 1024  # bytes of address space: the readers' caps keep them far below

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=50),
                    st.sampled_from(["NaN", "Infinity", "\ud800", "9" * 5000, "[" * 200, "&a", "*a"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=5)),
                      max_leaves=30)
raw = st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(lambda text: text.encode("utf-8", "surrogatepass")),
                st.integers(1, 200_000).map(lambda depth: b"[" * depth), st.integers(1, 5000).map(lambda n: b"9" * n))

SIGNER = LocalKeySigner.from_pem(generate_private_key("ed25519"), "fuzz")
STATEMENT = build_statement(facts())


def replace_somewhere(document: object, path: list[int], value: object) -> object:
    """`document` with the subtree that `path` picks (indexes into keys or items, wrapped) set to `value`."""
    if not path or not isinstance(document, (dict, list)) or not document:
        return value
    copy = json.loads(json.dumps(document))
    keys = list(copy) if isinstance(copy, dict) else list(range(len(copy)))
    key = keys[path[0] % len(keys)]
    copy[key] = replace_somewhere(copy[key], path[1:], value)
    return copy


def mutated(document: object) -> st.SearchStrategy[object]:
    return st.builds(replace_somewhere, st.just(document), st.lists(st.integers(0, 50), max_size=6), values)


def as_bytes(value: object) -> bytes:
    try:
        return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return b"{}"


def expect(reader: Callable[[bytes], object], allowed: tuple[type[BaseException], ...]) -> Callable[[bytes], None]:
    def check(data: bytes) -> None:
        try:
            reader(data)
        except allowed as error:
            assert "\n" not in str(error) or isinstance(error, ExchangeError), repr(error)
    return check


CHECKS: dict[str, tuple[Callable[[bytes], None], st.SearchStrategy[bytes]]] = {
    "envelope": (expect(lambda data: parse_envelopes(data, "fuzz.intoto.jsonl"), (EnvelopeError,)),
                 st.one_of(raw, values.map(as_bytes),
                           mutated(sign_envelope(statement_bytes(STATEMENT), SIGNER).as_json()).map(as_bytes))),
    "statement": (expect(read_statement, (StatementError,)),
                  st.one_of(raw, values.map(as_bytes), mutated(STATEMENT).map(as_bytes))),
    "policy": (expect(lambda data: parse_policy(data.decode("utf-8", "replace"), ".exchange.yaml"), (ExchangeError,)),
               st.one_of(raw, values.map(as_bytes),
                         st.text(alphabet="ab:-[]{}&*!|>'\"\n #0123456789\t\0", max_size=400).map(str.encode))),
    "lease": (expect(LeaseRecord.parse, ()),
              st.one_of(raw, values.map(as_bytes), mutated(json.loads(LeaseRecord.parse(
                  b'{"token":"t","owner":{"host":"h","boot_id":"b","pid_namespace":"n","pid":1,"started":""},'
                  b'"purpose":"p","expires":1}').as_bytes())).map(as_bytes))),  # type: ignore[union-attr]
    "ownership": (expect(Ownership.parse, ()), st.one_of(raw, values.map(as_bytes))),
    "manifest": (expect(lambda data: parse_manifest("manifests/acme/x.json", data), ()),
                 st.one_of(raw, values.map(as_bytes),
                           mutated({"gear": {"name": "x", "version": "1"}, "exchange": {"rootfs-hash": "sha384:0"}})
                           .map(as_bytes))),
}


def fuzzed(check: Callable[[bytes], None], strategy: st.SearchStrategy[bytes], *, count: int,
           derandomize: bool) -> Callable[[], None]:
    """`check` as a hypothesis test of `count` examples drawn from `strategy`."""

    @settings(max_examples=count, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(data: bytes) -> None:
        check(data)

    return one


def run(examples: int | None, minutes: float | None) -> dict[str, int]:
    """Every check, `examples` times each, or round after round until `minutes` have passed."""
    deadline = time.monotonic() + minutes * 60 if minutes else None
    ran: dict[str, int] = dict.fromkeys(CHECKS, 0)
    while True:
        for name, (check, strategy) in CHECKS.items():
            count = examples or 500
            fuzzed(check, strategy, count=count, derandomize=deadline is None)()
            ran[name] += count
        if deadline is None or time.monotonic() > deadline:
            return ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, help="examples per reader (one round)")
    parser.add_argument("--minutes", type=float, help="keep going, round after round, this long")
    options = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, resource.getrlimit(resource.RLIMIT_AS)[1]))
    ran = run(options.examples, options.minutes)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps({"examples": ran, "peak-rss-mib": peak, "memory-limit-mib": MEMORY_LIMIT // 2**20}))


if __name__ == "__main__":
    main()
