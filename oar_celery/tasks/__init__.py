"""Celery tasks, one module per OAR module: thin entry points, each naming a task and calling the head or node.

Task names are :class:`oar_celery.protocol.names.Task`; message shapes are the typed dicts of
:mod:`oar_celery.protocol.messages`. This package's ``__init__`` imports nothing: a node worker
loads ``tasks.bipbip`` alone.

Every message is JSON. Head tasks answer clients with a dict: ``{"error":
"one line"}`` on refusal, otherwise the fields named below.

Head queue ``oar.head``:

- ``oar.almighty.submit(request, deadline=None)`` → ``{"job_ids": [...]}``; admission and insertion
  (``head/submit.py``). ``deadline`` (epoch seconds) is when the client gives up: no new job is
  committed past it, so a client told "failed" is right; the limits of ``protocol/limits.py``
  are checked first, before any database work. ``request`` keys: ``user, command, resources`` (list of
  ``-l`` strings), ``name, directory, stdout, stderr, queue, hold, types``
  (list), ``properties, dependencies`` (list of ids), ``reservation`` (date
  text), ``notify, checkpoint, signal, array, array_params`` (list of lines),
  ``project``.
- ``oar.almighty.notify(messages)``: Almighty messages (``Qsub``, ``Term``, ``Reports``,
  ``Qdel``, ``ChState``, ``Villains``, ``Finaud``, ``Scheduling``) start coordinator cycles.
- ``oar.control.delete(user, job_ids, signal=None, checkpoint=False)``,
  ``oar.control.hold(user, job_ids, running=False)``, ``oar.control.resume(user, job_ids)``
  → ``{"results": {job_id: "one line"}, "failed": [job_id, ...]}`` (``head/control.py``).
- ``oar.almighty.submit_many(requests)`` → ``{"results": [...]}``, one entry per
  request in order: ``{"job_ids": [...]}`` or ``{"error": "one line"}``; a batch of
  ``submit`` requests in one message and one transaction per batch (``head/submit.py``).
- Node reports: a batch of reports from a node's supervisors, gathered by the
  node's report sender (up to 100, or what came within ~15 ms), queued in Redis
  (``oar:reports``) and applied by the next Almighty cycle together with every other
  batch queued since the last one, in one transaction (``head/reports.py``). On a
  Redis broker the node queues the batch and notifies Almighty itself
  (``protocol.bus.queue_reports``, one Lua script); on another broker it sends
  ``oar.head.reports(reports)``, which does that on the head. Each report is a dict:
  ``{"kind": "running", "job_id", "host", "pid"}`` or
  ``{"kind": "ended", "job_id", "host", "exit_code", "reason", "message"}``.
  ``reason`` is one of ``exited``, ``walltime``, ``killed``, ``prologue_error``,
  ``epilogue_error``, ``launch_error``, ``user_unknown``. Re-sent reports change nothing.
- ``oar.head.job_running(job_id, host, pid)`` and
  ``oar.head.job_ended(job_id, host, exit_code, reason, message)``: one report each
  (older nodes); the same code as a batch of one.
- ``oar.head.job_resumed(job_id, host)``: the node continued a job after ``oarresume``;
  ``Resuming`` → ``Running`` (``head/lib/suspension.py``).
- ``oar.control.queue(user, action, name, priority, policy)`` (``oarqueue``, ``oarnotify``'s queue
  options), ``oar.control.notify_tag(user, tag)`` (``oarnotify TAG``) and
  ``oar.control.accounting(user, reinitialize, delete_before)`` (``oaraccounting``): root or the admin
  user only → ``{"results": ["line", ...]}`` (``head/queue_admin.py``).
- ``oar.control.property(user, adds, deletes, renames, text)`` (``oarproperty``'s column changes,
  ``head/properties.py``) and ``oar.control.add_resources(user, nodeset, cpus, cores, properties,
  node_cpus)`` (``oar-celery resources add``, ``head/node_admin.py``): root or the admin user only
  → ``{"results": ["line", ...]}``.
- ``oar.control.job_key(user, job_id)`` → ``{"state", "job_key"}``: the key of one's own job (an
  admin's: any) for ``oarsub -I``/``-C``/``-e`` and ``oarsh``; with its ticket and every node's job-shell
  service once it runs (``head/lib/jobshell.py``, ``protocol/jobshell.py``). Only the set-up crosses the
  broker: shells go from the client to the node's TLS service directly.
- ``oar.control.walltime(user, job_id, new_walltime=None, delay_next_jobs=False)``: ``oarwalltime``'s
  request (or, without ``new_walltime``, its status) → ``{"results": [...]}`` (``head/walltime.py``).
- ``oar.judas.notify(job_id, tag, comment)`` and ``oar.judas.mail_admin(subject, body)``:
  notifications, sent from tasks of their own so that SMTP never delays a report (``judas.py``).

Node queue ``oar.node.<hostname>`` (``tasks/bipbip.py``, no database access):

- ``oar.node.launch_many(specs)``: start the jobs a round sends this node and return
  at once; each job is refused if this node already launched that job id.
  ``oar.node.launch(spec)`` does the same for one job.
- ``oar.node.kill(job_id, grace)``, ``oar.node.signal(job_id, signum)``,
  ``oar.node.suspend(job_id)``, ``oar.node.resume(job_id)`` (which answers with
  ``oar.head.job_resumed``).
- ``oar.node.walltime(job_id, walltime)``: the head granted the job more (or less) walltime; the
  node's backstop follows it.
- ``oar.node.ping(token, job_ids)``: the health check that must travel through the
  node's own queue; answered with ``oar.finaud.answer`` on the head.

Where the keys exist, every node task carries the head's signature in the kwarg
``oar_sig``, every report of a batch its node's in the field ``sig``, and the node's
tasks for the head (``oar.finaud.answer``, ``oar.head.job_resumed``, the one-report
tasks) theirs in ``oar_sig`` (``tasks/signed.py``, ``protocol/signing.py``).
"""
