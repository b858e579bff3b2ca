"""The provider conformance suite against every adapter, over the simulated vendor process."""

from __future__ import annotations

import pytest

from arrive.testing.provider_contract import (
    Adapter,
    TravelContract,
    VendorFaultContract,
    WeatherContract,
    simulated_travel,
    simulated_weather,
)
from arrive.testing.servers.vendor_sim import VendorProcess

VENDOR_TRAVEL = ("osrm_route", "osrm_table", "generic")


@pytest.fixture(params=[*VENDOR_TRAVEL, "builtin"])
def travel_adapter(request: pytest.FixtureRequest, vendor: VendorProcess) -> Adapter:
    return simulated_travel(vendor)[request.param]


class TestTravelContract(TravelContract):
    pass


class TestVendorFaults(VendorFaultContract):
    @pytest.fixture(params=VENDOR_TRAVEL)
    def travel_adapter(self, request: pytest.FixtureRequest, vendor: VendorProcess) -> Adapter:
        return simulated_travel(vendor)[request.param]


@pytest.fixture(params=["open_meteo"])
def weather_adapter(request: pytest.FixtureRequest, vendor: VendorProcess) -> Adapter:
    return simulated_weather(vendor)[request.param]


class TestWeatherContract(WeatherContract):
    pass
