"""Patients: the list with search, create/edit, and the chart.

Search terms are PHI, so the search is a POST form and its results page through POSTs too;
no name or date of birth ever lands in a URL. Every id in a URL is looked up within the
current clinic, and every read of patient data writes one audit row.
"""
from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import false, func
from sqlmodel import select

from core import audit, hooks, mail, scoring, search
from core.auth import clinic_row_or_404, staff
from core.db import get_session, reads
from core.clock import local_datetime
from core.vocab import SEXES
from core.views.chart_forms import (DRUG_CLASSES, CareTeamForm, DiagnosisForm, MedicationForm, ScheduleForm, ScoreForm,
                                    SearchForm)
from core.views.patient_form import PatientForm
from core.models import (CareTeamMember, ClinicianKind, Diagnosis, Instrument, Medication, Modality, OutcomeScore,
                         OutsideClinician, Patient, Provider, Sensitivity, TreatmentSession, User, utcnow)
from core.outcomes import measures
from core.outcomes.chart import trend_chart
from core.questionnaires import due_questionnaires
from core.scheduling import progress as course_progress
from core.scheduling.calendar import Calendar
from core.scheduling.planner import Request, in_the_way
from core.slots import Panel
from core.validators import icd10_description, icd10_problem
from core.web import after_commit

bp = Blueprint("patients", __name__, url_prefix="/patients")
PAGE_SIZE = 25
CLINICAL_ROLES = ("admin", "manager", "clinician")  # front desk sees demographics and the schedule only
CHARTING_ROLES = ("admin", "clinician")
ANSWERS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]
QUESTIONS = {
    Instrument.phq9: ["Little interest or pleasure in doing things", "Feeling down, depressed, or hopeless",
                      "Trouble falling or staying asleep, or sleeping too much", "Feeling tired or having little energy",
                      "Poor appetite or overeating", "Feeling bad about yourself, or that you are a failure",
                      "Trouble concentrating on things", "Moving or speaking slowly, or being fidgety or restless",
                      "Thoughts that you would be better off dead, or of hurting yourself"],
    Instrument.gad7: ["Feeling nervous, anxious, or on edge", "Not being able to stop or control worrying",
                      "Worrying too much about different things", "Trouble relaxing",
                      "Being so restless that it is hard to sit still", "Becoming easily annoyed or irritable",
                      "Feeling afraid, as if something awful might happen"],
}


def is_clinical(user) -> bool:
    return user.role.value in CLINICAL_ROLES


def get_patient(patient_id: int) -> Patient:
    """The patient with this id in the current clinic, or 404 with a denied-access audit row."""
    return clinic_row_or_404(Patient, patient_id, object_type="patient", action="patient.access")


def _dob_of(term: str) -> date | None:
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y"):
        try:
            return datetime.strptime(term, fmt).date()
        except ValueError:
            continue
    return None


def search_filter(query: str):
    """Each word must start a word of the names or the MRN, or (when it reads as a date) be the birth date."""
    conditions = []
    for word in query.split()[:6]:
        dob = _dob_of(word)
        conditions.append(Patient.dob == dob if dob is not None else Patient.id.in_(search.starts(g.clinic.id, word)))
    return conditions


@bp.route("/", methods=["GET", "POST"])
@staff()
@reads
def index():
    """GET shows everyone (paged); POST runs a search, keeping the terms in the form, not the URL."""
    form = SearchForm(request.args) if request.method == "GET" else SearchForm()
    query = form.q.data if request.method == "POST" else ""
    page = max(1, form.page.number() or 1)
    db = get_session()
    where = [Patient.clinic_id == g.clinic.id, Patient.archived == false(), *search_filter(query)]
    total = db.exec(select(func.count()).select_from(Patient).where(*where)).one()
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(page, pages)
    patients = db.exec(select(Patient).where(*where).order_by(Patient.legal_last_name, Patient.legal_first_name, Patient.id)
                       .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    ids = [p.id for p in patients]
    next_visit = dict(db.exec(select(TreatmentSession.patient_id, func.min(TreatmentSession.scheduled_at))
                              .where(TreatmentSession.clinic_id == g.clinic.id, TreatmentSession.patient_id.in_(ids),
                                     TreatmentSession.status.in_(["scheduled", "checked_in"]),
                                     TreatmentSession.scheduled_at >= utcnow().replace(hour=0, minute=0, second=0))
                              .group_by(TreatmentSession.patient_id)).all()) if ids else {}
    audit.record("patient.search" if query else "patient.list", object_type="patient",
                 detail=f"page {page}, {len(patients)} shown")
    return render_template("patients/index.html", patients=patients, query=query, page=page, pages=pages,
                           total=total, next_visit=next_visit, form=form)


# -- create and edit -------------------------------------------------------------------------

def _patient_form_values(p: Patient) -> dict:
    values = {field.name: getattr(p, field.name) for field in PatientForm(formdata=None)}
    values["dob"] = p.dob.isoformat()
    return values


@bp.route("/new", methods=["GET", "POST"])
@staff("admin", "manager", "clinician", "front_desk")
def new():
    if request.method == "GET":
        return render_template("patients/form.html", sexes=list(SEXES.items()), patient=None, values={"sex": "U", "state": g.clinic.state}, errors={})
    form = PatientForm()
    if not form.validate():
        return render_template("patients/form.html", sexes=list(SEXES.items()), patient=None, values=form.values, errors=form.messages), 422
    patient = Patient(clinic_id=g.clinic.id, created_at=utcnow(), legal_first_name="", legal_last_name="", mrn="",
                      dob=form.dob.day)
    form.apply(patient)
    db = get_session()
    db.add(patient)
    db.flush()
    audit.record("patient.create", object_type="patient", object_id=patient.id, patient_id=patient.id)
    after_commit("patient_created", clinic=g.clinic, patient=patient)
    flash("Patient added.")
    return redirect(url_for("patients.chart", patient_id=patient.id))


@bp.route("/<int:patient_id>/edit", methods=["GET", "POST"])
@staff()
def edit(patient_id: int):
    patient = get_patient(patient_id)
    if request.method == "GET":
        audit.record("patient.view_demographics", object_type="patient", object_id=patient.id, patient_id=patient.id)
        return render_template("patients/form.html", sexes=list(SEXES.items()), patient=patient, values=_patient_form_values(patient), errors={})
    form = PatientForm(patient=patient)
    if not form.validate():
        return render_template("patients/form.html", sexes=list(SEXES.items()), patient=patient, values=form.values, errors=form.messages), 422
    form.apply(patient)
    get_session().add(patient)
    audit.record("patient.update", object_type="patient", object_id=patient.id, patient_id=patient.id)
    flash("Patient details saved.")
    return redirect(url_for("patients.chart", patient_id=patient.id))


# -- the chart -------------------------------------------------------------------------------

SESSIONS_SHOWN = 30  # a years-long maintenance history stays one click away, not on every chart view


def chart_context(patient: Patient) -> dict:
    """Everything the chart shows, in a fixed number of queries (no query per row)."""
    db = get_session()
    clinic = g.clinic
    clinical = is_clinical(current_user)
    of_patient = (TreatmentSession.clinic_id == clinic.id, TreatmentSession.patient_id == patient.id)
    # the newest sessions and, in the same statement, how many there are in all
    # and when treatment began (the outcome baseline's anchor), as a scalar subquery of the same statement
    began = (select(measures.given_at_sql())
             .where(*of_patient, TreatmentSession.status == measures.GIVEN)
             .order_by(TreatmentSession.scheduled_at, TreatmentSession.id).limit(1).scalar_subquery())
    rows = db.exec(select(TreatmentSession, func.count().over().label("total"), began.label("began"),
                          *course_progress.columns(clinic.id, patient.id)).where(*of_patient)
                   .order_by(TreatmentSession.scheduled_at.desc()).limit(SESSIONS_SHOWN)).all()
    sessions = [row[0] for row in rows]
    session_count = rows[0].total if rows else 0
    providers = db.exec(select(Provider).where(Provider.clinic_id == clinic.id).order_by(Provider.last_name)).all()
    signers = {i for t in sessions for i in (t.dose_override_by_id, t.discharge_ready_by_id) if i}
    staff_names = dict(db.exec(select(User.id, User.name).where(User.id.in_(sorted(signers)))).all())  # one query, even when empty
    today = date.today()
    age = today.year - patient.dob.year - ((today.month, today.day) < (patient.dob.month, patient.dob.day))
    ctx = {"patient": patient, "sessions": sessions, "session_count": session_count,
           "course": course_progress.from_row(rows[0] if rows else None), "providers": {p.id: p for p in providers}, "age": age,
           "staff_names": staff_names,
           "provider_options": [(p.id, p.display_name) for p in providers if p.active],
           "modality_options": [(m.value, m.label) for m in Modality], "clinical": clinical, "open_form": "",
           "charting": current_user.role.value in CHARTING_ROLES, "errors": {}, "values": {}}
    if clinical:
        scores = db.exec(select(OutcomeScore).where(OutcomeScore.clinic_id == clinic.id,
                                                    OutcomeScore.patient_id == patient.id)
                         .order_by(OutcomeScore.taken_at, OutcomeScore.id)).all()
        meds = db.exec(select(Medication).where(Medication.clinic_id == clinic.id, Medication.patient_id == patient.id)
                       .order_by(Medication.start_date.desc(), Medication.name)).all()
        team = db.exec(select(CareTeamMember, OutsideClinician)
                       .join(OutsideClinician, OutsideClinician.id == CareTeamMember.clinician_id)
                       .where(CareTeamMember.clinic_id == clinic.id, CareTeamMember.patient_id == patient.id,
                              OutsideClinician.clinic_id == clinic.id)).all()
        ctx.update(
            diagnoses=db.exec(select(Diagnosis).where(Diagnosis.clinic_id == clinic.id, Diagnosis.patient_id == patient.id)
                              .order_by(Diagnosis.is_primary.desc(), Diagnosis.code)).all(),
            current_meds=[m for m in meds if m.current], trials=[m for m in meds if m.is_trial],
            past_meds=[m for m in meds if not m.is_trial and not m.current],
            team=team, scores=scores, alerts=[s for s in scores if s.alert and s.reviewed_at is None],
            charts=[trend_chart(scores, Instrument.phq9), trend_chart(scores, Instrument.gad7)],
            # the report's definition (baseline before the first session given), so the two never disagree
            response=measures.measure(Instrument.phq9, scores, rows[0].began if rows else None).status,
            clinician_options=[(c.id, f"{c.name} ({c.kind.value.replace('_', ' ')})") for c in db.exec(
                select(OutsideClinician).where(OutsideClinician.clinic_id == clinic.id).order_by(OutsideClinician.name)).all()],
            questions=QUESTIONS, answer_options=[(str(i), f"{i} · {a}") for i, a in enumerate(ANSWERS)],
            score_values={}, drug_class_options=list(DRUG_CLASSES.items()),
            sensitivity_options=[("general", "General"), ("psychotherapy_note", "Psychotherapy note"),
                                 ("part2", "42 CFR Part 2 record")],
            kind_options=[(k.value, k.value.replace("_", " ").capitalize()) for k in ClinicianKind],
        )
        panels, errors = hooks.relay(clinic).collect("patient_chart_panels", expect=Panel, clinic=clinic,
                                                     patient=patient, user=current_user)
        ctx.update(panels=hooks.ordered(panels), plugin_errors=errors)
    return ctx


def render_chart(patient: Patient, *, status: int = 200, **extra):
    ctx = chart_context(patient)
    ctx.update(extra)
    return render_template("patients/chart.html", **ctx), status


@bp.get("/<int:patient_id>")
@staff()
def chart(patient_id: int):
    patient = get_patient(patient_id)
    audit.record("patient.view", object_type="patient", object_id=patient.id, patient_id=patient.id)
    return render_chart(patient)


@bp.post("/<int:patient_id>/scores")
@staff(*CHARTING_ROLES)
def add_score(patient_id: int):
    """Score a PHQ-9 or GAD-7; a PHQ-9 with item 9 above 0 raises the alert a clinician must review."""
    patient = get_patient(patient_id)
    form = ScoreForm()
    instrument = form.chosen
    if instrument is None:
        abort(422, description="Choose PHQ-9 or GAD-7 for the questionnaire. Nothing was saved.")
    items = form.answers(instrument)
    try:
        result = scoring.score(instrument, items if items is not None else [])
    except ValueError:
        # the summary above the form, and each unanswered question's message beside its answer
        values = form.values
        unanswered = {f"item{i}": "Choose an answer (0 to 3)." for i in range(1, scoring.ITEMS[instrument] + 1)
                      if values[f"item{i}"] not in {"0", "1", "2", "3"}}
        return render_chart(patient, status=422, errors={f"score_{instrument.name}": (
            f"Answer all {scoring.ITEMS[instrument]} {instrument.value} questions (each 0 to 3). Nothing was saved."),
            f"items_{instrument.name}": unanswered}, score_values={instrument.name: values}, open_form=instrument.name)
    db = get_session()
    # answers the questionnaire the next session asks for, as the portal's would: it is no longer due there
    due = next((d for d in due_questionnaires(g.clinic, patient, db=db) if d.instrument == instrument), None)
    score = OutcomeScore(clinic_id=g.clinic.id, patient_id=patient.id, instrument=instrument, items=items,
                         total=result["total"], band=result["band"], item9=result["item9"], alert=result["alert"],
                         taken_at=utcnow(), treatment_id=due.treatment.id if due else None)
    db.add(score)
    db.flush()
    audit.record("score.create", object_type="outcome_score", object_id=score.id, patient_id=patient.id,
                 detail="item-9 alert raised" if score.alert else "")
    flash(f"{instrument.value} recorded: {score.total} ({score.band})."
          + (" Item 9 is positive: a safety alert is waiting for clinician review." if score.alert else ""))
    return redirect(url_for("patients.chart", patient_id=patient.id) + "#outcomes")


@bp.post("/<int:patient_id>/diagnoses")
@staff(*CHARTING_ROLES)
def add_diagnosis(patient_id: int):
    patient = get_patient(patient_id)
    form = DiagnosisForm()
    code = form.code.data.upper()
    problem = icd10_problem(code)
    if problem is None and get_session().exec(select(Diagnosis.id).where(
            Diagnosis.clinic_id == g.clinic.id, Diagnosis.patient_id == patient.id, Diagnosis.code == code,
            Diagnosis.resolved_on.is_(None))).first():
        problem = f"{code} is already on the problem list."
    if problem:
        return render_chart(patient, status=422, errors={"code": problem}, values={"code": code})
    dx = Diagnosis(clinic_id=g.clinic.id, patient_id=patient.id, code=code, description=icd10_description(code),
                   is_primary=form.is_primary.data, noted_on=date.today())
    db = get_session()
    if dx.is_primary:
        for other in db.exec(select(Diagnosis).where(Diagnosis.clinic_id == g.clinic.id,
                                                     Diagnosis.patient_id == patient.id, Diagnosis.is_primary)).all():
            other.is_primary = False
            db.add(other)
    db.add(dx)
    db.flush()
    audit.record("diagnosis.create", object_type="diagnosis", object_id=dx.id, patient_id=patient.id)
    flash(f"Diagnosis {code} added.")
    return redirect(url_for("patients.chart", patient_id=patient.id) + "#diagnoses")


@bp.post("/<int:patient_id>/medications")
@staff(*CHARTING_ROLES)
def add_medication(patient_id: int):
    """A current medication; the coordination plugin reads these to flag interactions with ketamine."""
    patient = get_patient(patient_id)
    form = MedicationForm()
    if not form.validate():
        return render_chart(patient, status=422, errors=form.messages, values=form.values, open_form="medication")
    med = Medication(clinic_id=g.clinic.id, patient_id=patient.id, name=form.med_name.data, drug_class=form.drug_class.data,
                     dose=form.med_dose.data, frequency=form.med_frequency.data, prescriber=form.prescriber.data,
                     start_date=form.start_date.day, sensitivity=Sensitivity(form.sensitivity.data), created_at=utcnow())
    db = get_session()
    db.add(med)
    db.flush()
    audit.record("medication.create", object_type="medication", object_id=med.id, patient_id=patient.id)
    flash("Medication added.")
    return redirect(url_for("patients.chart", patient_id=patient.id) + "#medications")


@bp.post("/<int:patient_id>/medications/<int:medication_id>/stop")
@staff(*CHARTING_ROLES)
def stop_medication(patient_id: int, medication_id: int):
    patient = get_patient(patient_id)
    db = get_session()
    med = db.exec(select(Medication).where(Medication.id == medication_id, Medication.clinic_id == g.clinic.id,
                                           Medication.patient_id == patient.id)).first()
    if med is None:
        audit.record_denied("medication.access", object_type="medication", object_id=medication_id,
                            patient_id=patient.id)
        abort(404)
    if med.current:
        med.stop_date = date.today()
        db.add(med)
        audit.record("medication.stop", object_type="medication", object_id=med.id, patient_id=patient.id)
        flash(f"{med.name} marked as stopped.")
    return redirect(url_for("patients.chart", patient_id=patient.id) + "#medications")


@bp.post("/<int:patient_id>/care-team")
@staff(*CHARTING_ROLES)
def add_care_team(patient_id: int):
    patient = get_patient(patient_id)
    db = get_session()
    form = CareTeamForm()
    if not form.validate():
        return render_chart(patient, status=422, errors=form.messages, values=form.values)
    member = CareTeamMember(clinic_id=g.clinic.id, patient_id=patient.id, clinician_id=form.clinician_id.row.id,
                            role=ClinicianKind(form.role.data), psychotherapy_modality=form.psychotherapy_modality.data,
                            psychotherapy_frequency=form.psychotherapy_frequency.data, since=form.since.day)
    db.add(member)
    db.flush()
    audit.record("care_team.create", object_type="care_team_member", object_id=member.id, patient_id=patient.id)
    flash("Care team updated.")
    return redirect(url_for("patients.chart", patient_id=patient.id) + "#care-team")


@bp.post("/<int:patient_id>/sessions")
@staff()
def schedule(patient_id: int):
    """Book a treatment session at a wall-clock time in the clinic's zone (stored in UTC)."""
    patient = get_patient(patient_id)
    db = get_session()
    form = ScheduleForm()
    valid = form.validate()
    when = local_datetime(form.date.day, form.time.at, g.clinic.timezone) if form.date.day and form.time.at else None
    if when is not None and when < utcnow().astimezone(when.tzinfo).replace(hour=0, minute=0, second=0, microsecond=0):
        form.date.errors = [*form.date.errors, "The date is in the past; choose today or later."]
        valid = False
    if valid:
        req = Request(patient, Modality(form.modality.data), "single", form.provider_id.row, None)
        if problem := in_the_way(db, Calendar.load(db, g.clinic), req, when):
            form.time.errors = [*form.time.errors, f"Not booked: {problem}."]
            valid = False
    if not valid:
        return render_chart(patient, status=422, errors=form.messages, values=form.values, open_form="schedule")
    t = TreatmentSession(clinic_id=g.clinic.id, patient_id=patient.id, provider_id=form.provider_id.row.id,
                         modality=Modality(form.modality.data), scheduled_at=when, escort_name=patient.escort_name,
                         escort_phone=patient.escort_phone)
    db.add(t)
    db.flush()
    audit.record("session.schedule", object_type="treatment_session", object_id=t.id, patient_id=patient.id)
    confirmed = mail.send_confirmation(db, g.clinic, patient, [t])
    flash("Session scheduled." + (" A confirmation with a calendar file goes to the patient." if confirmed else ""))
    return redirect(url_for("sessions.detail", session_id=t.id))


@bp.post("/<int:patient_id>/invite")
@staff()
def invite(patient_id: int):
    """E-mail a single-use link to set a portal password (a new one ends the earlier links)."""
    patient = get_patient(patient_id)
    try:
        message = mail.invite_to_portal(get_session(), g.clinic, patient, current_user.id)
    except mail.InvitationProblem as exc:
        return render_chart(patient, status=422, errors={"invite": str(exc)})
    flash("Portal invitation " + ("kept in the outbox." if message.status.value == "outbox" else "sent."))
    return redirect(url_for("patients.chart", patient_id=patient.id))
