"""DocumentRef: an issued document of a patient's, as the ``patient_documents`` hook returns it.

Kept apart from core.slots because it is data for exports (the FHIR plugin), not a page slot.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DocumentRef:
    """One immutable document; ``pdf`` holds the stored bytes when the plugin has them, so an
    export can hash exactly what the download route hands out (None: no hash is claimed)."""

    title: str
    kind: str
    issued_at: datetime  # UTC
    url: str  # the download route, a path on this site
    sha256: str = ""
    content_type: str = "application/pdf"
    size: int | None = None
    pdf: bytes | None = None
