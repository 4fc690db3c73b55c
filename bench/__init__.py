"""Benchmarks of oar-celery's parts (run as ``python -m bench.<name>``)."""
