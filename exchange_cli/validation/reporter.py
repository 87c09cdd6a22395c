"""Renders a validation `Report`: rich tables, plain lines for CI and editors, JSON, JUnit XML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from ..durable import write_atomically
from ..quoting import printable, short_text
from .problems import Problem, Report, Severity, SpecResult, Status


def problem_line(path: str, problem: Problem) -> str:
    """``path:line:col: error[rule-id]: message (at /pointer)``: the shape compilers use."""
    place = path if problem.line is None else f"{path}:{problem.line}:{problem.column}"
    pointer = f" (at {_shown(problem.pointer)})" if problem.pointer else ""
    return f"{place}: {problem.severity.value}[{problem.rule}]: {problem.message}{pointer}"


def _shown(text: str | None) -> str | None:
    """A pointer, name or version from the spec, cut short: a key or name can be megabytes long."""
    return short_text(text) if text is not None else None


# Per spec, in text, rich and JUnit: a spec whose 10,000 array items each break a rule would otherwise flood
# a CI log with 10,000 lines. JSON, read by programs, lists every problem.
PROBLEMS_SHOWN = 50


def shown_problems(result: SpecResult, problems: list[Problem] | None = None) -> tuple[list[Problem], str | None]:
    """The problems to print for `result` (errors first, as they are reported), and the line that says how
    many more there are, if any."""
    problems = result.problems if problems is None else problems
    if len(problems) <= PROBLEMS_SHOWN:
        return problems, None
    hidden = len(problems) - PROBLEMS_SHOWN
    return problems[:PROBLEMS_SHOWN], (f"{result.display_path}: {hidden:,} more problem(s) not shown "
                                       "(--format json lists every one)")


def render_text(report: Report, stream: TextIO) -> None:
    for result in report.results:
        problems, more = shown_problems(result)
        for problem in problems:
            print(printable(problem_line(result.display_path, problem)), file=stream)
        if more:
            print(printable(more), file=stream)
    print(report.summary, file=stream)


def report_as_json(report: Report) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "summary": {status.value: report.count(status) for status in Status} | {"total": len(report.results)},
        "results": [_result_as_json(result) for result in report.results],
    }


def _result_as_json(result: SpecResult) -> dict[str, Any]:
    return {
        "path": result.display_path,
        "kind": result.kind,
        "org": result.org,
        "name": _shown(result.name),
        "version": _shown(result.version),
        "status": result.status.value,
        "problems": [
            {"rule": p.rule, "severity": p.severity.value, "message": p.message, "pointer": _shown(p.pointer),
             "line": p.line, "column": p.column}
            for p in result.problems
        ],
    }


def render_json(report: Report, stream: TextIO) -> None:
    # One write: json.dump writes each token on its own, half a million writes for a spec of 10,000 problems.
    stream.write(json.dumps(report_as_json(report), indent=2) + "\n")


def render_rich(report: Report, stream: TextIO) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from ..terminal import console as make_console

    console = make_console(stream)
    styles = {Status.PASSED: "green", Status.FAILED: "bold red", Status.PROCESSED: "cyan"}
    for result in report.results:
        label = f"{result.kind or 'file'} {_shown(result.name) or ''} {_shown(result.version) or ''}".strip()
        # Paths, names and messages quote the contributor's text: never markup (a "[/x]" in it would raise).
        console.print(f"[{styles[result.status]}]{result.status.value:>9}[/] {escape(printable(result.display_path))}  "
                      f"[dim]{escape(printable(label))}[/]")
        if not result.problems:
            continue
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1), pad_edge=False)
        for column in ("where", "rule", "at", "message"):
            table.add_column(column, overflow="fold")
        problems, more = shown_problems(result)
        for problem in problems:
            where = f"{problem.line}:{problem.column}" if problem.line else ""
            rule_style = {Severity.ERROR: "red", Severity.WARNING: "yellow"}.get(problem.severity, "cyan")
            table.add_row(where, Text(problem.rule, style=rule_style), Text(printable(_shown(problem.pointer) or "")),
                          Text(printable(problem.message)))
        console.print(table)
        if more:
            console.print(Text(printable(more), style="dim"))
    style = "green" if report.ok else "bold red"
    console.print(f"[{style}]{report.summary}[/]")


def write_junit(report: Report, path: Path, *, suite_name: str = "exchange validate") -> None:
    """One test case per spec, so CI test summaries show failures per spec."""
    import xml.etree.ElementTree as ET  # only for --junit-xml

    suite = ET.Element("testsuite", name=suite_name, tests=str(len(report.results)),
                       failures=str(report.count(Status.FAILED)), errors="0", skipped="0")
    for result in report.results:
        classname = ".".join(part for part in (result.kind, result.org) if part) or "spec"
        case = ET.SubElement(suite, "testcase", classname=classname, name=result.display_path)
        if result.status is Status.FAILED:
            errors = result.errors
            failure = ET.SubElement(case, "failure", message=f"{len(errors)} problem(s): {errors[0].message}",
                                    type=errors[0].rule)
            shown, more = shown_problems(result, errors)
            failure.text = "\n".join([*(problem_line(result.display_path, p) for p in shown), *([more] if more else [])])
        elif result.status is Status.PROCESSED:
            ET.SubElement(case, "system-out").text = "already processed"
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    write_atomically(path, ET.tostring(suites, encoding="utf-8", xml_declaration=True))


def render(report: Report, output_format: str, stream: TextIO) -> None:
    """`auto`: rich tables on a terminal, plain lines (for CI logs and editors) otherwise."""
    if output_format == "auto":
        output_format = "rich" if stream.isatty() else "text"
    {"rich": render_rich, "text": render_text, "json": render_json}[output_format](report, stream)
