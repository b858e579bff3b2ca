"""What the routes share: the settings, the clock and the predictor once it is started."""

from __future__ import annotations

from dataclasses import dataclass

from arrive.clock import Clock
from arrive.schema.eta import Predictor
from arrive.serving.http.errors import HttpError
from arrive.serving.settings import ServeSettings


@dataclass
class Service:
    """The app's state; ``predictor`` is None until the lifespan has started one."""

    settings: ServeSettings
    clock: Clock
    predictor: Predictor | None = None

    def require(self) -> Predictor:
        """The predictor, or a 503 while the service is starting or stopping."""
        if self.predictor is None:
            raise HttpError(503, "the service is starting or stopping")
        return self.predictor
