"""``arrive serve`` with a travel-time vendor configured, against the simulated vendor in
its own process: answers carry ``travel_source``, a vendor outage is answered in full from
the cache, grace or the built-in estimate while the breaker opens, and the vendor serves
again once it is back. The provider metrics show on the service's ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import simulate, write_simulation
from arrive.testing.servers.eta_service import ServiceProbe
from arrive.testing.servers.vendor_sim import VendorProcess

VENDOR = "simvendor"
FALLBACK_SOURCES = {"cache", "grace", "builtin"}


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VendorProcess]:
    directory = tmp_path_factory.mktemp("vendor-market")
    write_simulation(simulate(SimulationConfig(seed=5, days=1, orders_per_day=50)), directory)
    with VendorProcess(directory) as process:
        yield process


@pytest.fixture(scope="module")
def service(
    vendor: VendorProcess,
    start_module_service: Any,
    fault_data: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServiceProbe:
    config = tmp_path_factory.mktemp("provider-config") / "serve.toml"
    config.write_text(
        f'[providers.travel.{VENDOR}]\nkind = "osrm"\nurl = "{vendor.url}"\ntimeout_ms = 300\n',
        encoding="utf-8",
    )
    return start_module_service(
        {
            "ARRIVE_REPLAY_DIR": str(fault_data.data_dir),
            "ARRIVE_PROVIDER_BREAKER_OPEN_S": "1",
            "ARRIVE_DEADLINE_MS": "500",
        },
        args=("--config", str(config)),
    )


def sources(service: ServiceProbe, orders: list[dict[str, Any]]) -> list[str]:
    answers = [service.eta(order) for order in orders]
    assert all(answer["fallback"] is None for answer in answers), answers
    return [answer["travel_source"] for answer in answers]


def test_answers_say_the_vendor_then_the_cache_answered(
    service: ServiceProbe, vendor: VendorProcess, fault_data: Any
) -> None:
    vendor.clear_faults()
    order = fault_data.orders[0]
    assert sources(service, [order, order]) == [VENDOR, "cache"]
    assert service.metric("arrive_provider_calls_total", provider=VENDOR) >= 1
    assert service.metric("arrive_provider_answers_total", source="cache") >= 1


def test_an_outage_is_answered_in_full_opens_the_breaker_and_recovers(
    service: ServiceProbe, vendor: VendorProcess, fault_data: Any
) -> None:
    vendor.clear_faults()
    cached = fault_data.orders[1]
    assert sources(service, [cached]) == [VENDOR]
    vendor.set_faults(error_rate=1.0)
    fresh = fault_data.orders[2:20]  # not asked before: misses the vendor cannot fill
    during = sources(service, [cached, *fresh])
    assert during[0] == "cache"
    assert set(during) <= FALLBACK_SOURCES, during
    assert service.metric("arrive_provider_breaker_state", provider=VENDOR) == 1  # open
    assert service.metric("arrive_provider_errors_total", provider=VENDOR, reason="http_5xx") >= 1
    refused = service.metric("arrive_provider_errors_total", provider=VENDOR, reason="breaker_open")
    assert refused >= 1
    vendor.clear_faults()
    service.wait(
        lambda: VENDOR in sources(service, fresh[-5:]), "the vendor answers again", timeout_s=20
    )
    assert service.metric("arrive_provider_breaker_state", provider=VENDOR) == 0  # closed
