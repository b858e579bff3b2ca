"""Vendor providers: travel time and current weather from HTTP vendors, cached, guarded by
circuit breakers and chained down to a built-in estimate that cannot fail."""
