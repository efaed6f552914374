"""Magpie number resolver: classifies every recipient of a campaign before anything is sent.

Pipeline role: consumes ``RecipientBatch`` (topic RECIPIENTS), validates and normalises each number
(``numbers``), assigns its carrier (``carriers``: number segments plus the number-portability overrides of
``portability``), looks the handset up in the device registry (``registry`` / ``profiles``: MongoDB durable,
Redis hot), asks the capability engine (``capability``, the handset table of seed 001 ch. 5) whether it renders
the template's card, and produces one ``ClassifiedBatch`` (topic CLASSIFIED) per input batch (``worker``).

On a registry miss a vendor capability provider may be consulted (``providers``; answers cached in Redis with a
TTL; ``vendor_sim`` serves a simulated vendor over HTTP). The registry learns (``learning``): LinkEvents RESOLVED
(topic LINK) record the resolving handset as capable, and numbers that received N delivered smart messages
(topic DELIVERY) without resolving any are downgraded. The output ClassifiedBatch is assembled as wire bytes
(``wire``) and look-ups are pipelined across the batches of a poll; ``bench`` measures the throughput.

It also serves the internal HTTP API (``api``, ``learning_api``): device and portability imports, single-record
CRUD, downgrades, and the synchronous capability check behind ``POST /v1/aim/mobile-capabilities/check``.
"""
