"""``arrive demo``: the whole flow on the embedded default, in one command.

Imports the Food Delivery data when a copy is at hand (``--data``,
``ARRIVE_DEMO_DATA``, or one of the usual places), else simulates a
marketplace, so a fresh clone runs it with nothing beside it. Then it builds
point-in-time features, trains and calibrates a P50/P90 model on the earlier
weeks, evaluates it on the latest days against the heuristic, writes the HTML
report, registers the model and promotes it to ``production`` when it passes
the promotion gate. Then it starts the ETA service on loopback and replays the
latest days as live traffic: events flow through ingest into the in-process
online store, each order asks the service for its ETA at its creation time, and
each answer is joined to the delivery. The live report compares the service's
answers with an offline evaluation of the same model on the same orders. No
external service is needed. With ``--inject FAULT`` (repeatable), a fault is switched on
for a stretch of the replay and the report shows the generated alert that catches it
going pending, firing, then resolving (:mod:`arrive.demo.inject`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import click
import msgspec
from rich.console import Console

from arrive.cli import import_cmd, simulate_cmd, train_cmd
from arrive.cli.progress import progress
from arrive.demo.inject import FAULTS
from arrive.demo.providers import INJECTION as PROVIDER_OUTAGE
from arrive.errors import ConfigError, InternalError, PromotionRefused
from arrive.registry import LocalRegistry, promote

_console = Console(highlight=False, stderr=True)
#: Where the demo looks for the Food Delivery CSV, relative to the working directory.
CANDIDATES: Final = (
    Path("../shared/data/food_delivery.csv.gz"),
    Path("shared/data/food_delivery.csv.gz"),
    Path("data/food_delivery.csv.gz"),
)


def _faults_epilog() -> str:
    """The faults of ``--inject``, one a line (``\\b`` keeps click from reflowing them)."""
    width = max(map(len, [*FAULTS, PROVIDER_OUTAGE]))
    lines = [f"  {name:<{width}}  {fault.summary}" for name, fault in FAULTS.items()]
    lines.append(
        f"  {PROVIDER_OUTAGE:<{width}}  the simulated travel-time vendor answers 503 for 30 "
        "minutes; the report shows the breaker and the chain's sources (needs --simulate)"
    )
    return "\b\nFaults for --inject (replay time; see docs/monitoring.md):\n" + "\n".join(lines)


@click.command("demo", epilog=_faults_epilog())
@click.option(
    "--data",
    "data_csv",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ARRIVE_DEMO_DATA",
    show_envvar=True,
    help="The Food Delivery CSV (default: found under ../shared/data, shared/data or data; "
    "without one, a simulated marketplace is used).",
)
@click.option(
    "--simulate",
    is_flag=True,
    help="Simulate a marketplace even if the CSV is found, and serve with the simulated "
    "travel-time vendor (a child process) configured.",
)
@click.option(
    "--days",
    type=click.IntRange(2, 28),
    default=7,
    show_default=True,
    help="When simulating: days to simulate.",
)
@click.option(
    "--orders-per-day",
    type=click.IntRange(100, 100_000),
    default=4_000,
    show_default=True,
    help="When simulating: orders per day.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".arrive/demo"),
    show_default=True,
    help="Where the data, the run and the registry go.",
)
@click.option(
    "--live-orders",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Replay only the latest N orders of the test days as live traffic (default: all).",
)
@click.option("--no-live", is_flag=True, help="Stop after training: no service, no live replay.")
@click.option(
    "--inject",
    multiple=True,
    metavar="FAULT",
    callback=lambda _ctx, _param, value: _injections(value),
    help="Break FAULT for a stretch of the live replay and show the alert that catches it "
    "firing, then clearing, or (provider-outage) the provider chain answering through it "
    "(faults below; repeat for several).",
)
@click.option(
    "--rollout",
    is_flag=True,
    help="Also train two candidates (one better, one broken: its label shifted by +30 %) "
    "and roll them out in turn during the live replay, judged by the guardrails on the "
    "replayed outcomes (docs/rollout.md).",
)
@click.option(
    "--retrain",
    type=click.Choice(["daily"]),
    help="With --simulate: the drift demo instead. A regime change (rides 30 % slower) from "
    "the middle day on, a retrain at the end of every day (validated, compared with "
    "production, rolled out or refused), and a report of each day (docs/retraining.md).",
)
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.pass_context
def command(
    ctx: click.Context,
    data_csv: Path | None,
    simulate: bool,
    days: int,
    orders_per_day: int,
    workdir: Path,
    live_orders: int | None,
    no_live: bool,
    inject: tuple[str, ...],
    rollout: bool,
    retrain: str | None,
    quiet: bool,
) -> None:
    """Import (or simulate), train, evaluate, register a model, then serve it and
    replay the latest days as live traffic."""
    if rollout and (inject or no_live or retrain):
        given = "--inject" if inject else "--no-live" if no_live else "--retrain"
        raise ConfigError(f"--rollout: cannot be combined with {given}")
    if retrain is not None:
        _retrain_drift(ctx, workdir, days, orders_per_day, simulate=simulate, quiet=quiet)
        return
    data_dir, run_dir, registry_dir = workdir / "data", workdir / "run", workdir / "registry"
    data = choose_data(data_csv, simulate=simulate, days=days, orders_per_day=orders_per_day)
    if PROVIDER_OUTAGE in inject and data.csv is not None:
        raise ConfigError(f"--inject {PROVIDER_OUTAGE}: needs a simulated marketplace (--simulate)")
    with_vendor = data.csv is None and (simulate or PROVIDER_OUTAGE in inject)
    _say(f"data: {data.description}", quiet)
    if data.csv is None:
        ctx.invoke(
            simulate_cmd.command,
            out=data_dir,
            days=days,
            orders_per_day=orders_per_day,
            force=True,
            quiet=quiet,
        )
    else:
        ctx.invoke(
            import_cmd.command,
            source="food-delivery",
            input_path=data.csv,
            out=data_dir,
            force=True,
            quiet=quiet,
        )
    _say("training on the earlier orders, testing on the latest", quiet)
    ctx.invoke(
        train_cmd.command,
        data_dir=data_dir,
        run_dir=run_dir,
        registry_root=registry_dir,
        no_selection=rollout,  # the candidates must read the same features
        quiet=quiet,
    )
    _promote(registry_dir, quiet)
    _recap(data_dir, run_dir)
    if rollout:
        from arrive.cli import demo_rollout

        candidates = demo_rollout.train_candidates(data_dir, workdir, registry_dir, quiet)
        demo_rollout.live(
            data_dir, registry_dir, workdir, candidates, live_orders, quiet, with_vendor
        )
    elif not no_live:
        _live(data_dir, registry_dir, workdir, live_orders, quiet, inject, with_vendor)
    click.echo(f"data: {data.description}\n{OWN_DATA}")


#: Fewest days of ``--retrain daily`` (the drift demo).
MIN_DRIFT_DAYS: Final = 8
#: How to run the same flow on one's own data (printed at the end of the demo).
OWN_DATA: Final = (
    "your own data: write a mapping for your CSV (docs/mapping.md), then\n"
    "  arrive import my-mapping.toml my-orders.csv --out my-data\n"
    "  arrive train my-data --out my-run"
)


@dataclass(frozen=True)
class DemoData:
    """What the demo runs on: a Food Delivery CSV, or (``csv`` None) a simulation."""

    csv: Path | None
    description: str


def choose_data(given: Path | None, *, simulate: bool, days: int, orders_per_day: int) -> DemoData:
    """The CSV given, else the first found under :data:`CANDIDATES` (relative to the
    working directory), else a simulated marketplace; ``description`` says which and why.

    Raises:
        ConfigError: ``given`` is not a file.
    """
    simulated = f"a simulated marketplace ({days} days, {orders_per_day:,} orders a day)"
    if simulate:
        return DemoData(None, f"{simulated}, as asked by --simulate")
    if given is not None:
        if not given.is_file():
            raise ConfigError(f"--data {given}: no such file")
        return DemoData(given, f"the Food Delivery CSV {given}")
    found = next((path for path in CANDIDATES if path.is_file()), None)
    if found is not None:
        return DemoData(found, f"the Food Delivery CSV {found}")
    looked = ", ".join(map(str, CANDIDATES))
    return DemoData(
        None, f"{simulated}: no Food Delivery CSV in {looked} (pass --data PATH to use one)"
    )


def _promote(registry_dir: Path, quiet: bool) -> None:
    registry = LocalRegistry(registry_dir)
    latest = registry.versions()[-1].version
    try:
        promote(registry, latest, "production", reason="arrive demo")
    except PromotionRefused as refused:
        _say(f"version {latest} stays unpromoted: {refused}", quiet)
        return
    _say(f"version {latest} is now production", quiet)


def _recap(data_dir: Path, run_dir: Path) -> None:
    summary = json.loads((data_dir / "import_summary.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    improvement = 1.0 - metrics["mae_s"] / metrics["heuristic_mae_s"]
    click.echo(
        f"orders: {summary['rows_in']:,} in, {summary['rows_imported']:,} used, "
        f"{summary['rows_quarantined']:,} quarantined\n"
        f"P50 MAE {metrics['mae_s'] / 60:.2f} min vs heuristic "
        f"{metrics['heuristic_mae_s'] / 60:.2f} min "
        f"({improvement:.0%} lower); P90 coverage {metrics['coverage_p90']:.1%}; "
        f"late rate {metrics['late_rate']:.1%}; crossings {metrics['crossings']}\n"
        f"report: {run_dir / 'report.html'}"
    )


def _injections(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if value not in FAULTS and value != PROVIDER_OUTAGE:
            known = ", ".join([*FAULTS, PROVIDER_OUTAGE])
            raise ConfigError(f"--inject: unknown fault {value!r} (known: {known})")
    if len(set(values)) < len(values):
        raise ConfigError(f"--inject: a fault is given twice ({', '.join(values)})")
    return values


def _live(
    data_dir: Path,
    registry_dir: Path,
    workdir: Path,
    limit: int | None,
    quiet: bool,
    inject: tuple[str, ...] = (),
    with_vendor: bool = False,
) -> None:
    from arrive.demo import alert_report, drift, live, providers, report, skew
    from arrive.demo import inject as faults
    from arrive.models.artifact import ModelBundle
    from arrive.monitoring import outcome
    from arrive.serving.settings import ServeSettings

    registry = LocalRegistry(registry_dir)
    served = registry.open("production")
    start = datetime.fromisoformat(served.version.metrics["test_start"])
    _say(
        f"serving version {served.version.version}; replaying the test days as live traffic", quiet
    )
    plan = live.plan_live(data_dir, start, limit)
    log_dir = workdir / "predictions"
    # A fresh log per run: an earlier run's answers to the same orders would be read back
    # with this run's (by the drift and skew replays) and counted twice.
    shutil.rmtree(log_dir, ignore_errors=True)
    settings = ServeSettings(
        registry_dir=registry_dir,
        prediction_log_dir=log_dir,
        compile_cache_dir=workdir / "compiled",
        reload_interval_s=0.0,
    )
    times = [order.event_time for order in plan.orders]
    injections = faults.place([name for name in inject if name in FAULTS], times)
    travel = None
    if PROVIDER_OUTAGE in inject:
        travel = providers.ProviderTimeline(providers.middle_outage(times))
    stretches = [(one.fault.name, one.start, one.end) for one in injections]
    if travel is not None and travel.outage is not None:
        stretches.append((PROVIDER_OUTAGE, travel.outage.start, travel.outage.end))
    for name, start, end in stretches:
        _say(f"injecting {name} from {start.isoformat()} to {end.isoformat()}", quiet)
    with contextlib.ExitStack() as stack, progress(quiet=quiet) as bar:
        vendor = None
        if with_vendor:
            from arrive.testing.servers.vendor_sim import VendorProcess

            vendor = stack.enter_context(VendorProcess(data_dir))
            _say(f"simulated travel-time vendor at {vendor.url}", quiet)
            settings = msgspec.structs.replace(
                settings, providers=providers.providers_table(vendor.url)
            )
            travel = travel or providers.ProviderTimeline()
        task = bar.add_task("live replay", total=len(plan.orders))
        answers = live.run_live(
            plan,
            settings,
            on_progress=lambda done, _: bar.update(task, completed=done),
            injections=injections,
            vendor=vendor,
            travel=travel,
        )
    order_ids = answers.get_column("order_id").to_list()
    for one in injections:
        if one.fault.name == "broken-feature":
            _say("replaying the monitor's skew check around the broken feature", quiet)
            skew.replay_skew(log_dir, order_ids, data_dir, one, timezone=plan.timezone)
    bundle = ModelBundle.from_files(served.files)
    result = outcome.join_outcomes(
        answers,
        data_dir,
        bundle,
        only_model=bool(injections),
        exclude=faults.broken_orders(answers, injections),
    )
    alerts = [faults.replay_alert(one) for one in injections]
    drifted = drift.replay_drift(log_dir, {served.version.version: bundle.profile}, order_ids)
    n_test = int(served.version.metrics["n_test"])
    differ = " (the notes say why the counts differ)" if n_test != len(plan.orders) else ""
    path = report.write_live_report(
        workdir / "live" / "report.html",
        result,
        facts={
            "model version": served.version.version,
            "split": "time-based (the replayed days are the model's test days)",
            "replayed from": plan.orders[0].event_time.isoformat(),
            "orders sent": f"{len(plan.orders):,}",
            "the run's test orders": f"{n_test:,}{differ}",
        },
        feature_importance=bundle.model.feature_importance(),
        timezone=plan.timezone,
        notes=[
            report.replay_note(
                len(plan.orders),
                result.evaluation.model.n,
                n_test,
                start,
            )
        ],
        drift=drifted,
        alerts=alerts,
        extra_sections=[] if travel is None else [providers.section(travel)],
    )
    answers.write_parquet(workdir / "live" / "answers.parquet")
    lines = [*report.summary_lines(result), *map(alert_report.alert_line, alerts)]
    if travel is not None:
        lines.append(providers.summary_line(travel))
    click.echo("\n".join([*lines, f"live report: {path}"]))
    if not result.agreement.holds:
        raise InternalError(
            "the service's answers and the offline evaluation of the same model disagree "
            f"beyond {outcome.AGREEMENT_TOLERANCE:.1%}; see {path}"
        )


def _retrain_drift(
    ctx: click.Context,
    workdir: Path,
    days: int,
    orders_per_day: int,
    *,
    simulate: bool,
    quiet: bool,
) -> None:
    """``--retrain daily``: the drift demo (:mod:`arrive.demo.retrain_drift`)."""
    from arrive.demo import retrain_drift, retrain_drift_report

    if not simulate:
        raise ConfigError("--retrain daily: needs --simulate (the drift is simulated)")
    if days < MIN_DRIFT_DAYS:
        raise ConfigError(
            f"--days {days}: --retrain daily needs {MIN_DRIFT_DAYS} or more (3 days before "
            "the first retrain, served days before the drift in the middle, and after it)"
        )
    per_day = orders_per_day
    if ctx.get_parameter_source("orders_per_day") is click.core.ParameterSource.DEFAULT:
        per_day = retrain_drift.DriftScenario().orders_per_day
    scenario = retrain_drift.DriftScenario(days=days, orders_per_day=per_day)
    out = workdir / "drift"
    _say(
        f"{days} simulated days, {per_day:,} orders a day, rides "
        f"{scenario.travel_slowdown:.0%} slower from day {scenario.drift_at}; "
        f"a retrain at the end of each day from day {scenario.first_retrain_day - 1}",
        quiet,
    )
    with progress(quiet=quiet) as bar:
        task = bar.add_task("drift demo", total=None)

        def step(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        demo = retrain_drift.run_drift_demo(out, scenario, step)
    path = retrain_drift_report.write_drift_report(out / "report.html", demo)
    (out / "drift_demo.json").write_text(
        json.dumps(retrain_drift.figures_json(demo), indent=2, default=str)
    )
    click.echo("\n".join([*retrain_drift_report.console_lines(demo), f"report: {path}"]))


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        _console.print(f"[bold]arrive demo[/]: {message}")
