"""The runs layer: the unit of work (:mod:`.service`), worker liveness (:mod:`.liveness`), provenance, the
pipeline that takes one run through its phases, read-only queries (:mod:`.queries`), verify, and sweeps.

It orchestrates the compute stages and the ``db`` layer; nothing below it imports it."""
