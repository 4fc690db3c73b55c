"""What the client, the head and the nodes agree on: names, message shapes, the wire and the bus.

Nothing here knows the database, the head's modules or the node's
supervisor: each side imports this package, never the other side. The bus
(:mod:`.bus`) is the one place a process gets its broker's Redis client and
reaches Almighty (``notify``, ``queue_reports``); the Lua it runs is kept
together in :mod:`.scripts`, as rq keeps its own.
"""
