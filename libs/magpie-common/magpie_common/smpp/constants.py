"""SMPP 3.4 numeric constants: command ids, command status codes, TLV tags, field values."""

from __future__ import annotations

from typing import Final

# --- command ids (SMPP 3.4 section 5.1.2.1) -------------------------------------------------------------
GENERIC_NACK: Final = 0x80000000
BIND_RECEIVER: Final = 0x00000001
BIND_RECEIVER_RESP: Final = 0x80000001
BIND_TRANSMITTER: Final = 0x00000002
BIND_TRANSMITTER_RESP: Final = 0x80000002
SUBMIT_SM: Final = 0x00000004
SUBMIT_SM_RESP: Final = 0x80000004
DELIVER_SM: Final = 0x00000005
DELIVER_SM_RESP: Final = 0x80000005
UNBIND: Final = 0x00000006
UNBIND_RESP: Final = 0x80000006
BIND_TRANSCEIVER: Final = 0x00000009
BIND_TRANSCEIVER_RESP: Final = 0x80000009
ENQUIRE_LINK: Final = 0x00000015
ENQUIRE_LINK_RESP: Final = 0x80000015

RESPONSE_BIT: Final = 0x80000000

# --- command status (SMPP 3.4 section 5.1.3) ------------------------------------------------------------
ESME_ROK: Final = 0x00000000
ESME_RINVMSGLEN: Final = 0x00000001
ESME_RINVCMDLEN: Final = 0x00000002
ESME_RINVCMDID: Final = 0x00000003
ESME_RINVBNDSTS: Final = 0x00000004
ESME_RALYBND: Final = 0x00000005
ESME_RINVPRTFLG: Final = 0x00000006
ESME_RINVREGDLVFLG: Final = 0x00000007
ESME_RSYSERR: Final = 0x00000008
ESME_RINVSRCADR: Final = 0x0000000A
ESME_RINVDSTADR: Final = 0x0000000B
ESME_RINVMSGID: Final = 0x0000000C
ESME_RBINDFAIL: Final = 0x0000000D
ESME_RINVPASWD: Final = 0x0000000E
ESME_RINVSYSID: Final = 0x0000000F
ESME_RCANCELFAIL: Final = 0x00000011
ESME_RREPLACEFAIL: Final = 0x00000013
ESME_RMSGQFUL: Final = 0x00000014
ESME_RINVSERTYP: Final = 0x00000015
ESME_RINVNUMDESTS: Final = 0x00000033
ESME_RINVDLNAME: Final = 0x00000034
ESME_RINVDESTFLAG: Final = 0x00000040
ESME_RINVSUBREP: Final = 0x00000042
ESME_RINVESMCLASS: Final = 0x00000043
ESME_RCNTSUBDL: Final = 0x00000044
ESME_RSUBMITFAIL: Final = 0x00000045
ESME_RINVSRCTON: Final = 0x00000048
ESME_RINVSRCNPI: Final = 0x00000049
ESME_RINVDSTTON: Final = 0x00000050
ESME_RINVDSTNPI: Final = 0x00000051
ESME_RINVSYSTYP: Final = 0x00000053
ESME_RINVREPFLAG: Final = 0x00000054
ESME_RINVNUMMSGS: Final = 0x00000055
ESME_RTHROTTLED: Final = 0x00000058
ESME_RINVSCHED: Final = 0x00000061
ESME_RINVEXPIRY: Final = 0x00000062
ESME_RINVDFTMSGID: Final = 0x00000063
ESME_RX_T_APPN: Final = 0x00000064
ESME_RX_P_APPN: Final = 0x00000065
ESME_RX_R_APPN: Final = 0x00000066
ESME_RQUERYFAIL: Final = 0x00000067
ESME_RINVOPTPARSTREAM: Final = 0x000000C0
ESME_ROPTPARNOTALLWD: Final = 0x000000C1
ESME_RINVPARLEN: Final = 0x000000C2
ESME_RMISSINGOPTPARAM: Final = 0x000000C3
ESME_RINVOPTPARAMVAL: Final = 0x000000C4
ESME_RDELIVERYFAILURE: Final = 0x000000FE
ESME_RUNKNOWNERR: Final = 0x000000FF

STATUS_NAMES: Final[dict[int, str]] = {
    value: name for name, value in dict(globals()).items() if name.startswith("ESME_") and isinstance(value, int)
}


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED`` for 0x58; ``0x000000xx`` for a code SMPP 3.4 does not name."""
    return STATUS_NAMES.get(status, f"0x{status:08X}")


# --- optional parameter (TLV) tags (SMPP 3.4 section 5.3.2) ---------------------------------------------
TAG_DEST_ADDR_SUBUNIT: Final = 0x0005
TAG_RECEIPTED_MESSAGE_ID: Final = 0x001E
TAG_USER_MESSAGE_REFERENCE: Final = 0x0204
TAG_SOURCE_PORT: Final = 0x020A
TAG_DESTINATION_PORT: Final = 0x020B
TAG_SAR_MSG_REF_NUM: Final = 0x020C
TAG_SAR_TOTAL_SEGMENTS: Final = 0x020E
TAG_SAR_SEGMENT_SEQNUM: Final = 0x020F
TAG_SC_INTERFACE_VERSION: Final = 0x0210
TAG_PAYLOAD_TYPE: Final = 0x0019
TAG_NETWORK_ERROR_CODE: Final = 0x0423
TAG_MESSAGE_PAYLOAD: Final = 0x0424
TAG_MESSAGE_STATE: Final = 0x0427

# --- message_state TLV values (SMPP 3.4 section 5.2.28) -------------------------------------------------
MESSAGE_STATE_ENROUTE: Final = 1
MESSAGE_STATE_DELIVERED: Final = 2
MESSAGE_STATE_EXPIRED: Final = 3
MESSAGE_STATE_DELETED: Final = 4
MESSAGE_STATE_UNDELIVERABLE: Final = 5
MESSAGE_STATE_ACCEPTED: Final = 6
MESSAGE_STATE_UNKNOWN: Final = 7
MESSAGE_STATE_REJECTED: Final = 8

# --- esm_class bits (SMPP 3.4 section 5.2.12) ------------------------------------------------------------
ESM_CLASS_DEFAULT: Final = 0x00
ESM_CLASS_DELIVERY_RECEIPT: Final = 0x04  # deliver_sm: message type "SMSC Delivery Receipt"
ESM_CLASS_MESSAGE_TYPE_MASK: Final = 0x3C
ESM_CLASS_UDHI: Final = 0x40  # short_message starts with a User Data Header

# --- registered_delivery (SMPP 3.4 section 5.2.17) -------------------------------------------------------
REGISTERED_DELIVERY_NONE: Final = 0x00
REGISTERED_DELIVERY_RECEIPT: Final = 0x01  # receipt on final outcome, success or failure
REGISTERED_DELIVERY_ON_FAILURE: Final = 0x02  # receipt on failure only
REGISTERED_DELIVERY_RECEIPT_MASK: Final = 0x03

# --- data_coding (SMPP 3.4 section 5.2.19) ---------------------------------------------------------------
DATA_CODING_DEFAULT: Final = 0x00  # SMSC default alphabet; Magpie and its simulator use GSM 03.38, unpacked
DATA_CODING_ASCII: Final = 0x01
DATA_CODING_BINARY: Final = 0x02
DATA_CODING_LATIN1: Final = 0x03
DATA_CODING_BINARY_8BIT: Final = 0x04
DATA_CODING_UCS2: Final = 0x08

# --- addressing ------------------------------------------------------------------------------------------
TON_UNKNOWN: Final = 0x00
TON_INTERNATIONAL: Final = 0x01
TON_NATIONAL: Final = 0x02
TON_ALPHANUMERIC: Final = 0x05
NPI_UNKNOWN: Final = 0x00
NPI_ISDN: Final = 0x01

SMPP_VERSION_34: Final = 0x34

HEADER_LENGTH: Final = 16
DEFAULT_MAX_PDU_LENGTH: Final = 70_000  # a 64 KiB message_payload plus the fixed fields fits
