"""The client side of oar-celery: what the user commands and scripts call.

Reads go straight to the database (:mod:`.queries`), writes go to the head
worker as Celery tasks (:mod:`.transport`). Nothing heavy is imported here so
that ``oarsub --help`` starts at once.
"""

from oar_celery.client.errors import ClientError

__all__ = ["ClientError"]
