"""OAR's user commands (oarsub, oarstat, oardel, oarhold, oarresume, oarnodes,
oarnodesetting), thin over :mod:`oar_celery.client`. ``admin`` is the
``oar-celery`` administration command.

Each command's ``main(argv)`` returns its exit status and never shows a
traceback: failures are one ``<command>: error: <why>`` line on stderr.
"""
