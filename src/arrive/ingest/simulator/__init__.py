"""A seeded synthetic marketplace that emits canonical events.

Markets with stores and couriers, traffic by hour, weather episodes, kitchens
that slow down under load and a dispatcher; every order's duration follows the
ground truth of :mod:`arrive.ingest.simulator.truth`. Start with
:func:`simulate` and :func:`write_simulation`.
"""

from arrive.ingest.simulator.config import SimulationConfig
from arrive.ingest.simulator.run import Progress, Simulation, simulate, write_simulation

__all__ = ["Progress", "Simulation", "SimulationConfig", "simulate", "write_simulation"]
