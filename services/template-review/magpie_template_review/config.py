"""Configuration of the template-review service (beyond the shared infrastructure ``Settings``).

- ``MAGPIE_REVIEW_MANUAL_VENDORS``  comma list of vendors whose automatic approvals wait for a human
  (e.g. ``OPPO,VIVO``; ``CARRIER`` holds SMS templates and signatures). Empty (default): fully automatic.
- ``MAGPIE_REVIEW_API_TOKEN``       when set, the /internal/reviews API requires ``Authorization: Bearer <token>``.
- ``MAGPIE_REVIEW_WORDS_FILE``      comma list of extra sensitive-word files (format of data/sensitive_words.txt).
- ``MAGPIE_REVIEW_REPUBLISH_INTERVAL_S`` how often unpublished decisions are re-sent (default 5 s).
- ``MAGPIE_HTTP_HOST`` / ``MAGPIE_HTTP_PORT`` the HTTP listener (default 127.0.0.1:18091): internal API + ops routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from magpie_common.config import env_float, env_int, env_str

SERVICE_NAME = "template-review"
DEFAULT_PORT = 18091


def split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class ReviewConfig:
    manual_vendors: frozenset[str] = field(default_factory=frozenset)
    api_token: str = ""
    extra_word_files: tuple[str, ...] = ()
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_PORT
    republish_interval_s: float = 5.0

    @classmethod
    def from_env(cls) -> ReviewConfig:
        return cls(
            manual_vendors=frozenset(v.upper() for v in split_list(env_str("MAGPIE_REVIEW_MANUAL_VENDORS", ""))),
            api_token=env_str("MAGPIE_REVIEW_API_TOKEN", ""),
            extra_word_files=split_list(env_str("MAGPIE_REVIEW_WORDS_FILE", "")),
            http_host=env_str("MAGPIE_HTTP_HOST", "127.0.0.1"),
            http_port=env_int("MAGPIE_HTTP_PORT", DEFAULT_PORT),
            republish_interval_s=env_float("MAGPIE_REVIEW_REPUBLISH_INTERVAL_S", 5.0),
        )
