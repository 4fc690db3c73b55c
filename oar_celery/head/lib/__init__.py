"""The head's library: what the OAR modules share, never importing one of them.

State changes (:mod:`.transitions`, on :mod:`.store`), the one way to send
(:mod:`.sender`), the per-process context (:mod:`.context`), admission and
submission, launch specs, planning, Judas's notifications, resources.
"""
