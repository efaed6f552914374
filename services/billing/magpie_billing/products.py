"""The billable products and their mapping to the ``UsageProduct`` enum of the usage stream."""

from __future__ import annotations

from enum import StrEnum

from magpie.v1 import billing_pb2


class Product(StrEnum):
    """A billable product. The value is what the ledger, packages and the HTTP API carry."""

    AIM_SMS = "AIM_SMS"  # one SMS segment of a smart or degraded (plain-SMS fallback) message
    AIM_RESOLUTION = "AIM_RESOLUTION"  # one successful, billable resolution of a smart-message link
    VMS = "VMS"  # one successfully delivered video SMS
    SA_CLICK = "SA_CLICK"  # one service-number click: menu entry, homepage, shortcut (SA_CLICKS, shortlink edge)

    @property
    def usage_product(self) -> billing_pb2.UsageProduct.ValueType:
        return _USAGE_PRODUCT[self]


_USAGE_PRODUCT: dict[Product, billing_pb2.UsageProduct.ValueType] = {
    Product.AIM_SMS: billing_pb2.USAGE_PRODUCT_AIM_SMS,
    Product.AIM_RESOLUTION: billing_pb2.USAGE_PRODUCT_AIM_RESOLUTION,
    Product.VMS: billing_pb2.USAGE_PRODUCT_VMS,
    Product.SA_CLICK: billing_pb2.USAGE_PRODUCT_SA_CLICK,
}
