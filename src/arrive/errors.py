"""Every error Arrive raises on purpose.

One tree, so callers catch what they mean and the CLI and HTTP edges translate
in one place::

    ArriveError
    ├── UserError                  the user's input is wrong; CLI exit code 2
    │   ├── ConfigError            a setting or option is invalid
    │   ├── InputFileError         a file is missing, unreadable or of the wrong shape
    │   ├── MappingError           an import mapping (TOML) is malformed
    │   ├── SchemaError            an event does not match the canonical schema
    │   └── DataError              the data cannot support what was asked
    ├── RegistryError              the model registry refused; CLI exit code 2
    │   ├── ModelNotFound          no such version, or the alias is not set (also a UserError)
    │   ├── RegistryConflict       the change would break a registry rule (also a UserError)
    │   ├── PromotionRefused       the promotion gate said no (also a UserError)
    │   └── ModelIntegrityError    a stored artifact or index does not match its record
    ├── RolloutRefused             a rollout command is not allowed now (also a UserError)
    │   └── RolloutConflict        another command changed the rollout first (lost the race)
    ├── StoreError                 the online feature store failed (bad stored value, script error)
    │   └── FeatureStoreUnavailable the store cannot be reached or refuses requests
    ├── InternalError              a bug or an environment failure; CLI exit code 1
    │   └── SourceUnavailable      an event source or dead-letter backend cannot be reached
    └── ClientError                a call to the ETA service failed (arrive.client.errors:
                                   ServerUnavailable, Timeout, RequestRejected (also a
                                   UserError), ServerError, BadResponse)

No module here imports a web or vendor library.
"""

from __future__ import annotations


class ArriveError(Exception):
    """Base of every error raised by Arrive on purpose."""

    exit_code = 1


class UserError(ArriveError):
    """The user's input is wrong: the message says what and where."""

    exit_code = 2


class ConfigError(UserError):
    """A setting, option or argument is invalid."""


class InputFileError(UserError):
    """A file is missing, unreadable, or its contents do not have the expected shape."""


class MappingError(UserError):
    """An import mapping file is malformed or does not match its CSV."""


class DataError(UserError):
    """The data cannot support the operation (too little data, no target, ...)."""


class SchemaError(UserError):
    """An event does not match the canonical schema.

    Attributes:
        field: dotted path of the offending field (``"$"`` for the whole event).
        reason: why the value was refused.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class RegistryError(ArriveError):
    """The model registry cannot do what was asked."""

    exit_code = 2


class ModelNotFound(RegistryError, UserError):
    """No model version matches the reference, or the alias named holds no version."""


class RegistryConflict(RegistryError, UserError):
    """The change would break a registry rule (e.g. deleting a version an alias points at)."""


class PromotionRefused(RegistryError, UserError):
    """The promotion gate refused a candidate.

    Attributes:
        reasons: one sentence per failed check.
    """

    def __init__(self, message: str, reasons: tuple[str, ...]) -> None:
        self.reasons = reasons
        super().__init__(message)


class ModelIntegrityError(RegistryError):
    """A stored artifact is missing or its checksum does not match the one recorded
    at registration, or the registry's index is unreadable. Never the caller's input:
    the store was corrupted or edited."""


class RolloutRefused(UserError):
    """A rollout command is not allowed in the rollout's current state, or its candidate
    is unfit (missing, already production, corrupted, fails its model check)."""


class RolloutConflict(RolloutRefused):
    """Another command changed the rollout between this one's read and its write
    (compare-and-swap on the revision lost): nothing was changed."""


class StoreError(ArriveError):
    """The online feature store failed: it holds a value it cannot decode, or it
    refused a command. The message names the backend (never its credentials)."""


class FeatureStoreUnavailable(StoreError):
    """The online feature store cannot be reached, timed out, or refuses requests
    for now (loading, read-only replica, out of memory). Callers fall back."""


class InternalError(ArriveError):
    """Something failed that is not the user's fault."""


class SourceUnavailable(InternalError):
    """An event source (Kafka, Redis Streams) or a dead-letter backend cannot be reached
    or refused a request; the message names the backend and the reason."""
