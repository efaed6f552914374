"""Configuration from the environment: the default SMSC, per-carrier overrides, pacing, roles."""

from __future__ import annotations

import pytest

from magpie_common.smpp import ESME_ROK
from magpie_dispatcher.config import DEFAULT_CARRIER, DispatcherConfig, parse_roles
from magpie_dispatcher.smsc import SmscPool


async def ack(_link: object, _pdu: object) -> int:
    return ESME_ROK


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAGPIE_DISPATCHER_ROLES", "MAGPIE_SMPP_HOST", "MAGPIE_SMPP_PORT", "MAGPIE_CARRIER_TPS"):
        monkeypatch.delenv(name, raising=False)
    config = DispatcherConfig.from_env()
    assert config.roles == {"send", "receipts"}
    assert (config.smsc.host, config.smsc.port, config.http_port) == ("127.0.0.1", 12775, 18094)
    assert config.carrier_smsc == {}
    assert config.tps_for("CMCC") == 0.0
    assert config.receipt_window_s == 259_200 and config.grace_s == 259_200


async def test_carrier_overrides_and_shared_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGPIE_SMPP_HOST", "smsc.example")
    monkeypatch.setenv("MAGPIE_SMPP_PORT", "2775")
    monkeypatch.setenv("MAGPIE_SMPP_SYSTEM_ID", "magpie")
    monkeypatch.setenv("MAGPIE_SMPP_PASSWORD", "pw")
    monkeypatch.setenv("MAGPIE_SMPP_CMCC_HOST", "cmcc.example")
    monkeypatch.setenv("MAGPIE_SMPP_CMCC_PASSWORD", "cmccpw")
    monkeypatch.setenv("MAGPIE_SMPP_CTCC_SOURCE_ADDR", "10660000")  # same account, other source address
    monkeypatch.setenv("MAGPIE_CARRIER_TPS", "100")
    monkeypatch.setenv("MAGPIE_CARRIER_TPS_CUCC", "25")
    monkeypatch.setenv("MAGPIE_IN_DOUBT_GRACE_S", "600")
    monkeypatch.setenv("MAGPIE_DISPATCHER_ROLES", "send")
    config = DispatcherConfig.from_env()
    assert config.roles == {"send"}
    assert config.smsc_for("cmcc").host == "cmcc.example" and config.smsc_for("cmcc").password == "cmccpw"
    assert config.smsc_for("CMCC").system_id == "magpie"  # not overridden: the default's
    assert config.smsc_for("CUCC") == config.smsc and config.smsc_for("") == config.smsc
    assert (config.tps_for("CUCC"), config.tps_for("CMCC"), config.tps_for("")) == (25.0, 100.0, 100.0)
    assert config.grace_s == 600
    pool = SmscPool(config, ack)
    assert len(pool.links) == 2  # default (shared by CUCC, CTCC, CBN, unknown) and CMCC's own
    default_link, default_source = pool.route("")
    assert pool.route("CUCC") == (default_link, default_source)
    assert pool.route("ctcc") == (default_link, "10660000")
    cmcc_link, _ = pool.route("CMCC")
    assert cmcc_link is not default_link and cmcc_link.ns != default_link.ns
    assert pool.route("unknown-carrier")[0] is pool.routes[DEFAULT_CARRIER][0]


def test_invalid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAGPIE_SMPP_PASSWORD", "longer-than-8")
    with pytest.raises(ValueError, match="8 characters"):
        DispatcherConfig.from_env()
    with pytest.raises(ValueError, match="roles"):
        parse_roles("send,bogus")
