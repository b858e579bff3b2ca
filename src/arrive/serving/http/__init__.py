"""The ETA service's HTTP front door: a Starlette app over the transport-neutral predictor."""

from arrive.serving.http.app import create_app

__all__ = ["create_app"]
