"""What a command reads on a contributor's or a stranger's say-so: a source directory's links, a served
manifest's URLs, a bucket it is told to clean. None of them may reach a file, an object or a secret that
the person running the command did not choose."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exchange_cli.cli import cli
from tests.infra.gitrepo import ExchangeRepo, example_boutique, example_gear

TOKEN = "ghp_" + "S3cr3tT0k3n" * 3


def run(repo: ExchangeRepo, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--repo", str(repo.root)])


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secrets" / "token.json"
    secret.parent.mkdir()
    secret.write_text(f'{{"token": "{TOKEN}", "note": "not a gear"}}\n')
    return secret


def test_add_gear_never_follows_a_link_in_a_source_directory(exchange_repo: ExchangeRepo, tmp_path: Path,
                                                             token_file: Path) -> None:
    """Attack 6: DIR/manifest.json a link to a token file; the link was followed and the token printed."""
    source = tmp_path / "my-gear"
    source.mkdir()
    (source / "manifest.json").symlink_to(token_file)
    result = run(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 1, result.output
    assert f"{source}/manifest.json is a symbolic link" in result.output
    assert TOKEN not in result.output and "not a gear" not in result.output
    assert exchange_repo.git("status", "--porcelain") == ""


def test_add_gear_refuses_a_linked_file_and_add_boutique_a_linked_descriptor(exchange_repo: ExchangeRepo,
                                                                            tmp_path: Path, token_file: Path) -> None:
    link = tmp_path / "manifest.json"
    link.symlink_to(token_file)
    result = run(exchange_repo, "add-gear", str(link), "--org", "acme")
    assert result.exit_code == 1 and "is a symbolic link" in result.output and TOKEN not in result.output

    source = tmp_path / "my-tool"
    source.mkdir()
    (source / "descriptor.json").symlink_to(token_file)
    result = run(exchange_repo, "add-boutique", str(source), "--org", "acme")
    assert result.exit_code == 1 and "descriptor.json is a symbolic link" in result.output, result.output
    assert TOKEN not in result.output


def test_add_gear_reads_a_regular_source_directory_as_before(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    source = tmp_path / "my-gear"
    source.mkdir()
    (source / "manifest.json").write_text(__import__("json").dumps(example_gear(name="mine")))
    (source / "run").write_text("#!/bin/sh\n")
    (source / "lib").mkdir()
    result = run(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 0, result.output
    assert (exchange_repo.root / "gears/acme/mine.json").is_file()


def test_add_refuses_a_source_file_over_the_spec_limit_unread(exchange_repo: ExchangeRepo, tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.mkdir()
    with (source / "manifest.json").open("wb") as stream:
        stream.truncate(2 * 1024 * 1024)
    result = run(exchange_repo, "add-gear", str(source), "--org", "acme")
    assert result.exit_code == 1 and "over the limit" in result.output and "[spec-size]" in result.output


def test_a_boutique_whose_name_is_free_text_is_stored_under_a_grammar_stem(exchange_repo: ExchangeRepo,
                                                                          tmp_path: Path) -> None:
    source = tmp_path / "tool.json"
    source.write_text(__import__("json").dumps(example_boutique(name="../../Evil Tool\x1b[2J")))
    result = run(exchange_repo, "add-boutique", str(source), "--org", "acme")
    assert result.exit_code == 0, result.output
    (written,) = (exchange_repo.root / "boutiques" / "acme").iterdir()
    assert written.name == "evil-tool-2j.json", written.name
