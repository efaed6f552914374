"""Magpie dispatcher: the last hop of a campaign.

Roles (``MAGPIE_DISPATCHER_ROLES``, default ``send,receipts``):

- ``send``: DISPATCH (``DispatchBatch``) -> render the SMS -> SMPP submit_sm to the recipient's carrier, exactly once
  per recipient (:mod:`magpie_dispatcher.sender`) -> DELIVERY (``DeliveryBatch``: SUBMITTED / FAILED); the SMSC's
  delivery receipts become final DELIVERED / FAILED events (:mod:`magpie_dispatcher.dlr`); messages without a
  receipt within the receipt window become TIMEOUT (:mod:`magpie_dispatcher.sweeper`).
- ``receipts``: customer callbacks built from the delivery and link events (:mod:`magpie_dispatcher.receipts`).
"""
