"""SmppClient against a scripted SMSC on a real TCP socket: the test drives the SMSC side PDU by PDU."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import TypeVar

import pytest

from magpie_common.smpp.client import ClientState, SmppClient
from magpie_common.smpp.constants import (
    ESME_RINVMSGLEN,
    ESME_RINVPASWD,
    ESME_ROK,
    ESME_RSYSERR,
    ESME_RTHROTTLED,
    ESME_RX_T_APPN,
)
from magpie_common.smpp.errors import SmppBindError, SmppConnectionError, SmppTimeoutError
from magpie_common.smpp.framing import PduFramer
from magpie_common.smpp.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode_pdu,
)

PduT = TypeVar("PduT", bound=Pdu)


class ScriptedSmsc:
    """One-connection SMSC: answers bind (with ``bind_status``) and, if ``answer_enquire_link``, enquire_link;
    everything else it receives is queued for the test, which writes whatever answers it wants."""

    def __init__(self, *, bind_status: int = ESME_ROK, answer_enquire_link: bool = True) -> None:
        self.bind_status = bind_status
        self.answer_enquire_link = answer_enquire_link
        self.received: asyncio.Queue[Pdu] = asyncio.Queue()
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.port = 0
        self.clients: list[SmppClient] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for client in self.clients:
            client.abort()
        if self.writer is not None:
            self.writer.close()
            await asyncio.wait_for(self.disconnected.wait(), 2)
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connected.set()
        framer = PduFramer()
        try:
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    pdu = decode_pdu(frame)
                    if isinstance(pdu, BindTransceiver):
                        self.send(
                            BindTransceiverResp(
                                sequence_number=pdu.sequence_number,
                                command_status=self.bind_status,
                                system_id="scripted" if self.bind_status == ESME_ROK else "",
                            )
                        )
                    elif isinstance(pdu, EnquireLink) and self.answer_enquire_link:
                        self.send(EnquireLinkResp(sequence_number=pdu.sequence_number))
                    self.received.put_nowait(pdu)
        except ConnectionError:
            pass
        finally:
            self.disconnected.set()

    def send(self, pdu: Pdu) -> None:
        assert self.writer is not None
        self.writer.write(pdu.encode())

    def send_raw(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    def drop(self) -> None:
        assert self.writer is not None
        self.writer.transport.abort()

    async def expect(self, cls: type[PduT], timeout: float = 2.0) -> PduT:
        async with asyncio.timeout(timeout):
            while True:
                pdu = await self.received.get()
                if isinstance(pdu, cls):
                    return pdu

    def drain(self) -> list[Pdu]:
        items = []
        while not self.received.empty():
            items.append(self.received.get_nowait())
        return items


@pytest.fixture
async def smsc() -> AsyncIterator[ScriptedSmsc]:
    server = ScriptedSmsc()
    await server.start()
    yield server
    await server.stop()


def make_client(smsc: ScriptedSmsc, **kwargs: object) -> SmppClient:
    options: dict[str, object] = {"enquire_link_interval": 0, "response_timeout": 2.0}
    options.update(kwargs)
    client = SmppClient("127.0.0.1", smsc.port, "magpie", "secret", **options)  # type: ignore[arg-type]
    smsc.clients.append(client)
    return client


def submit_pdu(destination: str = "8613800000000", text: bytes = b"hi") -> SubmitSm:
    return SubmitSm(source_addr="1065", destination_addr=destination, registered_delivery=1, short_message=text)


async def test_bind_and_unbind(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc)
    resp = await client.connect_and_bind()
    assert resp.system_id == "scripted"
    assert client.is_bound and client.smsc_system_id == "scripted"
    bind = await smsc.expect(BindTransceiver)
    assert (bind.system_id, bind.password, bind.interface_version) == ("magpie", "secret", 0x34)

    async def answer_unbind() -> None:
        unbind = await smsc.expect(Unbind)
        smsc.send(UnbindResp(sequence_number=unbind.sequence_number))

    answering = asyncio.create_task(answer_unbind())
    await client.unbind_and_close()
    await answering
    assert client.closed
    await asyncio.wait_for(smsc.disconnected.wait(), 2)


async def test_bind_refused() -> None:
    server = ScriptedSmsc(bind_status=ESME_RINVPASWD)
    await server.start()
    client = make_client(server)
    with pytest.raises(SmppBindError) as exc:
        await client.connect_and_bind()
    assert exc.value.command_status == ESME_RINVPASWD
    assert client.closed
    await server.stop()


async def test_connect_refused() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    client = SmppClient("127.0.0.1", port, "magpie", "secret")
    with pytest.raises(SmppConnectionError):
        await client.connect_and_bind()
    with pytest.raises(ConnectionError):  # not bound: fails at once
        await client.submit(submit_pdu())


async def test_responses_matched_by_sequence(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc)
    await client.connect_and_bind()
    tasks = [asyncio.create_task(client.submit(submit_pdu(f"86138{i:08d}"))) for i in range(5)]
    received = [await smsc.expect(SubmitSm) for _ in range(5)]
    assert len({p.sequence_number for p in received}) == 5
    for pdu in reversed(received):  # answer in reverse order
        smsc.send(SubmitSmResp(sequence_number=pdu.sequence_number, message_id=f"id-{pdu.destination_addr}"))
    results = await asyncio.gather(*tasks)
    assert [r.message_id for r in results] == [f"id-86138{i:08d}" for i in range(5)]
    assert client.outstanding == 0


async def test_window_limits_outstanding_submits(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc, window=4)
    await client.connect_and_bind()
    tasks = [asyncio.create_task(client.submit(submit_pdu(f"1{i}"))) for i in range(10)]
    first = [await smsc.expect(SubmitSm) for _ in range(4)]
    await asyncio.sleep(0.1)
    assert smsc.received.empty(), "a fifth submit went out while four were unanswered"
    assert client.outstanding == 4
    smsc.send(SubmitSmResp(sequence_number=first[0].sequence_number, message_id="a"))
    fifth = await smsc.expect(SubmitSm)
    await asyncio.sleep(0.05)
    assert smsc.received.empty()
    pending = [*first[1:], fifth]
    answered = 1
    while pending:
        pdu = pending.pop(0)
        smsc.send(SubmitSmResp(sequence_number=pdu.sequence_number, message_id="x"))
        answered += 1
        if answered <= 6:
            pending.append(await smsc.expect(SubmitSm))
    results = await asyncio.gather(*tasks)
    assert all(r.command_status == ESME_ROK for r in results)


async def test_status_codes_come_back_to_the_caller(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc)
    await client.connect_and_bind()
    throttled = asyncio.create_task(client.submit(submit_pdu()))
    pdu = await smsc.expect(SubmitSm)
    smsc.send(SubmitSmResp(sequence_number=pdu.sequence_number, command_status=ESME_RTHROTTLED))
    resp = await throttled
    assert resp.command_status == ESME_RTHROTTLED
    assert resp.message_id == ""

    nacked = asyncio.create_task(client.submit(submit_pdu()))
    pdu = await smsc.expect(SubmitSm)
    smsc.send(GenericNack(sequence_number=pdu.sequence_number, command_status=ESME_RINVMSGLEN))
    resp = await nacked
    assert isinstance(resp, SubmitSmResp)
    assert resp.command_status == ESME_RINVMSGLEN


async def test_request_timeout_frees_the_window(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc, window=1)
    await client.connect_and_bind()
    with pytest.raises(SmppTimeoutError):
        await client.submit(submit_pdu(), timeout=0.2)
    assert client.outstanding == 0
    late = await smsc.expect(SubmitSm)
    smsc.send(SubmitSmResp(sequence_number=late.sequence_number, message_id="late"))  # ignored
    second = asyncio.create_task(client.submit(submit_pdu()))
    pdu = await smsc.expect(SubmitSm)
    smsc.send(SubmitSmResp(sequence_number=pdu.sequence_number, message_id="ok"))
    assert (await second).message_id == "ok"


async def test_connection_drop_fails_pending_submits(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc, window=2, response_timeout=30.0)
    await client.connect_and_bind()
    tasks = [asyncio.create_task(client.submit(submit_pdu(str(i)))) for i in range(5)]  # 2 sent, 3 waiting
    await smsc.expect(SubmitSm)
    await smsc.expect(SubmitSm)
    smsc.drop()
    async with asyncio.timeout(2):
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await client.wait_closed()
    assert all(isinstance(r, SmppConnectionError) and isinstance(r, ConnectionError) for r in results)
    assert client.state is ClientState.CLOSED
    with pytest.raises(SmppConnectionError):
        await client.submit(submit_pdu())


async def test_deliver_sm_resp_only_after_handler_returns(smsc: ScriptedSmsc) -> None:
    release = asyncio.Event()
    seen: list[DeliverSm] = []

    async def on_deliver(pdu: DeliverSm) -> int:
        seen.append(pdu)
        await release.wait()
        return ESME_ROK

    client = make_client(smsc, on_deliver=on_deliver)
    await client.connect_and_bind()
    smsc.send(DeliverSm(sequence_number=41, esm_class=0x04, short_message=b"id:1 stat:DELIVRD"))
    await asyncio.sleep(0.2)
    assert len(seen) == 1 and seen[0].sequence_number == 41
    assert not any(isinstance(p, DeliverSmResp) for p in smsc.drain()), "acknowledged before the handler returned"
    release.set()
    resp = await smsc.expect(DeliverSmResp)
    assert (resp.sequence_number, resp.command_status) == (41, ESME_ROK)


async def test_handler_status_failure_and_absence(smsc: ScriptedSmsc) -> None:
    async def failing(pdu: DeliverSm) -> int:
        if pdu.sequence_number == 1:
            raise RuntimeError("database down")
        return ESME_RSYSERR

    client = make_client(smsc, on_deliver=failing)
    await client.connect_and_bind()
    smsc.send(DeliverSm(sequence_number=1))
    smsc.send(DeliverSm(sequence_number=2))
    answers = {r.sequence_number: r.command_status for r in [await smsc.expect(DeliverSmResp) for _ in range(2)]}
    assert answers == {1: ESME_RX_T_APPN, 2: ESME_RSYSERR}

    client.on_deliver = None
    smsc.send(DeliverSm(sequence_number=3))
    resp = await smsc.expect(DeliverSmResp)
    assert (resp.sequence_number, resp.command_status) == (3, ESME_RX_T_APPN)


async def test_crash_inside_handler_sends_no_resp(smsc: ScriptedSmsc) -> None:
    started = asyncio.Event()

    async def stuck(pdu: DeliverSm) -> int:
        started.set()
        await asyncio.sleep(3600)
        return ESME_ROK

    client = make_client(smsc, on_deliver=stuck)
    await client.connect_and_bind()
    smsc.send(DeliverSm(sequence_number=5))
    await asyncio.wait_for(started.wait(), 2)
    client.abort()  # what SIGKILL looks like from the SMSC
    await asyncio.wait_for(smsc.disconnected.wait(), 2)
    assert not any(isinstance(p, DeliverSmResp) for p in smsc.drain())


async def test_answers_smsc_enquire_link_and_sends_keepalive(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc, enquire_link_interval=0.1)
    await client.connect_and_bind()
    smsc.send(EnquireLink(sequence_number=900))
    resp = await smsc.expect(EnquireLinkResp)
    assert resp.sequence_number == 900
    await smsc.expect(EnquireLink)  # the client's own keepalive
    await smsc.expect(EnquireLink)
    assert client.is_bound
    link = await client.enquire_link()
    assert isinstance(link, EnquireLinkResp)


async def test_unanswered_keepalive_closes_the_connection() -> None:
    server = ScriptedSmsc(answer_enquire_link=False)
    await server.start()
    client = make_client(server, enquire_link_interval=0.1, response_timeout=0.2)
    await client.connect_and_bind()
    await asyncio.wait_for(client.wait_closed(), 2)
    assert client.closed
    assert isinstance(client.close_reason, SmppTimeoutError)
    await server.stop()


async def test_smsc_unbind_closes_and_fails_pending(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc)
    await client.connect_and_bind()
    pending = asyncio.create_task(client.submit(submit_pdu()))
    await smsc.expect(SubmitSm)
    smsc.send(Unbind(sequence_number=77))
    resp = await smsc.expect(UnbindResp)
    assert resp.sequence_number == 77
    with pytest.raises(SmppConnectionError):
        await asyncio.wait_for(pending, 2)
    await asyncio.wait_for(client.wait_closed(), 2)


async def test_unbind_and_close_drains_outstanding_first(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc)
    await client.connect_and_bind()
    submitted = asyncio.create_task(client.submit(submit_pdu()))
    pdu = await smsc.expect(SubmitSm)
    closing = asyncio.create_task(client.unbind_and_close(timeout=3))
    await asyncio.sleep(0.1)
    with pytest.raises(SmppConnectionError):  # no new submits while unbinding
        await client.submit(submit_pdu())
    assert smsc.received.empty(), "unbind sent before the outstanding submit was answered"
    smsc.send(SubmitSmResp(sequence_number=pdu.sequence_number, message_id="m1"))
    unbind = await smsc.expect(Unbind)
    smsc.send(UnbindResp(sequence_number=unbind.sequence_number))
    await asyncio.wait_for(closing, 2)
    assert (await submitted).message_id == "m1"
    assert client.closed


async def test_absurd_length_from_smsc_closes_connection(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc, response_timeout=30.0)
    await client.connect_and_bind()
    pending = asyncio.create_task(client.submit(submit_pdu()))
    await smsc.expect(SubmitSm)
    smsc.send_raw(struct.pack(">IIII", 0x7FFFFFFF, 0x80000004, 0, 1))
    with pytest.raises(SmppConnectionError):
        await asyncio.wait_for(pending, 2)
    await asyncio.wait_for(client.wait_closed(), 2)


async def test_reconnect_after_close(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc)
    await client.connect_and_bind()
    smsc.drop()
    await asyncio.wait_for(client.wait_closed(), 2)
    await client.connect_and_bind()
    assert client.is_bound


async def test_a_read_of_deliver_sm_goes_to_the_batch_handler_in_one_call(smsc: ScriptedSmsc) -> None:
    release = asyncio.Event()
    calls: list[list[int]] = []

    async def on_batch(pdus: list[DeliverSm]) -> list[int]:
        calls.append([p.sequence_number for p in pdus])
        await release.wait()
        return [ESME_ROK if p.sequence_number % 2 else ESME_RSYSERR for p in pdus]

    client = make_client(smsc, on_deliver_batch=on_batch)
    await client.connect_and_bind()
    window = b"".join(
        DeliverSm(sequence_number=n, esm_class=0x04, short_message=b"id:1 stat:DELIVRD").encode() for n in range(1, 9)
    )
    smsc.send_raw(window)  # eight deliver_sm in one write
    async with asyncio.timeout(2):
        while not calls:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert calls == [[1, 2, 3, 4, 5, 6, 7, 8]]
    assert not any(isinstance(p, DeliverSmResp) for p in smsc.drain()), "acknowledged before the handler returned"
    release.set()
    answers = [await smsc.expect(DeliverSmResp) for _ in range(8)]
    assert [(r.sequence_number, r.command_status) for r in answers] == [
        (n, ESME_ROK if n % 2 else ESME_RSYSERR) for n in range(1, 9)
    ]


async def test_a_failing_batch_handler_answers_every_deliver_sm_for_redelivery(smsc: ScriptedSmsc) -> None:
    async def broken(pdus: list[DeliverSm]) -> list[int]:
        raise RuntimeError("database down")

    async def short(pdus: list[DeliverSm]) -> list[int]:
        return []  # fewer statuses than deliver_sm: nothing is acknowledged

    client = make_client(smsc, on_deliver_batch=broken)
    await client.connect_and_bind()
    smsc.send_raw(DeliverSm(sequence_number=1).encode() + DeliverSm(sequence_number=2).encode())
    first = [await smsc.expect(DeliverSmResp) for _ in range(2)]
    client.on_deliver_batch = short
    smsc.send_raw(DeliverSm(sequence_number=3).encode() + DeliverSm(sequence_number=4).encode())
    second = [await smsc.expect(DeliverSmResp) for _ in range(2)]
    assert {r.command_status for r in first + second} == {ESME_RX_T_APPN}
    assert sorted(r.sequence_number for r in first + second) == [1, 2, 3, 4]


async def test_each_request_expires_after_its_own_timeout_and_answered_ones_never(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc, window=8, response_timeout=30.0)
    await client.connect_and_bind()
    slow = asyncio.create_task(client.submit(submit_pdu("1"), timeout=30.0))
    answered = asyncio.create_task(client.submit(submit_pdu("2"), timeout=0.3))
    quick = asyncio.create_task(client.submit(submit_pdu("3"), timeout=0.3))  # sent after a longer timeout
    sent = {p.destination_addr: p for p in [await smsc.expect(SubmitSm) for _ in range(3)]}
    smsc.send(SubmitSmResp(sequence_number=sent["2"].sequence_number, message_id="two"))
    assert (await answered).message_id == "two"
    with pytest.raises(SmppTimeoutError):
        await quick
    assert not slow.done()  # its own (longer) deadline has not passed
    smsc.send(SubmitSmResp(sequence_number=sent["1"].sequence_number, message_id="one"))
    assert (await slow).message_id == "one"
    assert client.outstanding == 0


async def test_submit_each_writes_within_the_window_and_returns_every_answer_in_order(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc, window=2, response_timeout=0.5)
    await client.connect_and_bind()
    pdus = [submit_pdu(str(i)) for i in range(4)]
    task = asyncio.create_task(client.submit_each(pdus))
    first = [await smsc.expect(SubmitSm) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert smsc.drain() == []  # the window (2) is full: the third waits for an answer
    smsc.send(SubmitSmResp(sequence_number=first[1].sequence_number, message_id="b"))
    third = await smsc.expect(SubmitSm)
    smsc.send(GenericNack(sequence_number=first[0].sequence_number, command_status=ESME_RTHROTTLED))
    fourth = await smsc.expect(SubmitSm)
    smsc.send(SubmitSmResp(sequence_number=fourth.sequence_number, message_id="d"))
    results = await task  # the third is never answered: timeout, in doubt
    assert [r.command_status if isinstance(r, SubmitSmResp) else type(r) for r, _ in results] == [
        ESME_RTHROTTLED,
        ESME_ROK,
        SmppTimeoutError,
        ESME_ROK,
    ]
    assert [r.message_id for r, _ in results if isinstance(r, SubmitSmResp) and r.message_id] == ["b", "d"]
    assert third.sequence_number == pdus[2].sequence_number != 0
    assert all(seconds >= 0 for _, seconds in results)
    assert client.outstanding == 0


async def test_submit_each_on_a_closed_session_writes_nothing(smsc: ScriptedSmsc) -> None:
    client = make_client(smsc)
    pdus = [submit_pdu("1"), submit_pdu("2")]
    results = await client.submit_each(pdus)
    assert all(isinstance(r, SmppConnectionError) for r, _ in results)
    assert [p.sequence_number for p in pdus] == [0, 0]  # provably not written: safe to submit again
