"""The REST API (OAR3's routes and fields) and the web views (a Gantt chart and a node grid), head-side.

One process (``oar-celery api``, also started by ``oar-celery up``) serves
them. It reads the database as ``oarstat`` does and writes only through the
head requests the commands send (:mod:`oar_celery.client.api`), for the user it
authenticated (:mod:`.auth`): the head checks ownership as for the commands.
It never imports the head's modules.
"""

#: The API version this one follows (OAR3's).
API_VERSION = "3.0.0"
