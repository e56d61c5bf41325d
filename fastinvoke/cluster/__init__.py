"""Scale-out on Ray: every function's workers on a Ray cluster's nodes.

Ray is the control plane only: it places a node agent on each node (``agent``), which
starts fastinvoke's node process there (``node``, around an ``engine``: templates forked
into workers, cgroups and sandbox, as the local pool has them), and it reserves each
worker's CPU and memory on the node that holds it (``placement``).  Invocations never
travel through Ray: the front-end keeps dispatching (concurrency, throttling, the Event
queue, meters, logs, the bill) and reaches each other node over ZeroMQ TCP,
authenticated and encrypted with CURVE (``link``, ``protocol``).  On the front-end's own
node an engine runs in the front-end itself (``local``): its workers are reached over the
shared-memory hop.  ``slots`` is the dispatcher's view of remote workers, ``backend``
the front-end's side, in the supervisor's place.
"""
