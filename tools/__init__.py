"""Maintainer tools: vendoring and generated README parts (run as ``python -m tools.<name>``)."""
