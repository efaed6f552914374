"""Build the submit_sm PDUs that carry a text: one per SMS part, UDH-concatenated when the text is long."""

from __future__ import annotations

from magpie_common.smpp.constants import REGISTERED_DELIVERY_RECEIPT
from magpie_common.smpp.pdu import SubmitSm
from magpie_common.sms_text import split


def build_submit_sms(
    source_addr: str,
    destination_addr: str,
    text: str,
    *,
    registered_delivery: int = REGISTERED_DELIVERY_RECEIPT,
    reference: int | None = None,
    source_addr_ton: int = 0,
    source_addr_npi: int = 0,
    dest_addr_ton: int = 0,
    dest_addr_npi: int = 0,
    service_type: str = "",
    validity_period: str = "",
) -> list[SubmitSm]:
    """One submit_sm per SMS part of ``text`` (GSM-7 or UCS-2 picked automatically; see ``sms_text.split``).
    Each part requests its own receipt when ``registered_delivery`` is 1. Sequence numbers are left at 0 for
    the client to assign."""
    return [
        SubmitSm(
            service_type=service_type,
            source_addr_ton=source_addr_ton,
            source_addr_npi=source_addr_npi,
            source_addr=source_addr,
            dest_addr_ton=dest_addr_ton,
            dest_addr_npi=dest_addr_npi,
            destination_addr=destination_addr,
            esm_class=part.esm_class,
            validity_period=validity_period,
            registered_delivery=registered_delivery,
            data_coding=part.data_coding,
            short_message=part.short_message,
        )
        for part in split(text, reference=reference)
    ]
