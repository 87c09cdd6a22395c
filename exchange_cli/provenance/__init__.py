"""Signed provenance: an in-toto Statement v1 with a SLSA Provenance v1 predicate for each published
artifact, in a DSSE envelope signed with the exchange's key, and the checks a consumer runs on it.

statement.py builds and reads the statement, dsse.py signs and verifies envelopes, keys.py holds
public keys and their ids, signers.py the private side (a PEM key or Google Cloud KMS), verify.py
the end-to-end check behind `exchange verify`.
"""
