"""Conformance suite for :class:`~arrive.providers.base.TravelTimeProvider` and
:class:`~arrive.providers.base.WeatherProvider` adapters.

Every adapter passes it unchanged, against the simulated vendor in a real process
(:class:`~arrive.testing.servers.vendor_sim.VendorProcess`). Provide fixtures and subclass::

    import pytest
    from arrive.testing.provider_contract import (
        TravelContract, VendorFaultContract, WeatherContract, simulated_travel, simulated_weather,
    )

    @pytest.fixture(params=["osrm_route", "osrm_table", "generic", "builtin"])
    def travel_adapter(request, vendor):
        return simulated_travel(vendor)[request.param]

    class TestTravel(TravelContract): ...            # every travel adapter
    class TestTravelFaults(VendorFaultContract): ... # adapters that call a vendor

:class:`TravelContract` checks the answers: valid, named, plausible, longer legs longer,
rush hour slower than night (the simulated market's traffic reaches the answer), the same
question the same answer. :class:`VendorFaultContract` injects each vendor fault of
:data:`TRAVEL_FAULTS` and each network failure and checks the reason each becomes, and that
it is counted. Every test starts with the vendor's faults
cleared and its clock pinned to a Tuesday night; adapters run on one event loop over one
shared :class:`~arrive.providers.http.VendorClient`, as in a service.
"""

from __future__ import annotations

import asyncio
import atexit
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import pytest

from arrive.providers import jsonpath, plausible
from arrive.providers.base import (
    Leg,
    ProviderError,
    TravelTime,
    TravelTimeProvider,
    Weather,
    WeatherProvider,
)
from arrive.providers.builtin import BuiltinProvider
from arrive.providers.generic import GenericFormat, GenericJsonProvider
from arrive.providers.http import VendorClient
from arrive.providers.openmeteo import OpenMeteoProvider
from arrive.providers.osrm import OsrmProvider
from arrive.testing.servers.ports import free_port
from arrive.testing.servers.vendor_sim import VendorProcess
from arrive.testing.vendor.faults import HOLD_S

#: A vendor fault (the ``POST /_faults`` rate to set to 1) and the reason it must become.
TRAVEL_FAULTS: Final = (
    ("error_rate", "http_5xx"),
    ("client_error_rate", "http_4xx"),
    ("garbage_rate", "garbage"),
    ("empty_rate", "empty"),
    ("negative_rate", "negative"),
    ("nan_rate", "not_finite"),
    ("inf_rate", "not_finite"),
    ("absurd_rate", "absurd"),
    ("wrong_shape_rate", "wrong_shape"),
    ("timeout_rate", "timeout"),
)
WEATHER_FAULTS: Final = TRAVEL_FAULTS
#: The key the simulated vendor is started with (its generic endpoint checks it).
SIM_KEY: Final = "sim-key-0123456789"
TIMEOUT_S: Final = 2.0
SHORT_TIMEOUT_S: Final = 0.3
#: Bristol, the first market of every simulation.
CENTRE: Final = (51.4545, -2.5879)
NIGHT: Final = datetime(2025, 3, 4, 3, 0, tzinfo=UTC)  # a Tuesday
RUSH: Final = datetime(2025, 3, 4, 8, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Adapter:
    """How to make one adapter: ``build(client, base_url)`` (``base_url`` None: the
    vendor's own), and the vendor it calls (None for the built-in estimate)."""

    name: str
    build: Callable[[VendorClient, str | None], Any]
    vendor: VendorProcess | None


def simulated_travel(vendor: VendorProcess) -> dict[str, Adapter]:
    """Every travel-time adapter, configured against ``vendor``."""

    def osrm(service: Any) -> Callable[[VendorClient, str | None], Any]:
        def build(client: VendorClient, url: str | None) -> Any:
            return OsrmProvider(f"osrm_{service}", client, url or vendor.url, "driving", service)

        return build

    def generic(client: VendorClient, url: str | None) -> Any:
        template = (url or vendor.url) + (
            "/generic/v1/travel?origin={origin_lat},{origin_lon}"
            "&destination={dest_lat},{dest_lon}&departure={departure}"
        )
        form = GenericFormat(
            url_template=template,
            duration_path=jsonpath.parse("data.duration_min", "duration_path"),
            duration_unit="min",
            distance_path=jsonpath.parse("data.distance_km", "distance_path"),
            distance_unit="km",
            key=SIM_KEY,
            key_in="header",
            key_name="X-Api-Key",
        )
        return GenericJsonProvider("generic", client, form)

    return {
        "osrm_route": Adapter("osrm_route", osrm("route"), vendor),
        "osrm_table": Adapter("osrm_table", osrm("table"), vendor),
        "generic": Adapter("generic", generic, vendor),
        "builtin": Adapter("builtin", lambda client, url: BuiltinProvider(), None),
    }


def simulated_weather(vendor: VendorProcess) -> dict[str, Adapter]:
    """Every weather adapter, configured against ``vendor``."""

    def build(client: VendorClient, url: str | None) -> Any:
        return OpenMeteoProvider("open_meteo", client, url or vendor.url)

    return {"open_meteo": Adapter("open_meteo", build, vendor)}


def leg(km_east: float = 3.0, at: datetime = NIGHT, km_north: float = 1.0) -> Leg:
    """A leg from the first market's centre ``km_east`` east and ``km_north`` north."""
    lat, lon = CENTRE
    d_lat = km_north / 110.574
    d_lon = km_east / (111.320 * math.cos(math.radians(lat)))
    return Leg(lat, lon, lat + d_lat, lon + d_lon, at)


def ask_travel(
    adapter: Adapter, trip: Leg, timeout_s: float = TIMEOUT_S, url: str | None = None
) -> tuple[TravelTime | ProviderError, Counter[str]]:
    """The adapter's answer to ``trip`` (or the ProviderError), and its failure counts."""

    async def call(provider: Any) -> TravelTime:
        answer: TravelTime = await provider.travel_time(trip, timeout_s=timeout_s)
        return answer

    result: tuple[TravelTime | ProviderError, Counter[str]] = _ask(adapter, call, url)
    return result


def ask_weather(
    adapter: Adapter,
    at_point: tuple[float, float] = CENTRE,
    timeout_s: float = TIMEOUT_S,
    url: str | None = None,
) -> tuple[Weather | ProviderError, Counter[str]]:
    """The adapter's current weather at ``at_point`` (or the ProviderError), and its counts."""

    async def call(provider: Any) -> Weather:
        answer: Weather = await provider.current(*at_point, timeout_s=timeout_s)
        return answer

    result: tuple[Weather | ProviderError, Counter[str]] = _ask(adapter, call, url)
    return result


def _ask(adapter: Adapter, call: Callable[[Any], Any], url: str | None) -> Any:
    async def run() -> Any:
        provider = adapter.build(await _client(), url)
        try:
            try:
                answer = await call(provider)
            except ProviderError as exc:
                answer = exc
            return answer, Counter(getattr(provider, "failures", Counter()))
        finally:
            await provider.close()

    return _runner().run(run())


_shared: dict[str, Any] = {}


def _runner() -> asyncio.Runner:
    """One event loop for every call of the suite, and with it one :class:`VendorClient`
    (a client per call would load the CA bundle each time: 0.2 s); closed at exit."""
    if "runner" not in _shared:
        _shared["runner"] = asyncio.Runner()
        atexit.register(_close)
    runner: asyncio.Runner = _shared["runner"]
    return runner


async def _client() -> VendorClient:
    if "client" not in _shared:
        _shared["client"] = VendorClient()
    client: VendorClient = _shared["client"]
    return client


def _close() -> None:
    runner: asyncio.Runner = _shared.pop("runner")
    client = _shared.pop("client", None)
    if client is not None:
        runner.run(client.close())
    runner.close()


def _answer(result: Any) -> Any:
    answer, _ = result
    if isinstance(answer, ProviderError):
        pytest.fail(f"expected an answer, got {answer}")
    return answer


def _pin(adapter: Adapter, at: datetime | None) -> None:
    if adapter.vendor is not None:
        adapter.vendor.pin_clock(at)


class TravelContract:
    """What every travel-time adapter answers. Needs a ``travel_adapter`` fixture
    (an :class:`Adapter`)."""

    @pytest.fixture(autouse=True)
    def _clean_vendor(self, travel_adapter: Adapter) -> None:
        if travel_adapter.vendor is not None:
            travel_adapter.vendor.clear_faults()
        _pin(travel_adapter, NIGHT)

    def test_is_a_travel_time_provider(self, travel_adapter: Adapter) -> None:
        async def build() -> Any:
            return travel_adapter.build(await _client(), None)

        provider = _runner().run(build())
        assert isinstance(provider, TravelTimeProvider)
        assert provider.name == travel_adapter.name

    def test_answers_a_plausible_named_time(self, travel_adapter: Adapter) -> None:
        trip = leg()
        answer = _answer(ask_travel(travel_adapter, trip))
        assert answer.source == travel_adapter.name
        assert math.isfinite(answer.seconds)
        km = trip.great_circle_km
        assert plausible.min_seconds(km) <= answer.seconds <= plausible.max_seconds(km)
        # a courier's pace: between 5 and 60 km/h over the great circle, in the simulation
        assert 5.0 <= km / (answer.seconds / 3600.0) <= 60.0

    def test_a_longer_leg_takes_longer(self, travel_adapter: Adapter) -> None:
        short = _answer(ask_travel(travel_adapter, leg(km_east=1.0)))
        long = _answer(ask_travel(travel_adapter, leg(km_east=6.0)))
        assert long.seconds > short.seconds * 2

    def test_rush_hour_is_slower_than_the_night(self, travel_adapter: Adapter) -> None:
        night = _answer(ask_travel(travel_adapter, leg(at=NIGHT)))
        _pin(travel_adapter, RUSH)
        rush = _answer(ask_travel(travel_adapter, leg(at=RUSH)))
        assert rush.seconds > night.seconds * 1.15

    def test_the_same_question_gets_the_same_answer(self, travel_adapter: Adapter) -> None:
        first = _answer(ask_travel(travel_adapter, leg()))
        again = _answer(ask_travel(travel_adapter, leg()))
        assert first == again

    def test_a_leg_of_no_length_takes_little_time(self, travel_adapter: Adapter) -> None:
        lat, lon = CENTRE
        answer = _answer(ask_travel(travel_adapter, Leg(lat, lon, lat, lon, NIGHT)))
        assert 0.0 <= answer.seconds <= plausible.max_seconds(0.0)


class VendorFaultContract:
    """Every vendor fault and network failure becomes its reason, counted, and never an
    answer. Needs a ``travel_adapter`` fixture whose adapter calls a vendor."""

    @pytest.fixture(autouse=True)
    def _clean_vendor(self, travel_adapter: Adapter) -> None:
        assert travel_adapter.vendor is not None, "a vendor adapter"
        travel_adapter.vendor.clear_faults()
        _pin(travel_adapter, NIGHT)

    @pytest.mark.parametrize(("fault", "reason"), TRAVEL_FAULTS)
    def test_a_vendor_fault_becomes_its_reason(
        self, travel_adapter: Adapter, fault: str, reason: str
    ) -> None:
        assert travel_adapter.vendor is not None
        travel_adapter.vendor.set_faults(**{fault: 1.0})
        started = time.monotonic()
        timeout_s = SHORT_TIMEOUT_S if reason == "timeout" else TIMEOUT_S
        answer, failures = ask_travel(travel_adapter, leg(), timeout_s=timeout_s)
        assert isinstance(answer, ProviderError), f"{fault} gave an answer: {answer}"
        assert answer.reason == reason
        assert answer.provider == travel_adapter.name
        assert failures == Counter({reason: 1})
        assert time.monotonic() - started < HOLD_S / 2  # the adapter gave up, not the vendor

    def test_latency_past_the_timeout_is_a_timeout(self, travel_adapter: Adapter) -> None:
        assert travel_adapter.vendor is not None
        travel_adapter.vendor.set_faults(latency_ms=SHORT_TIMEOUT_S * 2000)
        answer, failures = ask_travel(travel_adapter, leg(), timeout_s=SHORT_TIMEOUT_S)
        assert isinstance(answer, ProviderError)
        assert answer.reason == "timeout"
        assert failures["timeout"] == 1

    def test_a_rate_limit_is_rate_limited_with_its_retry_after(
        self, travel_adapter: Adapter
    ) -> None:
        assert travel_adapter.vendor is not None
        travel_adapter.vendor.set_faults(rate_limit_per_s=0.1)  # one token, then 10 s apart
        first, _ = ask_travel(travel_adapter, leg())
        second, failures = ask_travel(travel_adapter, leg())
        assert isinstance(first, TravelTime)
        assert isinstance(second, ProviderError)
        assert second.reason == "rate_limited"
        assert second.retry_after_s is not None
        assert 1.0 <= second.retry_after_s <= 10.0
        assert failures == Counter({"rate_limited": 1})

    def test_an_outage_ends_and_answers_come_back(self, travel_adapter: Adapter) -> None:
        assert travel_adapter.vendor is not None
        travel_adapter.vendor.set_faults(error_rate=1.0)
        down, _ = ask_travel(travel_adapter, leg())
        travel_adapter.vendor.clear_faults()
        up, _ = ask_travel(travel_adapter, leg())
        assert isinstance(down, ProviderError)
        assert down.reason == "http_5xx"
        assert isinstance(up, TravelTime)

    def test_connection_refused_is_connection(self, travel_adapter: Adapter) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        answer, failures = ask_travel(travel_adapter, leg(), url=url)
        assert isinstance(answer, ProviderError)
        assert answer.reason == "connection"
        assert failures == Counter({"connection": 1})

    def test_a_name_that_does_not_resolve_is_dns(self, travel_adapter: Adapter) -> None:
        answer, failures = ask_travel(travel_adapter, leg(), url="http://vendor.invalid")
        assert isinstance(answer, ProviderError)
        assert answer.reason == "dns"
        assert failures == Counter({"dns": 1})

    def test_a_failed_tls_handshake_is_tls(self, travel_adapter: Adapter) -> None:
        assert travel_adapter.vendor is not None
        https = travel_adapter.vendor.url.replace("http://", "https://")  # plain HTTP there
        answer, failures = ask_travel(travel_adapter, leg(), url=https)
        assert isinstance(answer, ProviderError)
        assert answer.reason == "tls"
        assert failures == Counter({"tls": 1})


class WeatherContract:
    """What every weather adapter answers, and its faults. Needs a ``weather_adapter``
    fixture whose adapter calls a vendor."""

    @pytest.fixture(autouse=True)
    def _clean_vendor(self, weather_adapter: Adapter) -> None:
        assert weather_adapter.vendor is not None
        weather_adapter.vendor.clear_faults()
        _pin(weather_adapter, NIGHT)

    def test_answers_plausible_named_weather(self, weather_adapter: Adapter) -> None:
        answer = _answer(ask_weather(weather_adapter))
        assert isinstance(answer, Weather)
        assert answer.source == weather_adapter.name
        assert -30.0 <= answer.temperature_c <= 40.0
        assert answer.precipitation_mm >= 0
        assert answer.wind_kmh >= 0

    def test_is_a_weather_provider(self, weather_adapter: Adapter) -> None:
        async def build() -> Any:
            return weather_adapter.build(await _client(), None)

        assert isinstance(_runner().run(build()), WeatherProvider)

    @pytest.mark.parametrize(("fault", "reason"), WEATHER_FAULTS)
    def test_a_vendor_fault_becomes_its_reason(
        self, weather_adapter: Adapter, fault: str, reason: str
    ) -> None:
        assert weather_adapter.vendor is not None
        weather_adapter.vendor.set_faults(**{fault: 1.0})
        timeout_s = SHORT_TIMEOUT_S if reason == "timeout" else TIMEOUT_S
        answer, failures = ask_weather(weather_adapter, timeout_s=timeout_s)
        assert isinstance(answer, ProviderError), f"{fault} gave an answer: {answer}"
        assert answer.reason == reason
        assert failures == Counter({reason: 1})

    def test_connection_refused_dns_and_tls(self, weather_adapter: Adapter) -> None:
        assert weather_adapter.vendor is not None
        https = weather_adapter.vendor.url.replace("http://", "https://")
        urls = {
            "connection": f"http://127.0.0.1:{free_port()}",
            "dns": "http://vendor.invalid",
            "tls": https,
        }
        for reason, url in urls.items():
            answer, _ = ask_weather(weather_adapter, url=url)
            assert isinstance(answer, ProviderError), url
            assert answer.reason == reason, url
