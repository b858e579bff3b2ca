"""``arrive demo --rollout``: two candidates trained beside production, then rolled out
in turn during the live replay (:mod:`arrive.demo.rollout`), and the report's timeline.

* The better candidate is retrained on the training and validation orders (``refit``:
  the most recent orders before the test days), production on the training orders only.
* The broken candidate is trained with its label shifted by +30 %
  (:attr:`arrive.training.pipeline.TrainConfig.label_scale`); its offline evaluation uses
  the true label, so its P50 MAE shows how much worse it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

import click
import msgspec
import polars as pl
from rich.console import Console

from arrive.cli.progress import progress
from arrive.errors import DataError, InternalError, RegistryError
from arrive.registry import LocalRegistry
from arrive.training.pipeline import TrainConfig, run_training

_console = Console(highlight=False, stderr=True)
BROKEN_LABEL_SCALE: Final = 1.3


@dataclass(frozen=True)
class Candidate:
    """A registered candidate: its version, what it is, its offline P50 MAE (seconds)."""

    version: str
    what: str
    mae_s: float


def train_candidates(
    data_dir: Path, workdir: Path, registry_dir: Path, quiet: bool
) -> list[Candidate]:
    """Train and register the better and the broken candidate (in that order)."""
    registry = LocalRegistry(registry_dir)
    recipes = (
        ("better", "retrained on the training and validation orders", TrainConfig(refit=True)),
        (
            "broken",
            f"trained with its label shifted by {BROKEN_LABEL_SCALE - 1:+.0%}",
            TrainConfig(label_scale=BROKEN_LABEL_SCALE),
        ),
    )
    try:
        production = registry.get("production")
    except RegistryError:
        raise DataError(
            "--rollout: the demo's model failed the promotion gate (see above), so there "
            "is no production version to roll candidates out against"
        ) from None
    _say(
        f"production version {production.version}: offline P50 MAE "
        f"{production.metrics['mae_s'] / 60:.2f} min",
        quiet,
    )
    found = []
    with progress(quiet=quiet) as bar:
        for name, what, base in recipes:
            config = dataclasses.replace(base, select_groups=False, report=False)
            task = bar.add_task(f"training the {name} candidate", total=None)
            result = run_training(data_dir, workdir / "candidates" / name, config, registry)
            bar.update(task, total=1, completed=1)
            if result.version is None:
                raise InternalError(f"the {name} candidate was not registered")
            candidate = Candidate(result.version, what, float(result.metrics["mae_s"]))
            found.append(candidate)
            _say(
                f"candidate version {candidate.version} ({name}, {what}): offline P50 MAE "
                f"{candidate.mae_s / 60:.2f} min",
                quiet,
            )
    return found


def live(
    data_dir: Path,
    registry_dir: Path,
    workdir: Path,
    candidates: list[Candidate],
    limit: int | None,
    quiet: bool,
    with_vendor: bool,
) -> None:
    """Replay the test days while the candidates are rolled out; print one line per
    rollout and write the live report with its rollout timeline."""
    from arrive.demo import live as replay_live
    from arrive.demo import providers, report, rollout_report
    from arrive.demo.rollout import RolloutDemo, run_rollouts
    from arrive.models.artifact import ModelBundle
    from arrive.monitoring import outcome
    from arrive.serving.settings import ServeSettings

    registry = LocalRegistry(registry_dir)
    served = registry.open("production")
    control = served.version.version
    start = datetime.fromisoformat(served.version.metrics["test_start"])
    plan = replay_live.plan_live(data_dir, start, limit)
    log_dir = workdir / "predictions"
    shutil.rmtree(log_dir, ignore_errors=True)
    settings = ServeSettings(
        registry_dir=registry_dir,
        prediction_log_dir=log_dir,
        compile_cache_dir=workdir / "compiled",
        reload_interval_s=0.25,  # a promoted candidate becomes the served production
        # three models loaded in turn: compiling each (LLVM, minutes of CPU on a busy
        # machine) would cost more than the whole replay; the trees answer directly
        compile_backend="none",
        # the replay waits for the shadow rows at each evaluation: score them at once
        shadow_linger_ms=0,
    )
    demo = RolloutDemo([c.version for c in candidates])
    _say(
        f"serving version {control}; replaying the test days with "
        f"{len(candidates)} rollouts in turn",
        quiet,
    )
    with contextlib.ExitStack() as stack, progress(quiet=quiet) as bar:
        before = None
        if with_vendor:
            from arrive.testing.servers.vendor_sim import VendorProcess

            vendor = stack.enter_context(VendorProcess(data_dir))
            settings = msgspec.structs.replace(
                settings, providers=providers.providers_table(vendor.url)
            )
            timeline = providers.ProviderTimeline()
            before = lambda moment: providers.step(vendor, timeline, moment)  # noqa: E731
        task = bar.add_task("live replay with rollouts", total=len(plan.orders))
        replayed = run_rollouts(
            plan,
            settings,
            demo,
            data_dir,
            on_progress=lambda done, _: bar.update(task, completed=done),
            before_order=before,
        )
    answers = replayed.answers
    others = answers.filter(
        pl.col("model_version").is_not_null() & (pl.col("model_version") != control)
    )
    result = outcome.join_outcomes(
        answers, data_dir, ModelBundle.from_files(served.files), exclude=set(others["order_id"])
    )
    first = plan.orders[0].event_time
    path = report.write_live_report(
        workdir / "live" / "report.html",
        result,
        facts={
            "model version at the start": control,
            "candidates": ", ".join(f"{c.version} ({c.what})" for c in candidates),
            "split": "time-based (the replayed days are the models' test days)",
            "replayed from": first.isoformat(),
            "orders sent": f"{len(plan.orders):,}",
        },
        feature_importance=ModelBundle.from_files(served.files).model.feature_importance(),
        timezone=plan.timezone,
        notes=[
            "Rollouts ran during the replay: the online-offline comparison covers the "
            f"orders version {control} answered; the other orders were answered by a "
            "candidate (see Rollouts)."
        ],
        extra_sections=[rollout_report.section(replayed, first)],
    )
    answers.write_parquet(workdir / "live" / "answers.parquet")
    lines = [
        *report.summary_lines(result),
        *(rollout_report.summary_line(replayed, r, first) for r in replayed.rollouts),
    ]
    click.echo("\n".join([*lines, f"live report: {path}"]))
    if not result.agreement.holds:
        raise InternalError(
            "the service's answers and the offline evaluation of the same model disagree "
            f"beyond {outcome.AGREEMENT_TOLERANCE:.1%}; see {path}"
        )


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        _console.print(f"[bold]arrive demo[/]: {message}")
