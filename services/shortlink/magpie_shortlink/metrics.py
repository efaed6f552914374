"""Prometheus metrics of the shortlink service (served on the edge's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LINKS_MINTED = Counter("magpie_shortlink_links_minted_total", "Links minted (newly stored)", ["route"])
CODE_COLLISIONS = Counter(
    "magpie_shortlink_code_collisions_total", "Derived codes already owned by another recipient (re-derived)"
)
DISPATCH_BATCHES = Counter("magpie_shortlink_dispatch_batches_total", "DispatchBatch records produced")
RESOLUTIONS = Counter(
    "magpie_shortlink_resolutions_total", "Successful resolve calls (first = billable, repeat = not)", ["kind"]
)
CLICKS = Counter("magpie_shortlink_clicks_total", "Browser clicks redirected to the landing page")
LOOKUPS = Counter("magpie_shortlink_lookups_total", "Link lookups by where the link was found", ["source"])
EDGE_SECONDS = Histogram(
    "magpie_shortlink_edge_request_seconds",
    "Latency of the edge's requests",
    ["endpoint", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
