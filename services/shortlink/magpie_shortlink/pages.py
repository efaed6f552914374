"""The edge's HTML: the H5 landing page (the card as a web page) and the error pages. Everything is escaped."""

from __future__ import annotations

import re
from html import escape

from magpie_shortlink.links import LinkRecord, iso_utc

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f3f4f6;color:#111}"
    ".card{max-width:28rem;margin:2rem auto;background:#fff;border-radius:12px;padding:1.25rem 1.5rem;"
    "box-shadow:0 1px 4px rgba(0,0,0,.12)}h1{font-size:1.25rem;margin:0 0 1rem}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1rem;margin:0}dt{color:#555}dd{margin:0}"
    ".foot{color:#777;font-size:.8rem;margin-top:1rem}"
)


def _natural_key(name: str) -> tuple[object, ...]:
    """Parameters named 1, 2, ..., 10 list in numeric order."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def card_page(record: LinkRecord) -> str:
    title = record.tpl_name or record.tpl_id or "Message"
    rows = "".join(
        f"<dt>{escape(name)}</dt><dd>{escape(record.params[name])}</dd>"
        for name in sorted(record.params, key=_natural_key)
    )
    body = (
        f'<main class="card"><h1>{escape(title)}</h1>'
        f'<dl class="params">{rows}</dl>'
        f'<p class="foot">Valid until {escape(iso_utc(record.expires_at_ms))}</p></main>'
    )
    return _document(title, body)


def error_page(status: int, message: str) -> str:
    body = f'<main class="card"><h1>{status}</h1><p>{escape(message)}</p></main>'
    return _document(f"{status} {message}", body)
