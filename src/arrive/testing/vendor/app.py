"""The simulated vendor's HTTP app (Starlette): OSRM ``route`` and ``table``, Open-Meteo
``/v1/forecast``, a generic JSON ``/generic/v1/travel``, and the admin endpoints.

Endpoints::

    GET  /route/v1/{profile}/{lon},{lat};{lon},{lat}        OSRM route
    GET  /table/v1/{profile}/{lon},{lat};…?sources=&destinations=&annotations=
    GET  /v1/forecast?latitude=&longitude=&current=…       Open-Meteo current weather
    GET  /generic/v1/travel?origin=lat,lon&destination=lat,lon&departure=UNIX
         (header X-Api-Key when started with a key) → {"data": {"duration_min", "distance_km"}}
    GET  /healthz
    GET|POST /_faults     the faults in force / change them ({"error_rate": 1.0}, {"clear": true})
    POST /_clock          {"at": ISO time or null}: the vendor's "now" (default: the wall clock)
    GET  /_stats          requests served by endpoint and by outcome
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arrive.clock import Clock
from arrive.errors import ConfigError
from arrive.testing.vendor.faults import HOLD_S, FaultPlan
from arrive.testing.vendor.market import LegAnswer, SimulatedMarket

ABSURD_S: Final = 30 * 86_400.0
#: The value a bad-number fault puts in place of the answer's main number.
BAD_VALUES: Final = {"negative": -1.0, "nan": math.nan, "inf": math.inf, "absurd": ABSURD_S}
Render = Callable[[str | None], Any]
"""The 200 body of a request for a good answer (None), a bad number (a key of
:data:`BAD_VALUES`) or ``wrong_shape``."""


class VendorState:
    """The market, the faults, the clock override and the counters of one vendor."""

    def __init__(
        self, market: SimulatedMarket, plan: FaultPlan, clock: Clock, key: str | None
    ) -> None:
        self.market = market
        self.plan = plan
        self.clock = clock
        self.key = key
        self.pinned: datetime | None = None
        self.requests: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()

    def now(self) -> datetime:
        return self.pinned or self.clock.now()


class BadRequest(Exception):
    """The request itself is wrong (answered 400 in the format's error shape)."""


def create_app(state: VendorState) -> Starlette:
    """The vendor app over ``state``."""
    routes = [
        Route("/route/v1/{profile}/{coords}", _endpoint(state, "route", _route)),
        Route("/table/v1/{profile}/{coords}", _endpoint(state, "table", _table)),
        Route("/v1/forecast", _endpoint(state, "forecast", _forecast)),
        Route("/generic/v1/travel", _endpoint(state, "generic", _generic)),
        Route("/healthz", lambda _: JSONResponse({"status": "ok"})),
        Route("/_faults", _faults_endpoint(state), methods=["GET", "POST"]),
        Route("/_clock", _clock_endpoint(state), methods=["POST"]),
        Route("/_stats", _stats_endpoint(state)),
    ]
    return Starlette(routes=routes)


Handler = Callable[[VendorState, Request], Render]


def _endpoint(state: VendorState, name: str, handler: Handler) -> Any:
    async def endpoint(request: Request) -> Response:
        state.requests[name] += 1
        wait = state.plan.retry_after_s()
        if wait is not None:
            return _counted(
                state,
                "rate_limited",
                _json(
                    {"message": "Too Many Requests"},
                    429,
                    {"retry-after": str(max(1, math.ceil(wait)))},
                ),
            )
        latency = state.plan.faults.latency_ms
        if latency > 0:
            await asyncio.sleep(latency / 1000.0)
        try:
            render = handler(state, request)
        except BadRequest as exc:
            return _counted(state, "invalid", _json(_invalid_body(name, str(exc)), 400))
        kind = state.plan.draw()
        if kind == "timeout":
            state.outcomes["timeout"] += 1
            await asyncio.sleep(HOLD_S)
            return _json({"message": "gateway timeout"}, 504)
        return _counted(
            state, kind or "ok", _answer(kind, render, _invalid_body(name, "bad query"))
        )

    return endpoint


def _answer(kind: str | None, render: Render, invalid: Any) -> Response:
    if kind == "error":
        return _json({"message": "service unavailable"}, 503)
    if kind == "client_error":
        return _json(invalid, 400)
    if kind == "garbage":
        return Response(b"<html><body>\x00\xffupstream proxy error", 200, media_type="text/html")
    if kind == "empty":
        return Response(b"", 200, media_type="application/json")
    return _json(render(kind))


def _number(kind: str | None, good: float) -> float:
    """``good``, or the bad number of fault ``kind``."""
    return BAD_VALUES.get(kind or "", good) if kind != "negative" else -abs(good) - 1.0


def _counted(state: VendorState, outcome: str, response: Response) -> Response:
    state.outcomes[outcome] += 1
    return response


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers, media_type="application/json")


def _invalid_body(name: str, message: str) -> Any:
    if name == "forecast":
        return {"error": True, "reason": message}
    if name == "generic":
        return {"error": {"message": message}}
    return {"code": "InvalidQuery", "message": message}


def _route(state: VendorState, request: Request) -> Render:
    points = _coords(request.path_params["coords"])
    if len(points) != 2:
        raise BadRequest("route needs two coordinates (this vendor)")
    (o_lon, o_lat), (d_lon, d_lat) = points
    profile = request.path_params["profile"]
    route = state.market.route(o_lat, o_lon, d_lat, d_lon, state.now(), profile)

    def render(kind: str | None) -> Any:
        if kind == "wrong_shape":
            return {"code": "Ok", "routes": {"duration": route.seconds}}
        seconds = _number(kind, route.seconds)
        leg = {"duration": seconds, "distance": route.metres, "steps": [], "summary": ""}
        body: dict[str, Any] = {"duration": seconds, "distance": route.metres, "weight": seconds}
        body |= {"weight_name": "duration", "legs": [leg]}
        return {"code": "Ok", "routes": [body], "waypoints": _waypoints(points)}

    return render


def _table(state: VendorState, request: Request) -> Render:
    points = _coords(request.path_params["coords"])
    sources = _indexes(request.query_params.get("sources"), len(points))
    destinations = _indexes(request.query_params.get("destinations"), len(points))
    profile, now = request.path_params["profile"], state.now()
    routes = [
        [_leg_route(state, points[s], points[d], now, profile) for d in destinations]
        for s in sources
    ]
    annotations = request.query_params.get("annotations", "duration").split(",")

    def render(kind: str | None) -> Any:
        durations: list[list[float]] = [[r.seconds for r in row] for row in routes]
        if kind == "wrong_shape":
            return {"code": "Ok", "durations": durations[0][0]}
        durations[0][0] = _number(kind, durations[0][0])
        body: dict[str, Any] = {
            "code": "Ok",
            "sources": _waypoints([points[s] for s in sources]),
            "destinations": _waypoints([points[d] for d in destinations]),
        }
        if "duration" in annotations:
            body["durations"] = durations
        if "distance" in annotations:
            body["distances"] = [[r.metres for r in row] for row in routes]
        return body

    return render


def _leg_route(
    state: VendorState,
    origin: tuple[float, float],
    dest: tuple[float, float],
    at: datetime,
    profile: str,
) -> LegAnswer:
    return state.market.route(origin[1], origin[0], dest[1], dest[0], at, profile)


def _forecast(state: VendorState, request: Request) -> Render:
    lat = _float(request.query_params.get("latitude"), "latitude", 90.0)
    lon = _float(request.query_params.get("longitude"), "longitude", 180.0)
    now = state.now()
    weather = state.market.current(lat, lon, now)

    def render(kind: str | None) -> Any:
        if kind == "wrong_shape":
            return {"latitude": lat, "longitude": lon, "current": [weather.temperature_c]}
        current = {
            "time": now.strftime("%Y-%m-%dT%H:%M"),
            "interval": 900,
            "temperature_2m": weather.temperature_c,
            "precipitation": weather.precipitation_mm,
            "wind_speed_10m": weather.wind_kmh,
        }
        if kind == "negative":  # Open-Meteo's temperatures may be negative: the rain is not
            current["precipitation"] = -abs(weather.precipitation_mm) - 1.0
        elif kind == "absurd":
            current["temperature_2m"] = 95.0
        elif kind is not None:
            current["temperature_2m"] = BAD_VALUES[kind]
        units = {"time": "iso8601", "interval": "seconds", "temperature_2m": "°C"}
        units |= {"precipitation": "mm", "wind_speed_10m": "km/h"}
        return {"latitude": lat, "longitude": lon, "current_units": units, "current": current}

    return render


def _generic(state: VendorState, request: Request) -> Render:
    if state.key is not None and request.headers.get("x-api-key") != state.key:
        raise BadRequest("missing or wrong X-Api-Key")
    o_lat, o_lon = _pair(request.query_params.get("origin"), "origin")
    d_lat, d_lon = _pair(request.query_params.get("destination"), "destination")
    departure = request.query_params.get("departure")
    try:
        at = datetime.fromtimestamp(int(departure), UTC) if departure else state.now()
    except (ValueError, OverflowError, OSError):
        raise BadRequest("departure: not a Unix time") from None
    route = state.market.route(o_lat, o_lon, d_lat, d_lon, at, "driving")

    def render(kind: str | None) -> Any:
        if kind == "wrong_shape":
            return {"data": [route.seconds / 60.0]}
        minutes = _number(kind, route.seconds / 60.0)
        return {"data": {"duration_min": minutes, "distance_km": route.metres / 1000.0}}

    return render


def _coords(text: str) -> list[tuple[float, float]]:
    points = []
    for part in text.split(";"):
        lon, _, lat = part.partition(",")
        points.append((_float(lon, "longitude", 180.0), _float(lat, "latitude", 90.0)))
    if len(points) < 2:
        raise BadRequest("at least two coordinates")
    return points


def _pair(text: str | None, name: str) -> tuple[float, float]:
    lat, _, lon = (text or "").partition(",")
    return _float(lat, f"{name} latitude", 90.0), _float(lon, f"{name} longitude", 180.0)


def _float(text: str | None, name: str, limit: float) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise BadRequest(f"{name}: not a number") from None
    if not -limit <= value <= limit:
        raise BadRequest(f"{name}: out of range")
    return value


def _indexes(text: str | None, count: int) -> list[int]:
    if text is None or text == "all":
        return list(range(count))
    try:
        found = [int(i) for i in text.split(";")]
    except ValueError:
        raise BadRequest("sources/destinations: not indexes") from None
    if any(not 0 <= i < count for i in found):
        raise BadRequest("sources/destinations: index out of range")
    return found


def _waypoints(points: list[tuple[float, float]]) -> list[dict[str, Any]]:
    return [
        {"hint": "", "distance": 0.0, "name": "", "location": [lon, lat]} for lon, lat in points
    ]


def _faults_endpoint(state: VendorState) -> Any:
    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise ConfigError("the body must be a JSON object")
                state.plan.update(changes)
            except (ValueError, ConfigError) as exc:
                return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(state.plan.faults.as_dict())

    return endpoint


def _clock_endpoint(state: VendorState) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            body = await request.json()
            at = body.get("at") if isinstance(body, dict) else None
            state.pinned = None if at is None else datetime.fromisoformat(at)
            if state.pinned is not None and state.pinned.tzinfo is None:
                raise ValueError("at: needs a timezone")
        except (ValueError, TypeError) as exc:
            state.pinned = None
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({"at": None if state.pinned is None else state.pinned.isoformat()})

    return endpoint


def _stats_endpoint(state: VendorState) -> Any:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({"requests": dict(state.requests), "outcomes": dict(state.outcomes)})

    return endpoint
