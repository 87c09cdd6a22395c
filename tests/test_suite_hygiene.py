"""The suite's own rules, read from its source: no test module imports another (shared helpers live in
tests/infra or a support module), a fixture name means one thing, every xfail names the exception it
expects and is strict, component markers come from fixture use, a failing exit code is never asserted
without what was printed, and a run leaves the work tree as it found it."""

from __future__ import annotations

import ast
import functools
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.dockerd import Dockerd, mounts_under
from tests.infra.markers import COMPONENT_FIXTURES
from tests.infra.schedule import LONG_SETUP_FIXTURES
from tests.infra.worktree import WorkTree

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

# Fixture names defined in more than one module on purpose, each with its reason. Empty: every fixture
# name in the suite means one thing.
INTENDED_OVERRIDES: dict[str, str] = {}


@dataclass(frozen=True)
class Source:
    path: Path
    tree: ast.Module

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


def sources() -> Iterator[Source]:
    return iter(_parsed_sources())


@functools.cache
def _parsed_sources() -> tuple[Source, ...]:
    """Parsed once per process: the checks below only read the trees, and each parse of the suite costs
    about a second of CPU."""
    return tuple(Source(path, ast.parse(path.read_text(), str(path))) for path in sorted(TESTS.rglob("*.py")))


def modules_of_tests() -> Iterator[Source]:
    return (source for source in sources() if source.path.name.startswith("test_"))


def where(source: Source, node: ast.AST) -> str:
    return f"{source.name}:{getattr(node, 'lineno', 0)}"


# No test module imports another -----------------------------------------------------------------------


def _is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def imported_test_modules(tree: ast.Module) -> Iterator[tuple[ast.AST, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if _is_test_module(module):
                yield node, module
            else:  # `from tests import test_x`
                yield from ((node, f"{module}.{a.name}".replace("..", ".")) for a in node.names
                            if a.name.startswith("test_"))
        elif isinstance(node, ast.Import):
            yield from ((node, alias.name) for alias in node.names if _is_test_module(alias.name))


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    found = [f"{where(source, node)} imports {name}" for source in sources()
             for node, name in imported_test_modules(source.tree)]
    assert found == [], "move what is shared to tests/infra/<topic>.py:\n" + "\n".join(found)


def test_the_import_check_sees_every_spelling() -> None:
    spellings = ("from tests.test_process import World\nfrom .test_shards import fanout\nimport tests.test_storage\n"
                 "from tests import test_lease\nfrom tests.infra.stages import Stage\nimport tests.infra\n")
    assert [name for _, name in imported_test_modules(ast.parse(spellings))] == [
        "tests.test_process", ".test_shards", "tests.test_storage", "tests.test_lease"]


# A fixture name means one thing -------------------------------------------------------------------------


def fixture_name(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    for decorator in function.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        if not ast.unparse(call.func if call else decorator).endswith("fixture"):
            continue
        for keyword in call.keywords if call else []:
            if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
        return function.name
    return None


def fixture_definitions() -> dict[str, list[str]]:
    defined: dict[str, list[str]] = defaultdict(list)
    for source in sources():
        for node in ast.walk(source.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (name := fixture_name(node)):
                defined[name].append(where(source, node))
    return defined


def test_each_fixture_name_is_defined_once() -> None:
    twice = {name: places for name, places in fixture_definitions().items()
             if len(places) > 1 and name not in INTENDED_OVERRIDES}
    assert twice == {}, "one name, one meaning: rename, or list an intended override with its reason"


def test_the_tests_scheduled_first_name_fixtures_that_exist() -> None:
    """A renamed fixture would silently drop its tests back to the end of the run (tests/infra/schedule.py)."""
    assert sorted(set(LONG_SETUP_FIXTURES) - fixture_definitions().keys()) == []


def test_intended_overrides_are_still_overrides() -> None:
    defined = fixture_definitions()
    assert [name for name in INTENDED_OVERRIDES if len(defined.get(name, [])) < 2] == []


# Every xfail names what it expects, strictly ------------------------------------------------------------


def xfail_problems(source: Source) -> Iterator[str]:
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("pytest.xfail", "xfail"):
            yield f"{where(source, node)}: pytest.xfail() inside a test cannot name an exception; use the mark"
        if isinstance(node, ast.Attribute) and node.attr == "xfail" and ast.unparse(node).endswith("mark.xfail"):
            yield from _mark_problems(source, node)


def _mark_problems(source: Source, mark: ast.Attribute) -> Iterator[str]:
    call = next((n for n in ast.walk(source.tree) if isinstance(n, ast.Call) and n.func is mark), None)
    keywords = {k.arg: k.value for k in call.keywords} if call else {}
    if "raises" not in keywords:
        yield f"{where(source, mark)}: xfail without raises="
    strict = keywords.get("strict")
    if not (isinstance(strict, ast.Constant) and strict.value is True):
        yield f"{where(source, mark)}: xfail without strict=True"


def test_every_xfail_names_the_exception_it_expects_and_is_strict() -> None:
    found = [problem for source in sources() for problem in xfail_problems(source)]
    assert found == []


def test_the_xfail_check_catches_a_bare_mark() -> None:
    bare = Source(TESTS / "example.py", ast.parse(
        "@pytest.mark.xfail(reason='flaky')\ndef test_a(): pass\n"
        "@pytest.mark.xfail(raises=KeyError, strict=True)\ndef test_b(): pass\n"
        "def test_c():\n    pytest.xfail('later')\n"))
    assert [problem.split(": ", 1)[1] for problem in xfail_problems(bare)] == [
        "xfail without raises=", "xfail without strict=True",
        "pytest.xfail() inside a test cannot name an exception; use the mark"]


# Component markers come from fixture use ------------------------------------------------------------------


def hand_written_component_marks(source: Source) -> Iterator[str]:
    """`pytest.mark.docker` (registry, gcs) outside a pytest.param(marks=...): the conftest hook adds them
    from the fixture closure; a param's fixture is looked up at run time, so only it may say so itself."""
    in_params = {id(node) for call in ast.walk(source.tree) if isinstance(call, ast.Call)
                 and ast.unparse(call.func) == "pytest.param" for keyword in call.keywords if keyword.arg == "marks"
                 for node in ast.walk(keyword.value)}
    for node in ast.walk(source.tree):
        if (isinstance(node, ast.Attribute) and node.attr in COMPONENT_FIXTURES
                and ast.unparse(node.value) == "pytest.mark" and id(node) not in in_params):
            yield f"{where(source, node)}: pytest.mark.{node.attr}"


def test_component_markers_are_not_written_by_hand() -> None:
    found = [mark for source in modules_of_tests() for mark in hand_written_component_marks(source)]
    assert found == [], "the marker follows from the fixture (tests/infra/markers.py)"


def collected(*args: str) -> set[str]:
    """The tests a collection of this suite selects; the markers are the suite's own plugin's, so the
    installed plugins are not loaded (pytest_in)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
                            env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return {line.split("::", 1)[1] for line in result.stdout.splitlines() if "::" in line}


def test_a_test_is_marked_by_the_components_its_fixtures_start() -> None:
    docker = collected("-m", "docker", "tests/test_local_sources.py")
    registry = collected("-m", "registry", "tests/test_local_sources.py")
    assert "test_docker_engine_errors_name_the_image" in docker  # docker_host -> dockerd
    assert "test_auto_without_an_engine_goes_to_the_registry" in registry - docker
    assert "test_oci_layout_by_tag" not in docker | registry


# A failing exit code is asserted with what was printed ---------------------------------------------------


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def unexplained_exit_codes(source: Source) -> Iterator[str]:
    """`assert result.exit_code == 1` with nothing else read from `result`: a crash exits 1 too (CliRunner
    turns any exception into exit 1), so the test must also check the message that proves the reason."""
    for function in ast.walk(source.tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        messages = {id(node) for stmt in ast.walk(function) if isinstance(stmt, ast.Assert) and stmt.msg
                    for node in ast.walk(stmt.msg)}
        raises_with_match = {item.optional_vars.id for stmt in ast.walk(function) if isinstance(stmt, ast.With)
                             for item in stmt.items if isinstance(item.optional_vars, ast.Name)
                             and isinstance(item.context_expr, ast.Call)
                             and any(k.arg == "match" for k in item.context_expr.keywords)}
        for compare in ast.walk(function):
            if not (isinstance(compare, ast.Compare) and id(compare) not in messages
                    and isinstance(compare.left, ast.Attribute) and compare.left.attr in ("exit_code", "returncode")
                    and all(isinstance(op, ast.Eq) for op in compare.ops)
                    and all(isinstance(c, ast.Constant) and c.value not in (0, None) for c in compare.comparators)):
                continue
            name = _root_name(compare.left.value)
            if name is None or name in raises_with_match:
                if name is None:
                    yield f"{where(source, compare)}: {ast.unparse(compare)}: keep the result and check its output"
                continue
            if not _read_otherwise(function, name, messages):
                yield f"{where(source, compare)}: {ast.unparse(compare)} and nothing printed is checked"


def _read_otherwise(function: ast.FunctionDef, name: str, messages: set[int]) -> bool:
    """Whether `name` is read in `function` other than for its exit code (or in an assertion's message)."""
    exit_reads = {id(node.value) for node in ast.walk(function) if isinstance(node, ast.Attribute)
                  and node.attr in ("exit_code", "returncode", "exception")}
    return any(isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)
               and id(node) not in messages and id(node) not in exit_reads for node in ast.walk(function))


def test_no_failing_exit_code_is_asserted_alone() -> None:
    found = [problem for source in modules_of_tests() for problem in unexplained_exit_codes(source)]
    assert found == [], "\n".join(found)


def test_the_exit_code_check_tells_a_checked_message_from_none() -> None:
    example = Source(TESTS / "example.py", ast.parse(
        "def test_alone(): \n    result = run()\n    assert result.exit_code == 1, result.output\n"
        "def test_read(): \n    result = run()\n    assert result.exit_code == 1\n    assert 'x' in result.output\n"
        "def test_helper(): \n    result = run()\n    assert result.exit_code == 2\n    one_error_line(result)\n"
        "def test_inline(): \n    assert run().exit_code == 1\n"
        "def test_success(): \n    assert run().exit_code == 0\n"))
    assert [problem.split(":")[1] for problem in unexplained_exit_codes(example)] == ["3", "13"]


# A run leaves the work tree as it found it ----------------------------------------------------------------


def pytest_in(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest with the work-tree check alone: the installed plugins (Hypothesis, xdist) would only slow its
    start (0.38 s of CPU, 0.20 s without them)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.infra.worktree",
                           *args], cwd=repo, capture_output=True, text=True, env=env, check=False, timeout=300)


@pytest.fixture
def scratch_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for command in (["init", "-q"], ["config", "user.name", "T"], ["config", "user.email", "t@t.invalid"]):
        subprocess.run(["git", *command], cwd=repo, check=True)
    (repo / "kept.txt").write_text("committed\n")
    (repo / "test_writes.py").write_text(
        "import os\nfrom pathlib import Path\n\n"
        "def test_maybe_writes():\n"
        "    if os.environ.get('WRITE'):\n"
        "        Path(os.environ['WRITE']).write_text('left behind')\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "start"], cwd=repo, check=True)
    return repo


def test_a_run_that_leaves_a_file_in_the_work_tree_fails(scratch_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRITE", str(scratch_repo / "stray.out"))
    result = pytest_in(scratch_repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "the test run changed the work tree" in result.stdout and "?? stray.out" in result.stdout


def test_a_run_that_leaves_an_ignored_file_fails_but_pythons_own_caches_do_not(
        scratch_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Screenshots once went to an ignored build/ of the checkout: git status alone does not show them."""
    (scratch_repo / ".gitignore").write_text("build/\n__pycache__/\n")
    subprocess.run(["git", "add", ".gitignore"], cwd=scratch_repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "ignore"], cwd=scratch_repo, check=True)
    (scratch_repo / "build").mkdir()
    (scratch_repo / "build" / "earlier.png").write_text("an earlier run's")  # an ignored directory already there
    monkeypatch.setenv("WRITE", str(scratch_repo / "build" / "shot.png"))
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # the run writes __pycache__ beside the test
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    result = pytest_in(scratch_repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "!! build/" in result.stdout
    assert (scratch_repo / "__pycache__").is_dir() and "__pycache__" not in result.stdout


def test_a_run_that_changes_a_file_already_modified_fails(scratch_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (scratch_repo / "kept.txt").write_text("the developer's own change\n")
    monkeypatch.setenv("WRITE", str(scratch_repo / "kept.txt"))
    result = pytest_in(scratch_repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert " M kept.txt" in result.stdout


def test_a_developers_own_changes_do_not_fail_the_run(scratch_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (scratch_repo / "kept.txt").write_text("the developer's own change\n")
    (scratch_repo / "notes.txt").write_text("untracked, the developer's\n")
    monkeypatch.delenv("WRITE", raising=False)
    result = pytest_in(scratch_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "changed the work tree" not in result.stdout


def test_a_killed_test_daemon_leaves_no_mount_behind(private_dockerd: Dockerd) -> None:
    """dockerd bind-mounts its data root; killed with the test process (no `finally` runs then), that mount
    stayed under the base temp and made every later run's clean-up of old base temps fail ("Device or
    resource busy"). In a mount namespace of its own, its mounts end with it."""
    private_dockerd.process.kill()
    private_dockerd.process.wait()
    assert mounts_under(private_dockerd.root) == []


def test_the_snapshot_of_this_checkout_is_readable() -> None:
    snapshot = WorkTree.read(ROOT)
    assert snapshot is not None and snapshot.root == ROOT
    assert snapshot.changes_since(snapshot) == []


# tests/README.md maps every test module ---------------------------------------------------------------


def test_the_readme_names_every_test_module_and_only_those() -> None:
    named = set(re.findall(r"\btest_\w+", (TESTS / "README.md").read_text()))
    present = {source.path.stem for source in modules_of_tests()}
    assert (sorted(present - named), sorted(named - present)) == ([], [])
