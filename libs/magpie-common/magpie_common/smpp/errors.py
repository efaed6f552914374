"""Exceptions of the SMPP layer."""

from __future__ import annotations

from magpie_common.smpp.constants import ESME_RSYSERR, status_name


class SmppError(Exception):
    """Base class of every SMPP error."""


class PduError(SmppError):
    """A PDU that cannot be decoded or encoded.

    ``command_status`` is the status a peer should answer with (for example ``ESME_RINVCMDLEN``);
    ``command_id`` and ``sequence_number`` are those of the offending PDU when its header was readable.
    """

    def __init__(
        self,
        message: str,
        *,
        command_status: int = ESME_RSYSERR,
        command_id: int | None = None,
        sequence_number: int | None = None,
    ) -> None:
        super().__init__(message)
        self.command_status = command_status
        self.command_id = command_id
        self.sequence_number = sequence_number


class FramingError(PduError):
    """The byte stream cannot be split into PDUs (absurd command_length): the connection must be closed."""


class SmppConnectionError(SmppError, ConnectionError):
    """The SMPP connection is not open, was lost, or was closed while a request was outstanding."""


class SmppBindError(SmppError):
    """The SMSC refused the bind (``command_status`` says why, e.g. ``ESME_RINVPASWD``)."""

    def __init__(self, command_status: int) -> None:
        super().__init__(f"bind refused: {status_name(command_status)}")
        self.command_status = command_status


class SmppTimeoutError(SmppError, TimeoutError):
    """No response arrived for a request within its timeout."""
