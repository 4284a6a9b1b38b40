"""The Letters pages' forms, on WTForms (core.form_fields): each reads only the fields it declares.

What needs the chart or the ledger of letters (the care team, the letter kinds, the send methods,
a permission's dates against today) is checked by plugins.coordination.letters and the views with
what these forms carry; the forms own the shape of the post.
"""
from __future__ import annotations

from datetime import date

from core.form_fields import GliaForm, PostedField, TickField
from core.validators import db_int, parse_date
from plugins.coordination import compose, wording


def _whole(field) -> int | None:
    """A posted id or version as a whole number that fits its column, or None."""
    try:
        return db_int(field.data)
    except ValueError:
        return None


class LetterStartForm(GliaForm):
    """Start a letter: its kind and recipient (the care team and the kinds are checked by the rules)."""
    kind = PostedField("Kind of letter")
    recipient_id = PostedField("To")

    @property
    def recipient(self) -> int | None:
        return _whole(self.recipient_id)


class _VersionedForm(GliaForm):
    """A post about a letter as the clinician saw it: ``version`` is the version on their page."""
    version = PostedField()

    @property
    def seen_version(self) -> int | None:
        return _whole(self.version)


class SignLetterForm(_VersionedForm):
    pass


class _DraftBase(_VersionedForm):
    """A draft's parts (compose.FREE_TEXT), its next review date, what sensitive records it includes and
    where to go after saving."""
    next_review = PostedField("Next review")
    include_psychotherapy_notes = TickField("Include psychotherapy notes")
    include_part2 = TickField("Include 42 CFR Part 2 records")
    then = PostedField()

    @property
    def parts(self) -> dict[str, str]:
        """The letter's fields as stored: the free-text parts and the next review date."""
        return {**{name: self[name].data for name in compose.FREE_TEXT}, "next_review": self.next_review.data}


DraftForm = type("DraftForm", (_DraftBase,), {name: PostedField(name) for name in compose.FREE_TEXT})


class SentForm(GliaForm):
    """How and when a signed letter was sent; the method and the date are checked by the rules."""
    method = PostedField("How it was sent")
    sent_on = PostedField("Date sent")


class PermissionForm(GliaForm):
    """The patient's permission to share with one recipient of their care team (``team``: ids), given
    by ``today`` at the latest; once valid, ``granted`` and ``expires`` hold its dates."""
    recipient_id = PostedField("Recipient")
    granted_on = PostedField("Date given")
    expires_on = PostedField("Expires")
    covers_psychotherapy_notes = TickField("Authorizes psychotherapy notes")
    covers_part2 = TickField("Consents to 42 CFR Part 2 records")

    def __init__(self, *args, team: set[int], today: date, **kw):
        super().__init__(*args, **kw)
        self.team, self.today = team, today
        self.granted: date | None = None
        self.expires: date | None = None

    @property
    def recipient(self) -> int | None:
        return _whole(self.recipient_id)

    def validate(self, extra_validators=None):
        super().validate(extra_validators)
        if self.recipient not in self.team:
            self.recipient_id.errors = ["Choose a recipient from this patient's care team."]
        try:
            self.granted = parse_date(self.granted_on.data, field="Date given")
        except ValueError as problem:
            self.granted_on.errors = [str(problem)]
        if self.granted and self.granted > self.today:
            self.granted_on.errors = ["The date the permission was given cannot be in the future."]
        if self.expires_on.data and self.granted:
            try:
                self.expires = parse_date(self.expires_on.data, field="Expires", not_before=self.granted)
            except ValueError as problem:
                self.expires_on.errors = [str(problem)]
        return not self.errors


def posted(form: GliaForm) -> dict[str, str]:
    """The values that were posted, to show again on a refused page (absent ones keep the page's defaults)."""
    return {f.name: f.data for f in form if f.raw_data and isinstance(f.data, str)}


class _SettingsBase(GliaForm):
    """The permission rule, the induction lengths and each kind's own wording (``<kind>.<part>``)."""
    require_patient_permission = TickField("Require the patient's permission")
    induction_sessions = PostedField("Sessions in an induction series")
    esketamine_induction_sessions = PostedField("Sessions in an esketamine induction series")

    def __init__(self, *args, shipped: dict, **kw):
        super().__init__(*args, **kw)
        self.shipped = shipped

    def wording(self) -> dict[str, dict[str, str]]:
        """Per kind, the parts whose text differs from the shipped wording (each at most FIELD_LIMIT)."""
        overrides = {}
        for kind, spec in self.shipped.items():
            texts = {part: (self[f"{kind}.{part}"].data or "")[:compose.FIELD_LIMIT] for part in wording.EDITABLE}
            texts = {part: text for part, text in texts.items() if text and text != spec.get(part, "")}
            if texts:
                overrides[kind] = texts
        return overrides


def settings_form(shipped: dict) -> _SettingsBase:
    texts = {f"{kind}.{part}": PostedField(part) for kind in shipped for part in wording.EDITABLE}
    return type("LetterSettingsForm", (_SettingsBase,), texts)(shipped=shipped)
