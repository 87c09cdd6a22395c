"""A model of how CircleCI orchestrates a workflow, enough to replay overlapping pipelines of our config.

What it models, as CircleCI documents it:
- a workflow entry is a job or a job group (`job-groups:`), run as one unit; `requires` takes a job's
  name with the statuses it accepts (`success` by default, a list, or `terminal`: any end state);
  a job whose requirements ended in a status it does not accept ends `not_run`;
- `serial-group` on an entry: one unit holds the group from its start until every job in it has
  ended. Priority goes to the newest pipeline: an older pipeline's unit that reaches the group while a
  newer pipeline holds it or waits for it is skipped (`not_run`), and a waiting unit is skipped when a
  newer one arrives;
- branch filters (`filters.branches.only` and `ignore`);
- an approval job (`type: approval`) is a job like the others: its outcome says whether it was approved.
Time advances in ticks; each job has a duration and an outcome given by the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

END_STATES = ("success", "failed", "canceled", "not_run", "unauthorized")


@dataclass(frozen=True)
class Unit:
    name: str
    jobs: dict[str, dict[str, frozenset[str]]]  # job -> {required job in this unit: accepted statuses}
    requires: dict[str, frozenset[str]]  # other entries of the workflow -> accepted statuses
    serial_group: str | None
    branches: frozenset[str] | None  # None: every branch
    ignored: frozenset[str] = frozenset()  # branches it never runs on


@dataclass
class Pipeline:
    number: int
    created: int
    branch: str
    outcomes: dict[str, str] = field(default_factory=dict)  # job -> how it ends when it runs (default success)
    durations: dict[str, int] = field(default_factory=dict)  # job -> ticks (default 1)


@dataclass(frozen=True)
class Run:
    pipeline: int
    job: str
    start: int | None  # None: never started
    end: int
    status: str


def accepted_statuses(value: Any) -> frozenset[str]:
    if value == "terminal":
        return frozenset(END_STATES)
    return frozenset([value] if isinstance(value, str) else value)


def parse_requires(entries: list[Any] | None) -> dict[str, frozenset[str]]:
    parsed: dict[str, frozenset[str]] = {}
    for entry in entries or []:
        if isinstance(entry, str):
            parsed[entry] = frozenset({"success"})
        else:
            ((name, statuses),) = entry.items()
            parsed[name] = accepted_statuses(statuses)
    return parsed


def _invocation(entry: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    ((name, settings),) = entry.items()
    return name, settings or {}


def workflow_units(config: dict[str, Any]) -> list[Unit]:
    (workflow,) = config["workflows"].values()
    groups = config.get("job-groups", {})
    units = []
    for entry in workflow["jobs"]:
        name, settings = _invocation(entry)
        if name in groups:
            jobs = dict(_invocation(member) for member in groups[name]["jobs"])
            inner = {job: parse_requires(member.get("requires")) for job, member in jobs.items()}
        else:
            inner = {name: {}}
        branches = (settings.get("filters") or {}).get("branches") or {}
        only, ignore = branches.get("only"), branches.get("ignore") or []
        units.append(Unit(name, inner, parse_requires(settings.get("requires")), settings.get("serial-group"),
                          None if only is None else frozenset([only] if isinstance(only, str) else only),
                          frozenset([ignore] if isinstance(ignore, str) else ignore)))
    return units


class Simulation:
    def __init__(self, units: list[Unit], pipelines: list[Pipeline]) -> None:
        self.units, self.pipelines = units, sorted(pipelines, key=lambda p: p.number)
        self.status: dict[tuple[int, str], str] = {}  # (pipeline, job) -> end state, once ended
        self.started: dict[tuple[int, str], int] = {}
        self.running: dict[tuple[int, str], int] = {}  # -> end tick
        self.unit_started: set[tuple[int, str]] = set()
        self.holder: dict[str, tuple[Pipeline, Unit]] = {}
        self.waiting: dict[str, tuple[Pipeline, Unit]] = {}
        self.ended: dict[tuple[int, str], int] = {}

    def run(self, limit: int = 200) -> list[Run]:
        for tick in range(limit):
            self._step(tick)
            if all(self._unit_done(p, u) for p in self.pipelines for u in self._units_of(p)):
                break
        else:
            raise AssertionError("the pipelines never finished")
        return sorted((Run(p, job, self.started.get((p, job)), self.ended[(p, job)], status)
                       for (p, job), status in self.status.items()), key=lambda r: (r.end, r.pipeline))

    def _units_of(self, pipeline: Pipeline) -> list[Unit]:
        return [u for u in self.units if (u.branches is None or pipeline.branch in u.branches)
                and pipeline.branch not in u.ignored]

    def _unit_done(self, pipeline: Pipeline, unit: Unit) -> bool:
        return all((pipeline.number, job) in self.status for job in unit.jobs)

    def _unit_status(self, pipeline: Pipeline, name: str) -> str | None:
        unit = next((u for u in self._units_of(pipeline) if u.name == name), None)
        if unit is None:
            return "not_run"
        if not self._unit_done(pipeline, unit):
            return None
        statuses = {self.status[(pipeline.number, job)] for job in unit.jobs}
        return "success" if statuses == {"success"} else "failed" if "failed" in statuses else statuses.pop()

    def _end(self, pipeline: Pipeline, job: str, status: str, tick: int) -> None:
        self.status[(pipeline.number, job)] = status
        self.ended[(pipeline.number, job)] = tick

    def _skip_unit(self, pipeline: Pipeline, unit: Unit, tick: int) -> None:
        self.unit_started.add((pipeline.number, unit.name))
        for job in unit.jobs:
            self._end(pipeline, job, "not_run", tick)

    def _step(self, tick: int) -> None:
        by_number = {p.number: p for p in self.pipelines}
        for key, end in list(self.running.items()):
            if end <= tick:
                del self.running[key]
                self._end(by_number[key[0]], key[1], by_number[key[0]].outcomes.get(key[1], "success"), tick)
        for group, (pipeline, unit) in list(self.holder.items()):
            if self._unit_done(pipeline, unit):
                del self.holder[group]
        for pipeline in self.pipelines:
            if pipeline.created > tick:
                continue
            for unit in self._units_of(pipeline):
                if (pipeline.number, unit.name) not in self.unit_started:
                    self._try_start_unit(pipeline, unit, tick)
        for group, (pipeline, unit) in list(self.waiting.items()):
            if group not in self.holder:
                del self.waiting[group]
                self.holder[group] = (pipeline, unit)
                self.unit_started.add((pipeline.number, unit.name))
        for pipeline in self.pipelines:
            for unit in self._units_of(pipeline):
                if (pipeline.number, unit.name) in self.unit_started:
                    self._start_jobs(pipeline, unit, tick)

    def _try_start_unit(self, pipeline: Pipeline, unit: Unit, tick: int) -> None:
        statuses = {name: self._unit_status(pipeline, name) for name in unit.requires}
        if any(status is None for status in statuses.values()):
            return
        if any(status not in unit.requires[name] for name, status in statuses.items()):
            self._skip_unit(pipeline, unit, tick)
            return
        group = unit.serial_group
        if group is None:
            self.unit_started.add((pipeline.number, unit.name))
            return
        queued = self.waiting.get(group)
        if queued is not None and queued[0] is pipeline and queued[1] is unit:
            return
        newer = [entry[0] for entry in (self.holder.get(group), queued)
                 if entry is not None and entry[0].number > pipeline.number]
        if newer:
            self._skip_unit(pipeline, unit, tick)  # a newer pipeline takes precedence
            return
        if queued is not None:
            self._skip_unit(*queued, tick)  # the older waiting unit gives way
        self.waiting[group] = (pipeline, unit)

    def _start_jobs(self, pipeline: Pipeline, unit: Unit, tick: int) -> None:
        for job, requires in unit.jobs.items():
            key = (pipeline.number, job)
            if key in self.status or key in self.running:
                continue
            statuses = {name: self.status.get((pipeline.number, name)) for name in requires}
            if any(status is None for status in statuses.values()):
                continue
            if any(status not in requires[name] for name, status in statuses.items()):
                self._end(pipeline, job, "not_run", tick)
                continue
            self.started[key] = tick
            self.running[key] = tick + pipeline.durations.get(job, 1)
