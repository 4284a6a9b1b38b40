"""Adds a section to care-coordination letters, and fails to render it while ``BROKEN`` is set.

Used to prove that a letter is never signed without a section another plugin contributes.
"""
from __future__ import annotations

from markupsafe import Markup

from core.hookspecs import hookimpl
from core.slots import LetterSection

TITLE = "Outside lab results"
BROKEN = {"on": True}


class LabNotesError(RuntimeError):
    pass


@hookimpl
def letter_sections(clinic, patient, recipient):
    if BROKEN["on"]:
        raise LabNotesError("the lab system did not answer")
    return [LetterSection(TITLE, Markup("<p>No outstanding lab results on file.</p>"), order=70)]
