"""The requester's input: the promotion request and the files it names.

Everything here treats the request as hostile (README, "Threat model"): strict JSON, paths
confined to the request's folder or ``--evidence-root``, regular files only, size caps, private
keys refused, non-envelopes withheld. May import: ``slmgate.evidence`` and ``engine._schemas``.
"""
