"""Scripts the reliability tests run as subprocesses (``python -m tests.support.apps.<name>``)."""
