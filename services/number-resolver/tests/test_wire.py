"""The wire-level ClassifiedBatch builder gives exactly the message the field-by-field build gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from magpie.v1 import common_pb2, resolve_pb2, task_pb2
from magpie_common.config import Settings
from magpie_number_resolver.app import build
from magpie_number_resolver.classifier import Capability
from magpie_number_resolver.config import ResolverConfig
from magpie_number_resolver.fast_mget import pack_mget
from magpie_number_resolver.wire import encode_varint, retag_all, retag_fields, retag_recipient
from magpie_number_resolver.worker import encoded_fields

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
recipients = st.builds(
    task_pb2.Recipient,
    index=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    mobile=text,
    params=st.dictionaries(text, text, max_size=6),
    custom_url=text,
    sms_params=st.lists(text, max_size=4),
)


def expected(recipient: task_pb2.Recipient) -> resolve_pb2.ClassifiedRecipient:
    return resolve_pb2.ClassifiedRecipient(
        index=recipient.index,
        mobile=recipient.mobile,
        params=recipient.params,
        custom_url=recipient.custom_url,
        sms_params=recipient.sms_params,
    )


@settings(max_examples=300, deadline=None)
@given(recipients)
def test_retag_equals_copying_the_fields(recipient: task_pb2.Recipient) -> None:
    raw = recipient.SerializeToString()
    assert resolve_pb2.ClassifiedRecipient.FromString(retag_recipient(raw)) == expected(recipient)
    assert resolve_pb2.ClassifiedRecipient.FromString(retag_fields(raw)) == expected(recipient)


@settings(max_examples=100, deadline=None)
@given(st.lists(recipients, max_size=8), st.randoms())
def test_non_canonical_encodings_unknown_fields_and_any_field_order(
    items: list[task_pb2.Recipient], rng: object
) -> None:
    for recipient in items:
        fields = [
            task_pb2.Recipient(index=recipient.index).SerializeToString(),
            task_pb2.Recipient(mobile=recipient.mobile).SerializeToString(),
            *(task_pb2.Recipient(params={k: v}).SerializeToString() for k, v in recipient.params.items()),
            task_pb2.Recipient(custom_url=recipient.custom_url).SerializeToString(),
            *(task_pb2.Recipient(sms_params=[s]).SerializeToString() for s in recipient.sms_params),
            b"\x30\x05",  # field 6 (varint), unknown to Recipient: dropped (6 is ClassifiedRecipient.route)
            b"\xa2\x06\x03abc",  # field 100 (length-delimited), unknown: dropped
            b"\x3d\x01\x02\x03\x04",  # field 7 fixed32, unknown: dropped
        ]
        rng.shuffle(fields)  # type: ignore[attr-defined]
        raw = b"".join(fields)
        reparsed = task_pb2.Recipient.FromString(raw)
        (out,) = retag_all([raw])
        assert resolve_pb2.ClassifiedRecipient.FromString(out) == expected(reparsed)


def test_varints_match_protobuf() -> None:
    for value in (1, 127, 128, 300, 16383, 16384, 2**31 - 1, -1, -(2**31)):
        message = task_pb2.RecipientBatch(batch_no=value)
        assert b"\x18" + encode_varint(value) == message.SerializeToString()


async def test_the_classifiers_packed_command_is_the_mget_of_its_keys(settings: Settings) -> None:
    components = await build(settings, ResolverConfig(worker=False))
    await components.start()
    try:
        classifier = components.classifier
        mobiles = [
            "13800138000",
            "+86 139-0013-9000",
            "12345678901",
            "1380013800",
            "１３８００１３８０００",
            "18912345678",
        ]
        prepared = classifier.prepare(mobiles)
        valid = [b"8613800138000", b"8613900139000", b"8618912345678"]
        assert prepared.valid == valid
        assert prepared.carriers == ["CMCC", "CMCC", None, None, None, "CTCC"]
        keys = [components.registry.key(m.decode()).encode() for m in valid]
        keys += [components.portability.key(m.decode()).encode() for m in valid]
        keys += [components.downgrades.flag_key(m.decode()).encode() for m in valid]
        keys.append(components.hot.marker.encode())
        assert prepared.command == pack_mget(keys)
        assert prepared.key_count == len(keys)
        assert classifier.prepare(["x", ""]).command == b""
    finally:
        await components.close()


def test_fields_of_a_verdict_are_serialised_once_per_route_and_carrier() -> None:
    capability = Capability(False, False, "APP_TOO_OLD", "HUAWEI")
    first = encoded_fields(capability, common_pb2.ROUTE_DEGRADED, "CMCC")
    assert encoded_fields(capability, common_pb2.ROUTE_DEGRADED, "CMCC") is first
    parsed = resolve_pb2.ClassifiedRecipient.FromString(first)
    assert (parsed.route, parsed.reason, parsed.carrier, parsed.vendor) == (
        common_pb2.ROUTE_DEGRADED,
        "APP_TOO_OLD",
        "CMCC",
        "HUAWEI",
    )
