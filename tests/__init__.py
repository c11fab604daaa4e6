"""The test suite (a package, so that test modules have unique dotted names)."""
