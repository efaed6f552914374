"""The carrier simulator over real sockets: SmppClient (magpie_common) against the in-process SMSC, plus HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from magpie_carrier_simulator import CarrierSimulator, SimulatorConfig
from magpie_carrier_simulator.config import build_parser, config_from_args
from magpie_common.smpp import (
    ESME_RINVBNDSTS,
    ESME_RINVPASWD,
    ESME_RINVSYSID,
    ESME_ROK,
    ESME_RTHROTTLED,
    ESME_RX_T_APPN,
    BindTransceiver,
    DeliverSm,
    DeliveryReceipt,
    EnquireLinkResp,
    Pdu,
    PduFramer,
    SmppBindError,
    SmppClient,
    SubmitSm,
    SubmitSmResp,
    build_submit_sms,
    decode_pdu,
    receipt_from_deliver_sm,
)
from magpie_common.smpp.constants import (
    ESME_RINVMSGLEN,
    TAG_SAR_MSG_REF_NUM,
    TAG_SAR_SEGMENT_SEQNUM,
    TAG_SAR_TOTAL_SEGMENTS,
)
from magpie_common.smpp.pdu import tlv_uint16

SimFactory = Callable[..., Awaitable[CarrierSimulator]]
ClientFactory = Callable[..., Awaitable[SmppClient]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    sims: list[CarrierSimulator] = []

    async def factory(**overrides: Any) -> CarrierSimulator:
        options: dict[str, Any] = {
            "smpp_port": 0,
            "http_port": 0,
            "accounts": {"magpie": "secret", "other": "pw"},
            "dlr_delay": 0.02,
        }
        options.update(overrides)
        sim = CarrierSimulator(SimulatorConfig(**options))
        await sim.start()
        sims.append(sim)
        return sim

    yield factory
    for sim in sims:
        await sim.stop()


@pytest.fixture
async def connect() -> AsyncIterator[ClientFactory]:
    clients: list[SmppClient] = []

    async def factory(sim: CarrierSimulator, *, bind: bool = True, **kwargs: Any) -> SmppClient:
        options: dict[str, Any] = {"enquire_link_interval": 0, "response_timeout": 3.0}
        options.update(kwargs)
        system_id = options.pop("system_id", "magpie")
        password = options.pop("password", "secret")
        client = SmppClient("127.0.0.1", sim.smpp_port, system_id, password, **options)
        clients.append(client)
        if bind:
            await client.connect_and_bind()
        return client

    yield factory
    for client in clients:
        client.abort()
        await asyncio.wait_for(client.wait_closed(), 2)


class ReceiptCollector:
    """An on_deliver handler that parses receipts and answers with ``status`` (ESME_ROK by default)."""

    def __init__(self, status: int = ESME_ROK) -> None:
        self.status = status
        self.receipts: list[DeliveryReceipt] = []
        self.pdus: list[DeliverSm] = []
        self._changed = asyncio.Condition()

    async def __call__(self, pdu: DeliverSm) -> int:
        self.pdus.append(pdu)
        self.receipts.append(receipt_from_deliver_sm(pdu))
        async with self._changed:
            self._changed.notify_all()
        return self.status

    async def wait_for(self, count: int, timeout: float = 3.0) -> list[DeliveryReceipt]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.receipts) >= count)
        return self.receipts

    def by_id(self) -> dict[str, DeliveryReceipt]:
        return {r.message_id: r for r in self.receipts}


async def submit_text(client: SmppClient, destination: str, text: str, **kwargs: Any) -> list[SubmitSmResp]:
    return [await client.submit(pdu) for pdu in build_submit_sms("1065", destination, text, **kwargs)]


async def http_get(sim: CarrierSimulator, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.http_port}") as http:
        return await http.get(path, params=params)


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------------- binds


async def test_bind_ok_and_bad_credentials(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    client = await connect(sim)
    assert client.is_bound
    assert client.smsc_system_id == "magpie-sim"
    with pytest.raises(SmppBindError) as exc:
        await connect(sim, password="wrong")
    assert exc.value.command_status == ESME_RINVPASWD
    with pytest.raises(SmppBindError) as exc:
        await connect(sim, system_id="nobody")
    assert exc.value.command_status == ESME_RINVSYSID
    stats = sim.stats()
    assert stats["binds"] == {"ok": 1, "failed": 2}
    assert stats["sessions"]["bound_by_system_id"] == {"magpie": 1}


async def test_submit_before_bind_is_refused(make_sim: SimFactory) -> None:
    sim = await make_sim()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.smpp_port)
    writer.write(SubmitSm(sequence_number=3, destination_addr="8613800000000", short_message=b"x").encode())
    framer = PduFramer()
    frames: list[bytes] = []
    while not frames:
        frames = framer.feed(await asyncio.wait_for(reader.read(1024), 2))
    resp = decode_pdu(frames[0])
    assert isinstance(resp, SubmitSmResp)
    assert (resp.sequence_number, resp.command_status) == (3, ESME_RINVBNDSTS)
    writer.close()
    assert sim.stats()["refused"] == 1


async def test_malformed_submit_gets_submit_sm_resp_with_reason(make_sim: SimFactory) -> None:
    sim = await make_sim()
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.smpp_port)
    writer.write(BindTransceiver(sequence_number=1, system_id="magpie", password="secret").encode())
    # a submit_sm whose sm_length (0x32) overruns the PDU
    body = b"\0" + b"\0\0" + b"1065\0" + b"\0\0" + b"86\0" + b"\0\0\0" + b"\0\0" + b"\0\0\0\0" + b"\x32hi"
    writer.write(struct.pack(">IIII", 16 + len(body), 0x04, 0, 2) + body)
    framer = PduFramer()
    answers: list[Pdu] = []
    async with asyncio.timeout(2):
        while len(answers) < 2:
            answers.extend(decode_pdu(frame) for frame in framer.feed(await reader.read(1024)))
    assert isinstance(answers[1], SubmitSmResp)
    assert (answers[1].sequence_number, answers[1].command_status) == (2, ESME_RINVMSGLEN)
    writer.close()
    assert sim.stats()["submit_status"] == {"ESME_RINVMSGLEN": 1}


async def test_stopping_the_simulator_unbinds_clients(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    client = await connect(sim)
    await sim.stop()
    await asyncio.wait_for(client.wait_closed(), 2)
    assert client.closed
    assert "unbound" in repr(client.close_reason)


# ---------------------------------------------------------------------------------------------------- submits


async def test_submit_returns_unique_ids_and_receipts_arrive(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    collector = ReceiptCollector()
    client = await connect(sim, on_deliver=collector)
    resps = [r for i in range(20) for r in await submit_text(client, f"86138000000{i:02d}", f"Your code is {i}")]
    assert all(r.command_status == ESME_ROK for r in resps)
    ids = [r.message_id for r in resps]
    assert len(set(ids)) == 20
    assert all(len(i) == 20 and int(i, 16) >= 0 for i in ids)
    other = await make_sim()  # another simulator (a restart): a different id prefix, so ids never repeat
    other_client = await connect(other)
    [other_resp] = await submit_text(other_client, "8613800000000", "x")
    assert other_resp.message_id[:10] != ids[0][:10]

    receipts = await collector.wait_for(20)
    by_id = collector.by_id()
    assert set(by_id) == set(ids)
    first = by_id[ids[0]]
    assert (first.stat, first.err, first.dlvrd, first.sub) == ("DELIVRD", "000", 1, 1)
    assert first.text == "Your code is 0"
    assert first.submit_date is not None and first.done_date is not None
    pdu = next(p for p in collector.pdus if p.receipted_message_id == ids[0])
    assert pdu.is_delivery_receipt
    assert (pdu.source_addr, pdu.destination_addr) == ("8613800000000", "1065")  # swapped
    assert len(receipts) == 20
    await wait_until(lambda: sim.stats()["receipts"]["delivered"] == 20)
    stats = sim.stats()
    assert stats["accepted"] == 20 and stats["messages"] == 20
    assert stats["receipts"]["pending"] == 0
    assert stats["outcomes"] == {"DELIVRD": 20}


async def test_registered_delivery_controls_receipts(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim(reject_prefixes=("8600",))
    collector = ReceiptCollector()
    client = await connect(sim, on_deliver=collector)
    await submit_text(client, "8613800000001", "none please", registered_delivery=0)
    await submit_text(client, "8613800000002", "failure only, delivered", registered_delivery=2)
    [rejected] = await submit_text(client, "8600000", "failure only, rejected", registered_delivery=2)
    [wanted] = await submit_text(client, "8613800000003", "always")
    await collector.wait_for(2)
    await asyncio.sleep(0.1)
    assert {r.message_id: r.stat for r in collector.receipts} == {
        rejected.message_id: "REJECTD",
        wanted.message_id: "DELIVRD",
    }
    assert collector.by_id()[rejected.message_id].err == "002"


async def test_failure_rate_is_deterministic(make_sim: SimFactory, connect: ClientFactory) -> None:
    async def run(seed: int) -> dict[str, str]:
        sim = await make_sim(failure_rate=0.5, seed=seed)
        collector = ReceiptCollector()
        client = await connect(sim, on_deliver=collector)
        dest_of = {}
        for i in range(40):
            [resp] = await submit_text(client, f"861380000{i:04d}", f"hello {i}")
            dest_of[resp.message_id] = f"861380000{i:04d}"
        await collector.wait_for(40)
        return {dest_of[r.message_id]: f"{r.stat}/{r.err}" for r in collector.receipts}

    first = await run(seed=7)
    assert set(first.values()) == {"DELIVRD/000", "UNDELIV/001"}
    assert 8 <= sum(v.startswith("UNDELIV") for v in first.values()) <= 32
    assert await run(seed=7) == first
    assert await run(seed=8) != first

    sim = await make_sim(failure_rate=1.0)
    collector = ReceiptCollector()
    client = await connect(sim, on_deliver=collector)
    for i in range(3):
        await submit_text(client, f"86{i}", "doomed")
    assert {r.stat for r in await collector.wait_for(3)} == {"UNDELIV"}
    assert sim.stats()["outcomes"] == {"UNDELIV": 3}


async def test_throughput_cap_answers_throttled(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim(max_tps=2, throttle_burst=5)  # 5 at once, then one more every 0.5 s
    client = await connect(sim)
    pdus = [p for i in range(20) for p in build_submit_sms("1065", f"86{i}", "burst", registered_delivery=0)]
    resps = await asyncio.gather(*(client.submit(p) for p in pdus))
    statuses = [r.command_status for r in resps]
    assert statuses.count(ESME_ROK) == 5
    assert statuses.count(ESME_RTHROTTLED) == 15
    stats = sim.stats()
    assert (stats["accepted"], stats["throttled"]) == (5, 15)
    assert stats["submit_status"] == {"ESME_ROK": 5, "ESME_RTHROTTLED": 15}
    await asyncio.sleep(0.55)  # a token comes back
    [retry] = await submit_text(client, "8619", "burst", registered_delivery=0)
    assert retry.command_status == ESME_ROK


async def test_submit_latency(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim(submit_latency=0.15)
    client = await connect(sim)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resps = await asyncio.gather(*(submit_text(client, f"86{i}", "slow") for i in range(10)))
    elapsed = loop.time() - started
    assert all(r.command_status == ESME_ROK for [r] in resps)
    assert 0.14 <= elapsed < 1.0  # concurrent: one latency, not ten


# ---------------------------------------------------------------------------------------------------- session


async def test_enquire_link_and_unbind(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    client = await connect(sim, enquire_link_interval=0.05)
    assert isinstance(await client.enquire_link(), EnquireLinkResp)
    await asyncio.sleep(0.15)  # keepalives answered: still bound
    assert client.is_bound
    await client.unbind_and_close()
    assert client.closed
    await wait_until(lambda: sim.stats()["sessions"]["bound"] == 0)
    assert sim.stats()["sessions"]["connected"] == 0


# ---------------------------------------------------------------------------------------------------- receipts


async def test_receipts_redelivered_to_a_new_session_after_a_crash(
    make_sim: SimFactory, connect: ClientFactory
) -> None:
    sim = await make_sim(receipt_ack_timeout=30.0)
    got_it = asyncio.Event()

    async def crashing_handler(pdu: DeliverSm) -> int:
        got_it.set()
        await asyncio.sleep(3600)  # killed before finishing: no deliver_sm_resp
        return ESME_ROK

    first = await connect(sim, on_deliver=crashing_handler)
    [resp] = await submit_text(first, "8613800000000", "important")
    await asyncio.wait_for(got_it.wait(), 2)
    first.abort()  # SIGKILL: the TCP connection drops without unbind
    await first.wait_closed()
    await wait_until(lambda: sim.stats()["receipts"]["requeued_on_disconnect"] == 1)
    assert sim.pending_receipts("magpie") == 1

    collector = ReceiptCollector()
    await connect(sim, on_deliver=collector)  # the restarted dispatcher
    [receipt] = await collector.wait_for(1)
    assert receipt.message_id == resp.message_id
    assert receipt.stat == "DELIVRD"
    await wait_until(lambda: sim.stats()["receipts"]["delivered"] == 1)


async def test_receipts_wait_while_nobody_is_bound(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    client = await connect(sim)
    resps = [r for i in range(5) for r in await submit_text(client, f"86{i}", "queued")]
    await client.unbind_and_close()
    await wait_until(lambda: sim.pending_receipts("magpie") == 5)
    other = ReceiptCollector()
    await connect(sim, system_id="other", password="pw", on_deliver=other)  # another system_id gets nothing
    collector = ReceiptCollector()
    await connect(sim, on_deliver=collector)
    await collector.wait_for(5)
    assert {r.message_id for r in collector.receipts} == {r.message_id for r in resps}
    assert other.receipts == []


async def test_unacknowledged_receipt_is_resent_after_timeout(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim(receipt_ack_timeout=0.2)
    calls: list[str] = []

    async def first_call_hangs(pdu: DeliverSm) -> int:
        calls.append(pdu.receipted_message_id or "")
        if len(calls) == 1:
            await asyncio.sleep(3600)
        return ESME_ROK

    client = await connect(sim, on_deliver=first_call_hangs)
    [resp] = await submit_text(client, "8613800000000", "again")
    await wait_until(lambda: len(calls) == 2)
    assert calls == [resp.message_id, resp.message_id]
    await wait_until(lambda: sim.stats()["receipts"]["delivered"] == 1)
    assert sim.stats()["receipts"]["timed_out"] == 1


async def test_error_status_receipt_is_retried(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim(receipt_retry_delay=0.05)
    collector = ReceiptCollector(status=ESME_RX_T_APPN)
    client = await connect(sim, on_deliver=collector)
    [resp] = await submit_text(client, "8613800000000", "retry me")
    await collector.wait_for(1)
    collector.status = ESME_ROK
    await collector.wait_for(2)
    assert [r.message_id for r in collector.receipts[:2]] == [resp.message_id] * 2
    await wait_until(lambda: sim.stats()["receipts"]["delivered"] == 1)
    assert sim.stats()["receipts"]["nacked"] >= 1


async def test_receipts_spread_over_sessions_of_the_system_id(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim(deliver_window=1)
    a, b = ReceiptCollector(), ReceiptCollector()
    client_a = await connect(sim, on_deliver=a)
    await connect(sim, on_deliver=b)
    for i in range(10):
        await submit_text(client_a, f"86{i}", "spread")
    await wait_until(lambda: len(a.receipts) + len(b.receipts) == 10)
    assert a.receipts and b.receipts


# ---------------------------------------------------------------------------------------------------- records


async def test_concatenated_message_recorded_as_one(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    client = await connect(sim)
    text = "【Magpie】" + "尊敬的客户，您的账单已生成，请点击链接查看详情。" * 6
    resps = await submit_text(client, "8613900000000", text, reference=17)
    assert len(resps) == 3
    response = await http_get(sim, "/submissions", destination="8613900000000")
    body = response.json()
    assert body["count"] == 3
    rows = body["submissions"]
    assert [row["concat"] for row in rows] == [{"ref": 17, "total": 3, "seq": s} for s in (1, 2, 3)]
    assert all(row["data_coding"] == 8 and row["esm_class"] == 0x40 for row in rows)
    assert "".join(row["text"] for row in rows) == text
    assert {row["message_id"] for row in rows} == {r.message_id for r in resps}
    stats = (await http_get(sim, "/stats")).json()
    assert (stats["accepted"], stats["messages"], stats["duplicates"]) == (3, 1, 0)
    assert (await http_get(sim, "/duplicates")).json() == {"count": 0, "duplicates": []}

    [message] = (await http_get(sim, "/messages", destination="8613900000000")).json()["messages"]
    assert (message["text"], message["parts"], message["count"], message["source"]) == (text, 3, 1, "1065")

    await submit_text(client, "8613900000000", text, reference=18)  # the same message again
    duplicates = (await http_get(sim, "/duplicates")).json()
    assert duplicates["count"] == 1
    [dup] = duplicates["duplicates"]
    assert (dup["destination"], dup["text"], dup["count"]) == ("8613900000000", text, 2)
    assert len(dup["message_ids"]) == 6


async def test_sar_tlv_concatenation_recorded_as_one(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    client = await connect(sim)
    for seq, chunk in enumerate(["first half, ", "second half"], start=1):
        pdu = SubmitSm(
            source_addr="1065",
            destination_addr="8613700000000",
            short_message=chunk.encode(),
            tlvs={
                TAG_SAR_MSG_REF_NUM: tlv_uint16(300),
                TAG_SAR_TOTAL_SEGMENTS: b"\x02",
                TAG_SAR_SEGMENT_SEQNUM: bytes([seq]),
            },
        )
        assert (await client.submit(pdu)).command_status == ESME_ROK
    rows = sim.submissions("8613700000000")
    assert [row["concat"] for row in rows] == [{"ref": 300, "total": 2, "seq": 1}, {"ref": 300, "total": 2, "seq": 2}]
    assert sim.stats()["messages"] == 1


async def test_duplicates_detects_double_submit(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    client = await connect(sim)
    await submit_text(client, "8613800000001", "Your code is 1234")
    await submit_text(client, "8613800000002", "Your code is 1234")  # same text, other handset: fine
    await submit_text(client, "8613800000001", "Your code is 5678")  # other text, same handset: fine
    first = (await http_get(sim, "/duplicates")).json()
    assert first["count"] == 0
    [again] = await submit_text(client, "8613800000001", "Your code is 1234")
    body = (await http_get(sim, "/duplicates")).json()
    assert body["count"] == 1
    assert body["duplicates"][0]["destination"] == "8613800000001"
    assert body["duplicates"][0]["count"] == 2
    assert again.message_id in body["duplicates"][0]["message_ids"]


async def test_http_endpoints(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim()
    client = await connect(sim)
    await submit_text(client, "8613800000000", "metrics")
    assert (await http_get(sim, "/healthz")).json() == {"status": "ok"}
    stats = (await http_get(sim, "/stats")).json()
    assert stats["submits_total"] == 1
    assert set(stats["receipts"]) >= {"generated", "delivered", "pending"}
    metrics = await http_get(sim, "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'carrier_sim_submits_total{status="ESME_ROK"} 1.0' in metrics.text
    assert 'carrier_sim_sessions_bound{system_id="magpie"} 1.0' in metrics.text
    listing = (await http_get(sim, "/submissions", limit="5")).json()
    assert listing["count"] == 1
    assert listing["submissions"][0]["text"] == "metrics"
    assert (await http_get(sim, "/submissions", limit="x")).status_code == 400
    assert (await http_get(sim, "/nope")).status_code == 404


async def test_jsonl_submission_log(make_sim: SimFactory, connect: ClientFactory, tmp_path: Path) -> None:
    log = tmp_path / "submissions.jsonl"
    sim = await make_sim(submissions_log=str(log))
    client = await connect(sim)
    resps = [r for i in range(3) for r in await submit_text(client, f"86{i}", f"line {i}")]
    await sim.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["message_id"] for line in lines] == [r.message_id for r in resps]
    assert lines[2]["text"] == "line 2" and lines[2]["destination_addr"] == "862"


# ---------------------------------------------------------------------------------------------------- config / CLI


def test_cli_options_and_env_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGPIE_SIM_SMPP_PORT", "3775")
    monkeypatch.setenv("MAGPIE_SIM_ACCOUNTS", "a:1,b:2")
    monkeypatch.setenv("MAGPIE_SIM_FAILURE_RATE", "0.25")
    monkeypatch.setenv("MAGPIE_SIM_REJECT_PREFIXES", "999,000")
    config = config_from_args(build_parser().parse_args(["--max-tps", "100", "--http-port", "-1"]))
    assert config.smpp_port == 3775
    assert config.http_port is None
    assert config.accounts == {"a": "1", "b": "2"}
    assert config.failure_rate == 0.25
    assert config.reject_prefixes == ("999", "000")
    assert config.max_tps == 100
    config = config_from_args(build_parser().parse_args(["--account", "x:y", "--reject-prefix", "1"]))
    assert config.accounts == {"x": "y"}
    assert config.reject_prefixes == ("1",)
    monkeypatch.delenv("MAGPIE_SIM_ACCOUNTS")
    monkeypatch.setenv("MAGPIE_SIM_SYSTEM_ID", "magpie")
    monkeypatch.setenv("MAGPIE_SIM_PASSWORD", "pw")
    assert config_from_args(build_parser().parse_args([])).accounts == {"magpie": "pw"}
    monkeypatch.setenv("MAGPIE_SIM_PASSWORD", "magpie-pw")  # 9 characters: SMPP 3.4 allows 8
    with pytest.raises(ValueError, match="password at most 8"):
        config_from_args(build_parser().parse_args([]))
    with pytest.raises(ValueError):
        config_from_args(build_parser().parse_args(["--failure-rate", "2"]))


async def test_runs_as_a_module() -> None:
    env = {**os.environ, "MAGPIE_SIM_ACCOUNTS": "magpie:secret"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "magpie_carrier_simulator",
        "--smpp-port",
        "0",
        "--http-port",
        "0",
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stderr is not None
        started: dict[str, Any] = {}
        async with asyncio.timeout(10):
            while started.get("msg") != "carrier simulator started":
                line = await process.stderr.readline()
                assert line, "the simulator exited before starting"
                if line.startswith(b"{"):
                    started = json.loads(line)
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{started['http_port']}/healthz")
        assert health.json() == {"status": "ok"}
        client = SmppClient("127.0.0.1", started["smpp_port"], "magpie", "secret", enquire_link_interval=0)
        await client.connect_and_bind()
        await client.unbind_and_close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# ---------------------------------------------------------------------------------------------------- throughput


class HeldReceipts:
    """An on_deliver_batch handler that records how many deliver_sm each read carried and holds every answer until
    released: what the SMSC keeps in flight is then exactly what it sent without waiting."""

    def __init__(self) -> None:
        self.pdus: list[DeliverSm] = []
        self.reads: list[int] = []
        self.released = asyncio.Event()

    async def __call__(self, pdus: list[DeliverSm]) -> list[int]:
        self.pdus.extend(pdus)
        self.reads.append(len(pdus))
        await self.released.wait()
        return [ESME_ROK] * len(pdus)


async def test_a_whole_deliver_window_is_sent_without_waiting_for_answers(
    make_sim: SimFactory, connect: ClientFactory
) -> None:
    sim = await make_sim(deliver_window=40, dlr_delay=0.0)
    held = HeldReceipts()
    client = await connect(sim, window=100, on_deliver_batch=held)
    pdus = [build_submit_sms("1065", f"86138{i:08d}", "window")[0] for i in range(100)]
    await asyncio.gather(*(client.submit(pdu) for pdu in pdus))
    await wait_until(lambda: len(held.pdus) == 40)
    stats = sim.stats()["receipts"]
    assert stats["in_flight"] == 40 and stats["queued"] == 60 and stats["delivered"] == 0
    assert max(held.reads) > 1  # several deliver_sm per socket read: the window arrives in batches
    held.released.set()  # the window answered: the simulator refills it until every receipt is delivered
    await wait_until(lambda: sim.stats()["receipts"]["delivered"] == 100)
    assert len({receipt_from_deliver_sm(p).message_id for p in held.pdus}) == 100


async def test_receipts_use_the_windows_of_every_session(make_sim: SimFactory, connect: ClientFactory) -> None:
    sim = await make_sim(deliver_window=10, dlr_delay=0.0)
    sessions = [HeldReceipts() for _ in range(3)]
    clients = [await connect(sim, window=64, on_deliver_batch=held) for held in sessions]
    pdus = [build_submit_sms("1065", f"86139{i:08d}", "sessions")[0] for i in range(50)]
    await asyncio.gather(*(clients[0].submit(pdu) for pdu in pdus))
    await wait_until(lambda: sum(len(h.pdus) for h in sessions) == 30)
    assert [len(h.pdus) for h in sessions] == [10, 10, 10]  # every session's window full, the rest queued
    assert sim.stats()["receipts"]["queued"] == 20
    for held in sessions:
        held.released.set()
    await wait_until(lambda: sim.stats()["receipts"]["delivered"] == 50)


async def test_listings_are_served_in_slices_without_holding_the_event_loop(
    make_sim: SimFactory, connect: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magpie_carrier_simulator import http_api

    monkeypatch.setattr(http_api, "_LIST_SLICE", 3)
    sim = await make_sim()
    client = await connect(sim)
    for i in range(10):
        await submit_text(client, "8613800000009" if i % 2 else f"86137{i:08d}", f"text {i}")
    turns = 0
    stop = asyncio.Event()

    async def count_turns() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    body = await http_api._sliced_listing("submissions", (s.to_json() for s in sim.log.iter_list()))
    stop.set()
    await counter
    assert turns >= 4  # one yield per slice of 3 rows: 4 slices
    listed = json.loads(body)
    assert listed["count"] == 10
    assert [row["text"] for row in listed["submissions"]] == [f"text {i}" for i in range(10)]
    same = (await http_get(sim, "/submissions", destination="8613800000009")).json()
    assert [row["text"] for row in same["submissions"]] == ["text 1", "text 3", "text 5", "text 7", "text 9"]
    last = (await http_get(sim, "/messages", limit="2")).json()
    assert [row["text"] for row in last["messages"]] == ["text 8", "text 9"]
    await submit_text(client, "8613800000009", "text 3")  # the same message again: a duplicate
    messages = (await http_get(sim, "/messages", destination="8613800000009")).json()["messages"]
    assert [(m["text"], m["count"], len(m["message_ids"])) for m in messages][1] == ("text 3", 2, 2)
    assert sim.stats()["messages"] == 11 and sim.stats()["duplicates"] == 1
