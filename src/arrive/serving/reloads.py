"""Model reloads across workers: an admin reload is counted in the :mod:`control
<arrive.serving.control>`, and every worker sharing it follows the count."""

from __future__ import annotations

import asyncio

from arrive.errors import ModelNotFound, RegistryError
from arrive.schema.eta import ModelFinding, ReloadAnswer
from arrive.serving.control import Control
from arrive.serving.slot import ModelSlot


class Reloads:
    """Reloads ``slot`` when an admin asks this process, or another one (its count in
    ``control`` moves)."""

    def __init__(self, slot: ModelSlot, control: Control) -> None:
        self.slot = slot
        self.control = control
        self.seen = control.reloads

    async def admin(self) -> ReloadAnswer:
        """See :meth:`arrive.schema.eta.Predictor.reload`: counted, then forced.

        Raises:
            RegistryError: the alias's version was refused by this reload (its checksum,
                check or load failed; the message says why and what keeps serving).
            ModelNotFound: no model serves (the message says why).
        """
        self.seen = self.control.count_reload()  # the other workers follow
        done = await asyncio.to_thread(self.slot.reload_checked, force=True)
        version, target = done.serving, done.target
        if target is not None and target in done.refused:
            raise RegistryError(
                f"version {target} refused ({done.refused[target]}); {_keeps(version, target)}"
            )
        if version is None:
            raise ModelNotFound(f"no model serves: {self.slot.last_error or 'unknown reason'}")
        findings = [
            ModelFinding(version=v, status=check.status, reason=check.reason)
            for v, check in sorted(done.checks.items(), key=lambda item: -int(item[0]))
        ]
        return ReloadAnswer(model_version=version, alias_version=target, checks=findings)

    async def follow(self) -> None:
        """Reload (forced, as the admin call did) when another worker took an admin reload."""
        count = self.control.reloads
        if count != self.seen:
            self.seen = count
            await asyncio.to_thread(self.slot.reload, force=True)


def _keeps(version: str | None, target: str) -> str:
    if version is None:
        return "the heuristic answers"
    if version == target:
        return f"version {version} keeps serving from the copy loaded earlier (a restart would not)"
    return f"version {version} keeps serving"
