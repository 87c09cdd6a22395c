"""The version order (exchange_cli.versions): real exchanges' version strings, and a property test that
it is a total order whatever the text."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_cli.versions import newest_first, version_key

REAL_VERSIONS = ["1.0.0_7.1.1_rc0", "1.0.0_7.1.1", "0.2.1_0.6.0", "1.4.4", "2.1.5-1", "v1.0"]


def test_a_release_candidate_sorts_below_its_release() -> None:
    assert newest_first(["1.0.0_7.1.1_rc0", "1.0.0_7.1.1", "1.0.0_7.1.1_rc1"]) == [
        "1.0.0_7.1.1", "1.0.0_7.1.1_rc1", "1.0.0_7.1.1_rc0"]
    for word in ("dev", "alpha", "beta", "pre", "rc"):
        assert version_key(f"2.0.0-{word}1") < version_key("2.0.0") < version_key("2.0.1")
        assert version_key(f"1.0.0_7.1.1_{word}0") < version_key("1.0.0_7.1.1")
    assert newest_first(["2.0.0-rc1", "2.0.0-dev3", "2.0.0-beta2", "2.0.0-pre1", "2.0.0-alpha1"]) == [
        "2.0.0-rc1", "2.0.0-pre1", "2.0.0-beta2", "2.0.0-alpha1", "2.0.0-dev3"]


def test_real_version_strings_keep_one_documented_order() -> None:
    shuffled = REAL_VERSIONS + ["0.2.1", "0.2.2", "2.1.5", "1.0", "1.0.0_7.1.0", "0.10.0", "0.9.0"]
    random.Random(7).shuffle(shuffled)
    assert newest_first(shuffled) == ["2.1.5-1", "2.1.5", "1.4.4", "1.0.0_7.1.1", "1.0.0_7.1.1_rc0", "1.0.0_7.1.0",
                                      "v1.0", "1.0", "0.10.0", "0.9.0", "0.2.2", "0.2.1_0.6.0", "0.2.1"]


def test_the_version_order_is_numeric_with_pre_releases_before_their_release() -> None:
    versions = ["0.9.0", "1.0.0", "0.10.0", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-beta", "2.0", "0.2.1_0.6.0", "0.2.1"]
    assert newest_first(versions) == ["2.0", "1.0.0", "1.0.0-rc.10", "1.0.0-rc.2", "1.0.0-beta", "0.10.0", "0.9.0",
                                      "0.2.1_0.6.0", "0.2.1"]


def test_versions_without_numbers_sort_last_but_deterministically() -> None:
    assert newest_first(["latest", "0.1.0", "beta"]) == ["0.1.0", "latest", "beta"]


# Text built from the pieces versions are made of, so that the interesting comparisons happen often.
pieces = st.sampled_from(["0", "1", "2", "10", "007", ".", "_", "-", "+", "v", "V", "rc", "RC", "a", "b", "alpha",
                          "beta", "dev", "pre", "post", "x", " ", "é"])
versions = st.one_of(st.lists(pieces, max_size=10).map("".join), st.text(max_size=12)) | st.sampled_from(REAL_VERSIONS)


@settings(max_examples=400, deadline=None)
@given(versions, versions, versions)
def test_the_order_is_total_antisymmetric_and_transitive(a: str, b: str, c: str) -> None:
    ka, kb, kc = version_key(a), version_key(b), version_key(c)  # comparing never raises: parts always compare
    assert (ka < kb) + (ka == kb) + (ka > kb) == 1  # total
    assert (ka == kb) == (a == b)  # antisymmetric: two different strings never tie
    if ka <= kb and kb <= kc:
        assert ka <= kc  # transitive
    assert newest_first([a, b, c]) == newest_first([c, a, b])  # so sorting does not depend on the input order
