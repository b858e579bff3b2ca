"""Running the simulated vendor: the app over a market and a fault plan, served by uvicorn."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from arrive.clock import SystemClock
from arrive.testing.vendor.app import VendorState, create_app
from arrive.testing.vendor.faults import FaultPlan, Faults
from arrive.testing.vendor.market import SimulatedMarket


def serve(
    data_dir: Path,
    host: str,
    port: int,
    faults: Faults,
    key: str | None = None,
    seed: int | None = None,
) -> None:
    """Serve the vendor of ``data_dir`` on ``host``:``port`` until interrupted."""
    clock = SystemClock()
    state = VendorState(SimulatedMarket(data_dir), FaultPlan(faults, clock, seed), clock, key)
    config = uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        lifespan="off",
    )
    print(f"simulated vendor on http://{host}:{port} (faults: POST /_faults)", file=sys.stderr)
    uvicorn.Server(config).run()
