"""Sampling: the API, deterministic, rule-based and dynamic samplers."""
