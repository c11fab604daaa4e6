"""Helpers shared by the tests: loopback receivers, reference implementations, fixtures."""
