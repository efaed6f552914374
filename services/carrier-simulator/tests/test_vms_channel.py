"""The simulator's VMS channel over HTTP: authentication, template registration, idempotent submits, refusals,
leased notifications, replies, expiry."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from magpie_carrier_simulator import CarrierSimulator, SimulatorConfig
from magpie_carrier_simulator.vms import carrier_of, national

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
TEMPLATE = {
    "revision": 1,
    "subject": "新车",
    "sign": "喜鹊",
    "carriers": ["CMCC", "CUCC"],
    "params": ["#p_1#"],
    "elements": [
        {"frame": 1, "position": 1, "type": "png", "data": base64.b64encode(PNG).decode()},
        {"frame": 1, "position": 2, "type": "txt", "text": "【喜鹊】#p_1#您好"},
    ],
}


@pytest.fixture
async def sim() -> AsyncIterator[CarrierSimulator]:
    simulator = CarrierSimulator(
        SimulatorConfig(smpp_port=0, http_port=0, accounts={"magpie": "pw"}, dlr_delay=0.02, reject_prefixes=("158",))
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


def client(sim: CarrierSimulator, auth: tuple[str, str] | None = ("magpie", "pw")) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.http_port}/vms/v1", auth=auth)


async def poll_all(http: httpx.AsyncClient, count: int, lease_s: float = 30) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(200):
        got += (await http.get("/notifications", params={"lease_s": lease_s})).json()["notifications"]
        if len(got) >= count:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(got)} notifications of {count}")


def test_numbers() -> None:
    assert national("+8613900000001") == "13900000001" == national("8613900000001")
    assert carrier_of("13900000001") == "CMCC" and carrier_of("18600000001") == "CUCC"
    assert carrier_of("18900000001") == "CTCC" and carrier_of("12345") is None and carrier_of("11100000000") is None


async def test_auth_and_registration_rules(sim: CarrierSimulator) -> None:
    async with client(sim, None) as anonymous:
        assert (await anonymous.put("/templates/T1", json=TEMPLATE)).status_code == 401
    async with client(sim, ("magpie", "wrong")) as wrong:
        assert (await wrong.post("/submit", json={})).status_code == 401
    async with client(sim) as http:
        ok = await http.put("/templates/T1", json=TEMPLATE)
        assert ok.status_code == 200 and ok.json() == {
            "template_id": "T1",
            "revision": 1,
            "size": len(PNG) + len("【喜鹊】#p_1#您好".encode()),
        }
        text_only = {**TEMPLATE, "elements": TEMPLATE["elements"][1:]}
        assert (await http.put("/templates/T2", json=text_only)).json()["code"] == "INVALID_TEMPLATE"
        bad = {**TEMPLATE, "elements": [{"type": "png", "data": "@@"}, TEMPLATE["elements"][1]]}
        assert (await http.put("/templates/T2", json=bad)).status_code == 400
        assert (await http.put("/templates/T2", content=b"not json")).status_code == 400
        unknown = await http.post("/submit", json={"template_id": "T9", "revision": 1, "recipients": []})
        assert (unknown.status_code, unknown.json()["code"]) == (404, "UNKNOWN_TEMPLATE")
        newer = await http.post(
            "/submit", json={"template_id": "T1", "revision": 2, "recipients": [{"client_msg_id": "x"}]}
        )
        assert newer.status_code == 404  # that revision is not registered yet
        assert (await http.post("/submit", json={"template_id": "T1", "recipients": []})).status_code == 400
        assert (await http.get("/nothing")).status_code == 404


async def test_submit_is_idempotent_and_reports_are_leased(sim: CarrierSimulator) -> None:
    recipients = [
        {"client_msg_id": "a", "mobile": "13900000001", "params": ["张"]},
        {"client_msg_id": "b", "mobile": "18900000002", "params": ["李"]},  # CTCC did not approve
        {"client_msg_id": "c", "mobile": "12345", "params": ["王"]},
        {"client_msg_id": "d", "mobile": "13900000004", "params": []},
        {"client_msg_id": "e", "mobile": "+8615800000005", "params": ["赵"]},  # rejected prefix
    ]
    async with client(sim) as http:
        await http.put("/templates/T1", json=TEMPLATE)
        first = (await http.post("/submit", json={"template_id": "T1", "revision": 1, "recipients": recipients})).json()
        results = {r["client_msg_id"]: r for r in first["results"]}
        assert results["a"]["status"] == "accepted" and results["a"]["carrier"] == "CMCC"
        assert results["b"]["code"] == "TEMPLATE_NOT_APPROVED" and results["c"]["code"] == "INVALID_NUMBER"
        assert results["d"]["code"] == "PARAM_MISMATCH" and results["e"]["status"] == "accepted"
        again = (await http.post("/submit", json={"template_id": "T1", "revision": 1, "recipients": recipients})).json()
        assert again == first  # same answers, nothing sent twice
        stats = (await http.get("/stats")).json()
        assert (stats["accepted"], stats["refused"], stats["duplicate_submits"]) == (2, 3, 5)

        reports = await poll_all(http, 2)
        by_client = {r["client_msg_id"]: r for r in reports}
        assert by_client["a"]["status"] == "DELIVRD" and by_client["a"]["msg_id"] == results["a"]["msg_id"]
        assert by_client["e"]["status"] == "REJECTD" and by_client["a"]["done_time"].endswith("Z")
        # leased: not handed out again while the lease runs
        assert (await http.get("/notifications")).json()["notifications"] == []
        assert (await http.post("/notifications/ack", json={"ids": [by_client["a"]["id"]]})).json() == {"acked": 1}
        assert (await http.post("/notifications/ack", json={"ids": "x"})).status_code == 400

        shown = (await http.get("/messages", params={"mobile": "+8613900000001"})).json()["messages"]
        assert shown[0]["texts"] == ["【喜鹊】张您好"] and shown[0]["status"] == "DELIVRD"
        reply = (await http.post("/mo", json={"mobile": "13900000001", "content": "好的"})).json()
        assert reply["linked_msg_id"] == results["a"]["msg_id"]
        assert (
            await http.post("/mo", json={"mobile": "15800000005", "content": "x"})
        ).status_code == 404  # not delivered


async def test_lease_expiry_and_message_validity(sim: CarrierSimulator) -> None:
    async with client(sim) as http:
        await http.put("/templates/T1", json=TEMPLATE)
        body = {
            "template_id": "T1",
            "revision": 1,
            "expire_s": 0.01,  # shorter than the delivery delay
            "recipients": [{"client_msg_id": "z", "mobile": "18600000001", "params": ["x"]}],
        }
        await http.post("/submit", json=body)
        [report] = await poll_all(http, 1, lease_s=0.1)
        assert report["status"] == "EXPIRED"
        await asyncio.sleep(0.15)
        [again] = (await http.get("/notifications")).json()["notifications"]  # the lease ended unacknowledged
        assert again["id"] == report["id"]
    async with client(sim, ("other", "pw")) as other:
        assert (await other.get("/notifications")).status_code == 401
