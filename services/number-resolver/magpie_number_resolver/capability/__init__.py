"""Handset capability table (KooMessage 表5-1) and rule engine of the number resolver.

>>> from magpie_number_resolver.capability import Device, evaluate
>>> evaluate(Device(brand="HUAWEI", model="Mate 40 Pro", os_name="HarmonyOS", os_version="3.0",
...                 app_version="11.1.1.400"), frozenset({"HUAWEI"})).outcome
<Outcome.RENDER_BUTTONS: 'render_buttons'>
"""

from .bench import bench
from .engine import CapabilityEngine, Device, Outcome, Reason, Verdict, classify, default_engine, evaluate
from .loader import DEFAULT_TABLE_PATH, TableError, load_table, parse_table
from .msisdn import normalize_msisdn
from .table import VENDOR_CODES, CapabilityTable, Model
from .version import Version, VersionError

__all__ = [
    "DEFAULT_TABLE_PATH",
    "VENDOR_CODES",
    "CapabilityEngine",
    "CapabilityTable",
    "Device",
    "Model",
    "Outcome",
    "Reason",
    "TableError",
    "Verdict",
    "Version",
    "VersionError",
    "bench",
    "classify",
    "default_engine",
    "evaluate",
    "load_table",
    "normalize_msisdn",
    "parse_table",
]
