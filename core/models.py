"""Core tables. Every row that holds patient data carries clinic_id."""
from __future__ import annotations

import enum
from datetime import date, datetime, timezone

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """Stores naive UTC, hands back aware UTC: the same on SQLite and PostgreSQL."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store times in UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def enum_type(enum_cls: type[enum.Enum], length: int = 24) -> sa.Enum:
    """Stored as a plain string column (no native enum), read back as the enum."""
    return sa.Enum(enum_cls, native_enum=False, length=length, create_constraint=False,
                   values_callable=lambda e: [m.value for m in e])


def ts(nullable: bool = True, **kw):
    """A UTC timestamp field."""
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, **kw)


class Role(str, enum.Enum):
    admin = "admin"
    manager = "manager"
    clinician = "clinician"
    front_desk = "front_desk"
    patient = "patient"


STAFF_ROLES = (Role.admin, Role.manager, Role.clinician, Role.front_desk)


class Modality(str, enum.Enum):
    iv_ketamine = "iv_ketamine"
    im_ketamine = "im_ketamine"
    esketamine_nasal = "esketamine_nasal"
    sublingual = "sublingual"

    @property
    def label(self) -> str:
        return MODALITY_LABELS[self]


MODALITY_LABELS = {
    Modality.iv_ketamine: "IV ketamine infusion",
    Modality.im_ketamine: "IM ketamine",
    Modality.esketamine_nasal: "Esketamine nasal spray (Spravato)",
    Modality.sublingual: "Sublingual ketamine",
}


class SessionStatus(str, enum.Enum):
    scheduled = "scheduled"
    checked_in = "checked_in"
    in_progress = "in_progress"
    monitoring = "monitoring"
    discharged = "discharged"
    cancelled = "cancelled"
    no_show = "no_show"


class Clinic(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=40, unique=True, index=True)
    name: str = Field(max_length=200)
    address_line1: str = Field(default="", max_length=200)
    address_line2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    state: str = Field(default="", max_length=2)
    postal_code: str = Field(default="", max_length=10)
    phone: str = Field(default="", max_length=30)
    fax: str = Field(default="", max_length=30)
    timezone: str = Field(default="America/New_York", max_length=64)
    ein: str = Field(default="", max_length=10)
    npi: str = Field(default="", max_length=10)  # type 2 (organization)
    place_of_service: str = Field(default="11", max_length=2)
    rems_setting_id: str = Field(default="", max_length=40)  # Spravato REMS certified healthcare setting
    mfa_all_staff: bool = False  # every staff role needs a second factor here, not only admins and managers
    closed_on_federal_holidays: bool = True  # planning skips US federal holidays (core.scheduling)
    created_at: datetime | None = ts()


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(max_length=200)
    password_hash: str = Field(max_length=200)
    role: Role = Field(sa_type=enum_type(Role, 20))
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = ts()
    created_at: datetime | None = ts()
    # set while a confirmed second factor exists: read with the user on every request, no extra query
    mfa_enabled_at: datetime | None = ts()
    # a short code that unlocks the consent tablet (argon2, like the password); after a few wrong
    # tries only the password unlocks it (core.views.auth.tablet_unlock)
    tablet_pin_hash: str | None = Field(default=None, max_length=200)
    pin_failures: int = 0

    # Flask-Login's user protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_staff(self) -> bool:
        return self.role != Role.patient


class Membership(SQLModel, table=True):
    user_id: int = Field(foreign_key="user.id", primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", primary_key=True)
    last_used_at: datetime | None = ts()  # last switched to: the next sign-in opens this clinic


class UserSession(SQLModel, table=True):
    """Server-side login sessions, so logout or deactivation ends a copied cookie too."""

    __tablename__ = "user_session"
    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    clinic_id: int | None = Field(default=None, foreign_key="clinic.id")
    created_at: datetime = ts(nullable=False)
    last_seen_at: datetime = ts(nullable=False)
    ended_at: datetime | None = ts()
    ip: str = Field(default="", max_length=45)
    # set while the device is handed to this patient (core.tablet): only their tablet pages answer
    tablet_patient_id: int | None = Field(default=None, foreign_key="patient.id")


class MfaFactor(SQLModel, table=True):
    """A TOTP secret (RFC 6238), sealed with AES-GCM (core.mfa.seal); confirmed_at stays empty
    until the first code proves the enrolment."""

    __tablename__ = "mfa_factor"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    secret: str = Field(max_length=200)
    created_at: datetime = ts(nullable=False)
    confirmed_at: datetime | None = ts()
    last_step: int = 0  # the last accepted 30-second step: a code is never accepted twice


class MfaRecoveryCode(SQLModel, table=True):
    """A single-use recovery code, stored only as its argon2 hash."""

    __tablename__ = "mfa_recovery_code"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    code_hash: str = Field(max_length=200)
    used_at: datetime | None = ts()


class Provider(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    credentials: str = Field(default="", max_length=40)
    npi: str = Field(max_length=10)  # type 1 (individual)
    license_number: str = Field(default="", max_length=40)
    license_state: str = Field(default="", max_length=2)
    active: bool = True

    @property
    def display_name(self) -> str:
        cred = f", {self.credentials}" if self.credentials else ""
        return f"{self.first_name} {self.last_name}{cred}"


class Patient(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "mrn"),
        sa.Index("ix_patient_clinic_name", "clinic_id", "legal_last_name", "legal_first_name"),  # the list's order
        # the list of active patients and its count, read from the index alone
        sa.Index("ix_patient_clinic_active_name", "clinic_id", "archived", "legal_last_name", "legal_first_name", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    mrn: str = Field(max_length=20)
    legal_first_name: str = Field(max_length=100)
    legal_last_name: str = Field(max_length=100, index=True)
    preferred_name: str = Field(default="", max_length=100)
    dob: date
    sex: str = Field(default="U", max_length=1)  # F, M, X, U
    address_line1: str = Field(default="", max_length=200)
    address_line2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    state: str = Field(default="", max_length=2)
    postal_code: str = Field(default="", max_length=10)
    phone: str = Field(default="", max_length=30)
    email: str = Field(default="", max_length=254)
    member_id: str = Field(default="", max_length=40)
    escort_name: str = Field(default="", max_length=200)
    escort_phone: str = Field(default="", max_length=30)
    emergency_contact_name: str = Field(default="", max_length=200)
    emergency_contact_phone: str = Field(default="", max_length=30)
    user_id: int | None = Field(default=None, foreign_key="user.id", unique=True)
    archived: bool = False
    created_at: datetime | None = ts()

    @property
    def legal_name(self) -> str:
        return f"{self.legal_first_name} {self.legal_last_name}"

    @property
    def display_name(self) -> str:
        first = self.preferred_name or self.legal_first_name
        return f"{first} {self.legal_last_name}"


class PatientSearchTerm(SQLModel, table=True):
    """One word of a patient's names or MRN, casefolded: search finds patients by the start of any
    word through this table's index instead of reading every patient (core/search.py keeps it)."""

    __tablename__ = "patient_search_term"
    clinic_id: int = Field(foreign_key="clinic.id", primary_key=True)
    # byte order on PostgreSQL too, so a prefix is a range of the index whatever the database's locale
    term: str = Field(sa_type=sa.String(100).with_variant(sa.String(100, collation="C"), "postgresql"),
                      primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", primary_key=True, index=True)


class Diagnosis(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    code: str = Field(max_length=10)  # ICD-10-CM, billable (leaf) code
    description: str = Field(default="", max_length=300)
    is_primary: bool = False
    noted_on: date | None = None
    resolved_on: date | None = None


class Sensitivity(str, enum.Enum):
    """How far a fact may travel: letters carry only general data without an authorization."""

    general = "general"
    psychotherapy_note = "psychotherapy_note"
    part2 = "part2"


class Medication(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    name: str = Field(max_length=120)
    drug_class: str = Field(default="", max_length=60)  # ssri, snri, benzodiazepine, ...
    dose: str = Field(default="", max_length=60)
    frequency: str = Field(default="", max_length=60)
    prescriber: str = Field(default="", max_length=200)
    start_date: date | None = None
    stop_date: date | None = None
    is_trial: bool = False  # a past antidepressant trial documenting treatment resistance
    trial_weeks: int | None = None
    trial_outcome: str = Field(default="", max_length=60)  # no response, partial, not tolerated
    sensitivity: Sensitivity = Field(default=Sensitivity.general, sa_type=enum_type(Sensitivity, 24))
    created_at: datetime | None = ts()

    @property
    def current(self) -> bool:
        return not self.is_trial and self.stop_date is None


class ClinicianKind(str, enum.Enum):
    psychiatrist = "psychiatrist"
    therapist = "therapist"
    primary_care = "primary_care"


class OutsideClinician(SQLModel, table=True):
    __tablename__ = "outside_clinician"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    kind: ClinicianKind = Field(sa_type=enum_type(ClinicianKind, 20))
    name: str = Field(max_length=200)
    credentials: str = Field(default="", max_length=40)
    practice: str = Field(default="", max_length=200)
    npi: str = Field(default="", max_length=10)
    phone: str = Field(default="", max_length=30)
    fax: str = Field(default="", max_length=30)
    email: str = Field(default="", max_length=254)
    address: str = Field(default="", max_length=400)


class CareTeamMember(SQLModel, table=True):
    """Links a patient to an outside clinician, with psychotherapy details where relevant."""

    __tablename__ = "care_team_member"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    clinician_id: int = Field(foreign_key="outside_clinician.id")
    role: ClinicianKind = Field(sa_type=enum_type(ClinicianKind, 20))
    psychotherapy_modality: str = Field(default="", max_length=100)  # CBT, DBT, KAP integration
    psychotherapy_frequency: str = Field(default="", max_length=60)
    since: date | None = None


class Instrument(str, enum.Enum):
    phq9 = "PHQ-9"
    gad7 = "GAD-7"


class OutcomeScore(SQLModel, table=True):
    __tablename__ = "outcome_score"
    __table_args__ = (  # the dashboard's unreviewed item-9 alerts: a few rows, however many scores there are
        sa.Index("ix_outcome_score_open_alerts", "clinic_id", "taken_at",
                 sqlite_where=sa.text("alert = 1 AND reviewed_at IS NULL"),
                 postgresql_where=sa.text("alert AND reviewed_at IS NULL")),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    instrument: Instrument = Field(sa_type=enum_type(Instrument, 8))
    items: list[int] = Field(sa_type=sa.JSON)
    total: int
    band: str = Field(max_length=40)
    item9: int | None = None
    alert: bool = False  # PHQ-9 item 9 > 0: a clinician must see it
    reviewed_by_id: int | None = Field(default=None, foreign_key="user.id")
    reviewed_at: datetime | None = ts()
    taken_at: datetime = ts(nullable=False, index=True)
    treatment_id: int | None = Field(default=None, foreign_key="treatment_session.id")


class TreatmentSession(SQLModel, table=True):
    __tablename__ = "treatment_session"
    # a day's schedule is read by clinic and time, a chart's sessions by patient and time:
    # without these SQLite walks the clinic's whole history
    __table_args__ = (sa.Index("ix_treatment_session_clinic_scheduled", "clinic_id", "scheduled_at"),
                      sa.Index("ix_treatment_session_patient_scheduled", "patient_id", "scheduled_at"),
                      # each listed patient's next visit (the planner must not walk the clinic's future)
                      sa.Index("ix_treatment_session_clinic_patient_scheduled", "clinic_id", "patient_id", "scheduled_at"),
                      # discharged Spravato sessions still owing a REMS form, without a scan of the history
                      sa.Index("ix_treatment_session_clinic_modality_status", "clinic_id", "modality", "status"))
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    provider_id: int = Field(foreign_key="provider.id")
    modality: Modality = Field(sa_type=enum_type(Modality, 20))
    status: SessionStatus = Field(default=SessionStatus.scheduled, sa_type=enum_type(SessionStatus, 20), index=True)
    scheduled_at: datetime = ts(nullable=False, index=True)
    checked_in_at: datetime | None = ts()
    started_at: datetime | None = ts()
    monitoring_at: datetime | None = ts()
    discharged_at: datetime | None = ts()
    ended_at: datetime | None = ts()  # cancelled or no-show
    weight_kg: float | None = None
    dose_mg: float | None = None
    duration_minutes: int | None = None
    escort_name: str = Field(default="", max_length=200)
    escort_phone: str = Field(default="", max_length=30)
    escort_confirmed: bool = False
    notes: str = Field(default="", max_length=4000)
    # dosing and discharge (core.dosing): the observation clock runs from dosed_at
    dosed_at: datetime | None = ts()  # dosing began; for esketamine, the first device
    lot_number: str = Field(default="", max_length=40)  # esketamine kit lot (REMS form)
    dose_override_reason: str = Field(default="", max_length=1000)  # a clinician's reason for a dose outside the usual range
    dose_override_by_id: int | None = Field(default=None, foreign_key="user.id")
    discharge_ready_by_id: int | None = Field(default=None, foreign_key="user.id")  # judged stable and ready to leave
    ready_minutes: int | None = None  # esketamine: ready to leave this many minutes after the first device, but for the 2 h minimum
    version: int = 1  # bumped on every change, so a stale form is caught


class VitalPhase(str, enum.Enum):
    baseline = "baseline"
    post_dose = "post_dose"  # about 40 minutes after dosing
    discharge = "discharge"


class VitalSign(SQLModel, table=True):
    __tablename__ = "vital_sign"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    treatment_id: int = Field(foreign_key="treatment_session.id", index=True)
    phase: VitalPhase = Field(sa_type=enum_type(VitalPhase, 12))
    systolic: int
    diastolic: int
    heart_rate: int | None = None
    spo2: int | None = None
    taken_at: datetime = ts(nullable=False)


class SideEffect(SQLModel, table=True):
    __tablename__ = "side_effect"
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    treatment_id: int = Field(foreign_key="treatment_session.id", index=True)
    effect: str = Field(max_length=60)  # dissociation, sedation, nausea, ...
    severity: str = Field(max_length=10)  # mild, moderate, severe
    recorded_at: datetime = ts(nullable=False)
    resolved: bool | None = None  # asked at discharge: resolved by then?


class PluginState(SQLModel, table=True):
    """Per clinic: is a plugin enabled, and its settings."""

    __tablename__ = "plugin_state"
    clinic_id: int = Field(foreign_key="clinic.id", primary_key=True)
    plugin: str = Field(max_length=60, primary_key=True)
    enabled: bool = True
    settings: dict = Field(default_factory=dict, sa_type=sa.JSON)


class AuditEvent(SQLModel, table=True):
    """Append-only and hash-chained; holds ids, never PHI values."""

    __tablename__ = "audit_event"
    __immutable__ = True
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = ts(nullable=False, index=True)
    clinic_id: int | None = None
    user_id: int | None = Field(default=None, index=True)
    role: str = Field(default="", max_length=20)
    action: str = Field(max_length=60, index=True)
    object_type: str = Field(default="", max_length=60)
    object_id: str = Field(default="", max_length=60)
    patient_id: int | None = Field(default=None, index=True)
    outcome: str = Field(default="ok", max_length=20)
    ip: str = Field(default="", max_length=45)
    detail: str = Field(default="", max_length=500)
    # the legacy unkeyed chain (rows written before migration 0005); empty on newer rows
    prev_hash: str = Field(default="", max_length=64)
    hash: str = Field(default="", max_length=64)
    # newer rows: a random id (a copied row shows as a duplicate) and a keyed MAC of the row
    nonce: str | None = Field(default=None, max_length=32, index=True, unique=True)
    mac: str | None = Field(default=None, max_length=64)


class AuditSeal(SQLModel, table=True):
    """An audit row's place in the keyed chain, given by the sealing step (core.audit_chain)."""

    __tablename__ = "audit_seal"
    __immutable__ = True
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    event_id: int = Field(foreign_key="audit_event.id", unique=True)
    hash: str = Field(max_length=64)
    sealed_at: datetime = ts(nullable=False)


class ImmutableRecordError(Exception):
    """Raised when code tries to change or delete an issued or signed record."""


@event.listens_for(OrmSession, "before_flush")
def _refuse_changes_to_immutable(session, _ctx, _instances):
    """Signed and issued records are never edited: corrections are new linked records.

    A model opts in with ``__immutable__ = True``; ``__mutable_fields__`` names the few
    columns (such as a void marker) that may still change.
    """
    for obj in session.deleted:
        if getattr(obj, "__immutable__", False):
            raise ImmutableRecordError(f"{type(obj).__name__} records cannot be deleted")
    for obj in session.dirty:
        if not getattr(obj, "__immutable__", False) or not session.is_modified(obj):
            continue
        allowed = set(getattr(obj, "__mutable_fields__", ()))
        state = sa.inspect(obj)
        changed = {a.key for a in state.attrs if a.history.has_changes()}
        if changed - allowed:
            raise ImmutableRecordError(
                f"{type(obj).__name__} is immutable; tried to change {sorted(changed - allowed)}"
            )


class ChangeRequest(SQLModel, table=True):
    """A patient's request, from the portal, to move or cancel one of their upcoming sessions.

    Nothing moves by itself: the front desk calls the patient, moves or cancels the session with
    the usual checks, then marks the request handled."""

    __tablename__ = "portal_change_request"
    __table_args__ = (sa.Index("ix_portal_change_request_open", "clinic_id", "handled_at"),)
    id: int | None = Field(default=None, primary_key=True)
    clinic_id: int = Field(foreign_key="clinic.id", index=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    treatment_id: int = Field(foreign_key="treatment_session.id", index=True)
    kind: str = Field(max_length=10)  # move, cancel (core.portal.forms.KINDS)
    reason: str = Field(max_length=20)  # a key of core.portal.forms.REASONS
    note: str = Field(default="", max_length=300)
    created_at: datetime = ts(nullable=False)
    handled_at: datetime | None = ts()
    handled_by_id: int | None = Field(default=None, foreign_key="user.id")


class QuestionnairePolicy(SQLModel, table=True):
    """When a clinic asks its patients for PHQ-9 (and GAD-7) in the portal; no row means the default
    of core.questionnaires.DEFAULT_POLICY."""

    __tablename__ = "questionnaire_policy"
    clinic_id: int = Field(foreign_key="clinic.id", primary_key=True)
    instruments: str = Field(default="phq9_gad7", max_length=20)  # phq9, phq9_gad7, off
    rule: str = Field(default="every", max_length=20)  # every, first_then_every
    every_n: int = 3  # with first_then_every: sessions 1, 1+N, 1+2N, ...
    days_before: int = 3  # due from this many days before the session
