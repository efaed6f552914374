"""Every Kafka topic of the system, with its partition count, created before any consumer starts.

Recipient-level topics are keyed by ``task_id:batch_no`` (ordering per batch, parallelism across partitions) and
carry hundreds of recipients per record, so a million recipients are a few thousand records.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from magpie_common.config import Settings, env_int

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topic:
    name: str  # without the prefix
    partitions: int
    compacted: bool = False
    doc: str = ""


TEMPLATE_SUBMITTED = Topic("template.submitted", 3, doc="gateway -> template-review (TemplateSubmitted)")
TEMPLATE_REVIEWED = Topic("template.reviewed", 3, doc="template-review -> gateway (TemplateReviewed)")
TASK_ACCEPTED = Topic("task.accepted", 3, doc="gateway -> projector (TaskAccepted)")
RECIPIENTS = Topic("recipients", 6, doc="gateway -> number-resolver (RecipientBatch)")
CLASSIFIED = Topic("classified", 6, doc="number-resolver -> shortlink, projector (ClassifiedBatch)")
DISPATCH = Topic("dispatch", 6, doc="shortlink -> dispatcher (DispatchBatch)")
DELIVERY = Topic(
    "delivery", 6, doc="dispatcher (and shortlink: custom codes taken) -> projector, billing, receipts (DeliveryBatch)"
)
LINK = Topic("link", 6, doc="shortlink edge -> projector, billing, receipts, resolver (LinkEvent)")
USAGE = Topic("usage", 6, doc="billing -> external billing systems (UsageEvent)")
CALLBACKS = Topic("callbacks", 3, compacted=True, doc="gateway -> dispatcher receipts (CallbackConfigured)")
DLQ = Topic("dlq", 3, doc="dead letters of every consumer (DeadLetter)")
VMS_TEMPLATES = Topic("vms.templates", 3, compacted=True, doc="gateway -> dispatcher vms (VmsTemplateRecord)")
VMS_SEND = Topic("vms.send", 6, doc="gateway -> dispatcher vms: VMS send task recipients (VmsSendBatch)")
VMS_DELIVERY = Topic("vms.delivery", 6, doc="dispatcher vms -> gateway, billing, VMS receipts (DeliveryBatch)")
VMS_MO = Topic("vms.mo", 3, doc="dispatcher vms -> VMS receipts: replies to VMS messages (VmsMoEvent)")
VMS_CALLBACKS = Topic("vms.callbacks", 3, compacted=True, doc="gateway -> VMS receipts (CallbackConfigured)")
VMS_TEMPLATE_STATUS = Topic("vms.template-status", 3, doc="gateway -> VMS receipts (VmsTemplateStatus)")
TASK_CONTROL = Topic("task.control", 3, doc="gateway -> dispatcher: commands on send tasks, e.g. cancel (TaskControl)")
AIM_TEMPLATE_STATUS = Topic(
    "aim.template-status", 3, doc="gateway -> dispatcher receipts: AIM template status changes, keyed by tpl_id"
)
SA_PUBLISHED = Topic(
    "sa.published", 3, compacted=True, doc="gateway -> shortlink edge: service-number snapshots (SaPublicationRecord)"
)
SA_CLICKS = Topic("sa.clicks", 6, doc="shortlink edge -> billing: service-number clicks (SaClicked)")

ALL_TOPICS: tuple[Topic, ...] = (
    TEMPLATE_SUBMITTED,
    TEMPLATE_REVIEWED,
    TASK_ACCEPTED,
    RECIPIENTS,
    CLASSIFIED,
    DISPATCH,
    DELIVERY,
    LINK,
    USAGE,
    CALLBACKS,
    DLQ,
    VMS_TEMPLATES,
    VMS_SEND,
    VMS_DELIVERY,
    VMS_MO,
    VMS_CALLBACKS,
    VMS_TEMPLATE_STATUS,
    TASK_CONTROL,
    AIM_TEMPLATE_STATUS,
    SA_PUBLISHED,
    SA_CLICKS,
)


def topic_name(settings: Settings, topic: Topic) -> str:
    return settings.topic_prefix + topic.name


async def ensure_topics(settings: Settings, topics: tuple[Topic, ...] = ALL_TOPICS, timeout_s: float = 60) -> None:
    """Create missing topics with explicit partition counts and wait until the broker lists them all."""
    replication = env_int("KAFKA_REPLICATION_FACTOR", 1)
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())  # type: ignore[arg-type]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if topic_name(settings, t) not in existing]
        if missing:
            new = [
                NewTopic(
                    topic_name(settings, t),
                    num_partitions=t.partitions,
                    replication_factor=replication,
                    topic_configs={"cleanup.policy": "compact"} if t.compacted else {},
                )
                for t in missing
            ]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics", extra={"topics": [t.name for t in new]})
        wanted = {topic_name(settings, t) for t in topics}
        while not wanted <= set(await admin.list_topics()):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"topics not visible after {timeout_s}s: {sorted(wanted)}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
