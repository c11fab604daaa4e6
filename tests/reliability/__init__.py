"""Reliability: faults, overload, process lifecycle, fuzzing, secrets, stats."""
