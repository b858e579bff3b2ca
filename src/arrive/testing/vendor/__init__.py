"""The simulated vendor (``arrive providers serve-sim``): a real HTTP server speaking the
OSRM and Open-Meteo formats (and a generic JSON one), answering from a simulated
marketplace's traffic and weather, with faults injectable at start and at run time."""
