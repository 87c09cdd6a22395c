"""What signing adds to `exchange process`, per artifact, measured against the run's own baseline.

    .venv/bin/python benchmarks/provenance.py --size-mb 512

Signing costs one extra pass over the exported tarball (its sha256, for the statement's subject) and
one envelope per artifact. This times, on a temp file of SIZE MB of incompressible bytes:
1. the baseline: sha384 of the file (what every run already hashes, while exporting);
2. the extra pass: sha256 of the file, as produce_artifact does when the run signs;
3. building, signing and verifying one envelope, with an Ed25519 and an ECDSA P-256 key.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exchange_cli.provenance.dsse import check_signatures, sign_envelope
from exchange_cli.provenance.signers import LocalKeySigner, generate_private_key
from exchange_cli.provenance.statement import build_statement, statement_bytes
from tests.test_provenance import facts


def hash_seconds(path: Path, algorithm: str) -> float:
    started = time.perf_counter()
    with path.open("rb") as stream:
        hashlib.file_digest(stream, algorithm)
    return time.perf_counter() - started


def envelope_seconds(algorithm: str, rounds: int) -> float:
    signer = LocalKeySigner.from_pem(generate_private_key(algorithm), algorithm)
    body = statement_bytes(build_statement(replace(facts())))
    started = time.perf_counter()
    for _ in range(rounds):
        assert check_signatures(sign_envelope(body, signer), [signer.public_key]).ok
    return (time.perf_counter() - started) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rootfs.tgz"
        with path.open("wb") as out:
            for _ in range(args.size_mb):
                out.write(os.urandom(1 << 20))
        hash_seconds(path, "sha384")  # warm the page cache, as the just-written export is
        baseline = min(hash_seconds(path, "sha384") for _ in range(3))
        extra = min(hash_seconds(path, "sha256") for _ in range(3))
    mb = args.size_mb
    print(f"sha384 of {mb} MB (baseline, already paid): {baseline:.2f} s ({mb / baseline:.0f} MB/s)")
    print(f"sha256 of {mb} MB (the extra pass):          {extra:.2f} s ({mb / extra:.0f} MB/s), "
          f"{extra / baseline:.2f}x the baseline")
    for algorithm in ("ed25519", "ecdsa-p256"):
        seconds = envelope_seconds(algorithm, args.rounds)
        print(f"one envelope, {algorithm:<10} build + sign + verify: {seconds * 1000:.2f} ms")


if __name__ == "__main__":
    main()
