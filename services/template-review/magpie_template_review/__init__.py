"""Magpie template review: reviews AIM card templates, SMS templates and SMS signatures.

Consumes ``TemplateSubmitted``, applies the automatic rule set (:mod:`.rules`), stores one review per
(subject, subject_id, revision) and produces ``TemplateReviewed`` with per-vendor results. Vendors named in
``MAGPIE_REVIEW_MANUAL_VENDORS`` wait for a human decision through the internal HTTP API (:mod:`.api`).
"""
