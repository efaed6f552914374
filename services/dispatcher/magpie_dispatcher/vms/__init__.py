"""The dispatcher's ``vms`` role: video SMS (VMS, KooMessage 智能信息基础版) to the VMS carrier channel.

``MAGPIE_DISPATCHER_ROLES=...,vms`` runs it (``magpie_dispatcher.wiring``); ``role.build_vms(settings, config)``
assembles it. Flow::

    gateway --VMS_TEMPLATES--> templates (dispatcher MongoDB: vms_templates, vms_media)
    gateway --VMS_SEND-------> sender --PUT template / POST submit--> VMS channel (carrier, JSON over HTTP)
                                   |                                        |
                                   +--VMS_DELIVERY (SUBMITTED, refusals)    | reports and replies, polled (leased)
    reports poller <--GET notifications / ack-------------------------------+
        +--VMS_DELIVERY (DELIVERED / FAILED)   +--VMS_MO (replies)
    sweeper: no report by the message's expiry + grace --> VMS_DELIVERY (TIMEOUT)
    receipts (VMS_CALLBACKS, VMS_DELIVERY, VMS_MO, VMS_TEMPLATE_STATUS) --> customer callbacks (outbox vms_outbox)

Module guide: ``config`` (environment), ``templates`` (approved templates and media), ``carrier`` (HTTP client of
the channel), ``store`` (Redis: records, final states, deadlines), ``sender`` (VMS_SEND), ``reports`` (the
channel's notifications), ``sweeper`` (timeouts), ``receipts`` and ``payloads`` (customer callbacks), ``role``
(assembly). This module imports nothing, so ``receipts.payloads`` can use ``vms.payloads`` without a cycle.
"""
