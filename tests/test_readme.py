"""The README leads a newcomer: two set-up commands first, short, readable in an 80-column terminal, every
word it relies on defined, and the CI secrets it sends people to are the ones the pipeline reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from exchange_cli.new_exchange import ToolRequirement, skeleton_files

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
GLOSSARY = ("spec", "org", "rootfs", "bucket", "manifest", "sentinel", "provenance", "shard / finalize")


def test_it_opens_with_the_two_set_up_commands_and_ci_runs_the_second() -> None:
    title, first_block = re.match(r"# exchange\n\n```sh\n(.*?)```", README, re.DOTALL), None
    assert title is not None, "the title, then the commands"
    first_block = title[1].splitlines()
    assert first_block == ["python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/exchange demo",
                           "./scripts/test"]
    assert "exec ./scripts/test " in (ROOT / ".ci" / "run").read_text()


def test_it_is_short_and_fits_an_80_column_terminal() -> None:
    lines = README.splitlines()
    assert len(lines) <= 150
    assert [number for number, line in enumerate(lines, 1) if len(line) > 80] == []


def test_the_words_it_uses_are_defined_before_the_task_paths() -> None:
    glossary = README[README.index("## What it is"):README.index("## Contribute a gear")]
    for word in GLOSSARY:
        assert f"- **{word}**:" in glossary, word
    for path in ("## Contribute a gear", "## Run an exchange", "## Use a gear", "## Reference"):
        assert path in README


def test_every_doc_it_links_exists() -> None:
    for target in re.findall(r"\]\(((?:docs|schemas)/[^)#]*)", README):
        assert (ROOT / target).exists(), target


def test_the_pipelines_comment_names_every_secret_the_ci_guide_asks_for() -> None:
    """The CircleCI comment listed no EXCHANGE_SIGNING_KEY; the guide and the pipeline now agree."""
    for config in ((ROOT / ".circleci" / "config.yml").read_text(),
                   skeleton_files("x", ToolRequirement("exchange-cli==0.1.0", False))[".circleci/config.yml"].decode()):
        yaml.safe_load(config)
        comment = "\n".join(line for line in config.splitlines() if line.startswith("#"))
        guide = (ROOT / "docs" / "ci.md").read_text()
        for secret in ("EXCHANGE_BUCKET_URI", "GCLOUD_SERVICE_ACCOUNT", "EXCHANGE_SIGNING_KEY",
                       "EXCHANGE_MAINTAINER_APPROVAL", "EXCHANGE_DOWNLOAD_URL"):
            assert secret in comment and secret in guide, secret
