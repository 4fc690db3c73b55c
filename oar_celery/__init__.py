"""oar-celery: the OAR cluster resource and job manager, on Celery."""

__version__ = "0.1.0"
