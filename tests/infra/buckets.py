"""`under_test`: a Bucket to test, on a local directory or (marked gcs) on the GCS emulator, with a second
client of the same bucket and a way to store objects as another tool would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange_cli.storage.bucket import Bucket, open_bucket

# For tests that take the bucket by `indirect` parametrization.
RACE_PARAMS = ["local", pytest.param("gcs", marks=pytest.mark.gcs)]


@dataclass
class BucketUnderTest:
    kind: str
    bucket: Bucket
    reopen: Callable[[], Bucket]  # a second, independent client of the same bucket: "another writer"
    plant: Callable[[str, bytes], None]  # store bytes as another tool would: no sha384 recorded
    local_root: Path | None = None


@pytest.fixture(params=RACE_PARAMS)
def under_test(request: pytest.FixtureRequest, tmp_path: Path) -> BucketUnderTest:
    if request.param == "local":
        root = tmp_path / "bucket"
        uri = root.as_uri()

        def plant_file(name: str, data: bytes) -> None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)

        return BucketUnderTest("local", open_bucket(uri), lambda: open_bucket(uri), plant_file, root)
    # A prefix, so every test also checks that names map to keys under it and back.
    uri = request.getfixturevalue("gcs_bucket_uri") + "/exchange/test"

    def plant_object(name: str, data: bytes) -> None:
        from google.cloud import storage

        bucket_name = uri.removeprefix("gs://").split("/")[0]
        storage.Client(project=None).bucket(bucket_name).blob(f"exchange/test/{name}").upload_from_string(data)

    return BucketUnderTest("gcs", open_bucket(uri), lambda: open_bucket(uri), plant_object)
