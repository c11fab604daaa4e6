"""Queries: the model, the local and Honeycomb engines, the CLI, filters."""
