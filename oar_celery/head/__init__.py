"""The head: Almighty and the OAR modules it runs, the only writer of the database.

Each module here is one of OAR's (``runner``, ``leon``, ``sarko``, ``finaud``,
``node_change_state``, ``scheduling`` and its ``quick_round``, ``reports``) or
answers one kind of request (``submit``, ``control``, ``node_admin``). They
never import each other: what two of them need is in :mod:`.lib`, and they
reach Almighty through :func:`oar_celery.protocol.bus.notify`.
"""
