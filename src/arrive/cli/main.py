"""Entry point of the ``arrive`` command.

Each command lives in its own module; this one wires them into one group and
translates errors: a user's mistake prints one line and exits 2, never a
traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import ClassVar

import click
from rich.console import Console

from arrive import cores
from arrive.errors import ArriveError

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs (fast ``--help``)."""

    COMMANDS: ClassVar[dict[str, str]] = {
        "demo": "arrive.cli.demo_cmd:command",
        "backfill": "arrive.cli.backfill_cmd:command",
        "import": "arrive.cli.import_cmd:command",
        "ingest": "arrive.cli.ingest_cmd:command",
        "models": "arrive.cli.models_cmd:command",
        "monitor": "arrive.cli.monitor_cmd:command",
        "parity": "arrive.cli.parity_cmd:command",
        "providers": "arrive.cli.providers_cmd:command",
        "rollout": "arrive.cli.rollout_cmd:command",
        "retrain": "arrive.cli.retrain_cmd:command",
        "score": "arrive.cli.score_cmd:command",
        "serve": "arrive.cli.serve_cmd:command",
        "train": "arrive.cli.train_cmd:command",
        "validate": "arrive.cli.validate_cmd:command",
        "simulate": "arrive.cli.simulate_cmd:command",
        "slo": "arrive.cli.slo_cmd:command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        module = __import__(module_name, fromlist=[attr])
        command: click.Command = getattr(module, attr)
        return command


def _set_threads(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--threads``: before the command's module (and so LightGBM and Polars) is imported."""
    if value is not None:
        os.environ[cores.THREADS_ENV] = str(cores.parse_threads(value, "--threads"))
        cores.prepare_environment()


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="arrive")
@click.option(
    "--threads",
    callback=_set_threads,
    is_eager=True,
    expose_value=False,
    metavar="N",
    help="Threads for training, compiling and data work [ARRIVE_THREADS; default: the cores "
    "this process may use (affinity and cgroup quota)].",
)
def cli() -> None:
    """Arrive: calibrated P50/P90 delivery ETAs from live features."""
    cores.threads()  # an invalid ARRIVE_THREADS stops here, in one line


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit with its code (2 for user errors)."""
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        _stderr.print("aborted")
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except ArriveError as exc:
        _stderr.print(f"[bold red]error:[/] {exc}", markup=True)
        return exc.exit_code
    except KeyboardInterrupt:
        _stderr.print("interrupted")
        return 130
    return result if isinstance(result, int) else 0
