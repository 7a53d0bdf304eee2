"""Measured latency tables shipped with hwnas (CSV + JSON metadata per device and backend)."""
