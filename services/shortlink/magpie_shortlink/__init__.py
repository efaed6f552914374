"""Magpie shortlink service: per-recipient short links and the public edge that resolves them.

Two roles, one process by default (``MAGPIE_SHORTLINK_ROLES=mint,edge``):

- **mint** (:mod:`magpie_shortlink.minting`): consumes ``ClassifiedBatch`` from CLASSIFIED, mints one short code per
  SMART / DEGRADED recipient (HMAC-derived, so a redelivered batch mints the same codes), stores the links in MongoDB
  and Redis, and produces one ``DispatchBatch`` per input batch to DISPATCH.
- **edge** (:mod:`magpie_shortlink.edge`): the public HTTP edge: ``GET /{code}`` redirect, ``GET /h5/{code}`` landing
  page, ``POST /v1/resolve`` for the handset's messaging app; emits ``LinkEvent`` to LINK.
"""
