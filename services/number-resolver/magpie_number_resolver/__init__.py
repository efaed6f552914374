"""Magpie number resolver: classifies every recipient of a campaign before anything is sent.

Pipeline role: consumes ``RecipientBatch`` (topic RECIPIENTS), validates and normalises each number
(``numbers``), assigns its carrier (``carriers``: number segments plus the number-portability overrides of
``portability``), looks the handset up in the device registry (``registry`` / ``profiles``: MongoDB durable,
Redis hot), asks the capability engine (``capability``, the handset table of seed 001 ch. 5) whether it renders
the template's card, and produces one ``ClassifiedBatch`` (topic CLASSIFIED) per input batch (``worker``).

It also serves the internal HTTP API (``api``): device and portability imports, single-record CRUD and the
synchronous capability check behind ``POST /v1/aim/mobile-capabilities/check``.
"""
