"""A plain, normalised view of a ``TemplateSubmitted`` event: what the rules read."""

from __future__ import annotations

from dataclasses import dataclass

from magpie.v1 import template_pb2


@dataclass(frozen=True)
class Button:
    text: str
    action: str
    target: str = ""


@dataclass(frozen=True)
class Submission:
    subject: int
    subject_id: str
    revision: int
    name: str = ""
    use_template_type: str = ""
    texts: tuple[str, ...] = ()
    vendors: tuple[str, ...] = ()
    param_count: int = 0
    param_names: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()

    @classmethod
    def from_message(cls, msg: template_pb2.TemplateSubmitted) -> Submission:
        return cls(
            subject=msg.subject,
            subject_id=msg.subject_id,
            revision=msg.revision,
            name=msg.name,
            use_template_type=msg.use_template_type,
            texts=tuple(msg.texts),
            vendors=tuple(msg.vendors),
            param_count=msg.param_count,
            param_names=tuple(msg.param_names),
            buttons=tuple(Button(b.text, b.action, b.target) for b in msg.buttons),
        )

    def requested_vendors(self) -> tuple[str, ...]:
        """Vendor ids upper-cased, blanks dropped, duplicates removed (first occurrence kept)."""
        seen: dict[str, None] = {}
        for vendor in self.vendors:
            key = vendor.strip().upper()
            if key:
                seen.setdefault(key, None)
        return tuple(seen)
