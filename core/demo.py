"""Obviously fictional demo data: two clinics, their staff, patients and treatment series.

Names are made up (surnames such as Sampleton and Testwell), phone numbers sit in the
555-01xx range reserved for fiction, and NPIs are computed stems with valid check digits.
The random generator is seeded, so every demo database is the same.
"""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlmodel import Session, func, select

from core import audit, scoring, workflow
from core.auth import hash_password
from core.models import (CareTeamMember, Clinic, ClinicianKind, Diagnosis, Instrument, Medication,
                         Membership, Modality, OutcomeScore, OutsideClinician, Patient, Provider, Role,
                         SessionStatus, SideEffect, TreatmentSession, User, VitalPhase, VitalSign, utcnow)
from core.rems.models import RemsEnrollment
from core.portal_demo import seed_portal
from core.scheduling.demo import seed_calendar
from core.validators import icd10_description, npi_with_check_digit

DEMO_PASSWORD = "demo-password-2026"

CLINICS = [
    dict(slug="stillwater", name="Stillwater Ketamine Clinic (demo)", address_line1="100 Example Way, Suite 2",
         city="Springfield", state="OR", postal_code="97477", phone="541-555-0100", fax="541-555-0101",
         timezone="America/Los_Angeles", ein="00-0000001", npi=npi_with_check_digit("200000001"),
         place_of_service="11", rems_setting_id="DEMO-SETTING-0001"),
    dict(slug="harbor", name="Harbor Esketamine Center (demo)", address_line1="42 Sample Street",
         city="Fairview", state="MA", postal_code="02101", phone="617-555-0140", fax="617-555-0141",
         timezone="America/New_York", ein="00-0000002", npi=npi_with_check_digit("200000002"),
         place_of_service="11", rems_setting_id="DEMO-SETTING-0002"),
]

FIRST = ["Avery", "Jordan", "Riley", "Casey", "Morgan", "Quinn", "Rowan", "Sage", "Emerson", "Harper",
         "Zoë", "Łukasz", "Noor", "Mateo", "Priya", "Kenji", "Amara", "Tomás", "Ingrid", "Olu",
         "Dana", "Elliot", "Frankie", "Gale"]
LAST = ["Sampleton", "Testwell", "Exampleby", "Mockridge", "Placeholm", "Dummott", "Fictionary",
        "Notreal", "Demoford", "Specimen", "Madeupson", "Pretendo"]

DIAGNOSES = ["F33.2", "F33.1", "F32.2", "F43.10", "F41.1", "F33.9", "F32.A"]
TRIALS = [("Sertraline", "ssri"), ("Escitalopram", "ssri"), ("Fluoxetine", "ssri"),
          ("Venlafaxine", "snri"), ("Duloxetine", "snri"), ("Bupropion", "ndri"), ("Mirtazapine", "nassa")]
CURRENT = [("Escitalopram", "ssri", "10 mg", "daily"), ("Bupropion XL", "ndri", "300 mg", "daily"),
           ("Lorazepam", "benzodiazepine", "0.5 mg", "as needed"), ("Lamotrigine", "anticonvulsant", "100 mg", "daily"),
           ("Lisinopril", "ace_inhibitor", "10 mg", "daily"), ("Trazodone", "sari", "50 mg", "at bedtime"),
           ("Methylphenidate", "stimulant", "10 mg", "twice daily"), ("Naltrexone", "opioid_antagonist", "50 mg", "daily")]
EFFECTS = ["dissociation", "sedation", "nausea", "dizziness", "bp_rise", "anxiety"]

STAFF = [  # (email local part, name, role, clinics)
    ("admin", "Ada Admin (demo)", Role.admin, ("stillwater", "harbor")),
    ("manager", "Max Manager (demo)", Role.manager, ("stillwater",)),
    ("clinician", "Dr. Cleo Clinician (demo)", Role.clinician, ("stillwater",)),
    ("frontdesk", "Fran Frontdesk (demo)", Role.front_desk, ("stillwater",)),
    ("harbor.manager", "Hal Harbor Manager (demo)", Role.manager, ("harbor",)),
    ("harbor.clinician", "Dr. Hana Harbor (demo)", Role.clinician, ("harbor",)),
    ("harbor.frontdesk", "Hugo Harbor Desk (demo)", Role.front_desk, ("harbor",)),
]
PATIENT_LOGINS = {"stillwater": "patient", "harbor": "harbor.patient"}
PATIENTS_PER_CLINIC = 24
# Today's patients the gate holds on purpose (by their number within the clinic), one reason each, so
# the dashboard shows the gate at work; everyone else treated here signed and screened beforehand.
HELD = {"stillwater": {"missing_consent": 16, "absolute_contraindication": 9, "high_blood_pressure": 13},
        "harbor": {"no_rems_enrollment": 16}}
ACKNOWLEDGED_RELATIVE = {"stillwater": 4}  # uncontrolled hypertension, weighed and signed by the clinician
HIGH_BP = (172, 104)  # above the default 160/100 check-in threshold


def mrn(clinic: Clinic, n: int) -> str:
    return f"{clinic.slug[:2].upper()}{1000 + n}"


def held(clinic: Clinic, reason: str) -> str | None:
    """The MRN of the patient held today for ``reason`` at ``clinic``, if any."""
    n = HELD.get(clinic.slug, {}).get(reason)
    return None if n is None else mrn(clinic, n)


def email(local: str) -> str:
    return f"{local}@demo.glia.example"


def logins_text() -> str:
    lines = [f"Demo logins (password for all: {DEMO_PASSWORD}):"]
    for local, name, role, clinics in STAFF:
        lines.append(f"  {email(local):34} {role.value:11} {', '.join(clinics)}")
    for slug, local in PATIENT_LOGINS.items():
        lines.append(f"  {email(local):34} {'patient':11} {slug} (portal)")
    return "\n".join(lines)


def is_empty(session: Session) -> bool:
    return session.exec(select(func.count()).select_from(Clinic)).one() == 0


def _at(clinic: Clinic, day: date, hour: int, minute: int = 0) -> datetime:
    local = datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(clinic.timezone))
    return local.astimezone(timezone.utc)


def seed(session: Session, ext) -> bool:
    rng = random.Random(2026)
    pw = hash_password(DEMO_PASSWORD)
    now = utcnow()
    clinics = {}
    for spec in CLINICS:
        clinic = Clinic(**spec, created_at=now)
        session.add(clinic)
        clinics[spec["slug"]] = clinic
    session.flush()

    users = {}
    for local, name, role, slugs in STAFF:
        user = User(email=email(local), name=name, role=role, password_hash=pw, created_at=now)
        session.add(user)
        session.flush()
        users[local] = user
        for slug in slugs:
            session.add(Membership(user_id=user.id, clinic_id=clinics[slug].id))

    for index, clinic in enumerate(clinics.values()):
        _seed_clinic(session, clinic, index, rng, users, pw)
        session.flush()
        seed_calendar(session, clinic)
        seed_portal(session, clinic)
    session.flush()

    for clinic in clinics.values():
        for impl in sorted(ext.pm.hook.seed_demo_data.get_hookimpls(), key=lambda i: i.plugin_name):
            if impl.plugin_name in ext.plugins:
                args = {"session": session, "clinic": clinic}
                impl.function(*[args[a] for a in impl.argnames])
                session.flush()
        _submit_rems_forms(session, clinic)
        audit.append(session, "demo.seeded", object_type="clinic", object_id=clinic.id, clinic_id=clinic.id)
    return True


def _submit_rems_forms(session, clinic):
    """A well-run clinic submits each Spravato monitoring form within the week: this week's are still due."""
    from core.rems import monitoring

    submitter = session.exec(select(User).join(Membership, Membership.user_id == User.id).where(
        Membership.clinic_id == clinic.id, User.role == Role.clinician).order_by(User.id)).first()
    cutoff = utcnow() - timedelta(days=6)
    for due in monitoring.due_forms(session, clinic):
        t, patient = due.treatment, due.patient
        if t.discharged_at >= cutoff:
            continue
        values = monitoring.fill(session, clinic, [(t, patient)])[t.id]
        monitoring.submit(session, clinic, t, patient, submitter, seen=monitoring.sha256(monitoring.csv_text([values])),
                          reference="submitted to the REMS (demo)")


def _seed_clinic(session, clinic, index, rng, users, pw):
    clinician_local = "clinician" if clinic.slug == "stillwater" else "harbor.clinician"
    providers = [
        Provider(clinic_id=clinic.id, user_id=users[clinician_local].id, first_name=users[clinician_local].name.split()[1],
                 last_name="Clinician" if clinic.slug == "stillwater" else "Harbor", credentials="MD",
                 npi=npi_with_check_digit(f"10000{index}001"), license_number=f"MD-DEMO-{index}01",
                 license_state=clinic.state),
        Provider(clinic_id=clinic.id, first_name="Pat", last_name=f"Provider{'son' if index == 0 else 'ova'}",
                 credentials="PMHNP-BC", npi=npi_with_check_digit(f"10000{index}002"),
                 license_number=f"NP-DEMO-{index}02", license_state=clinic.state),
    ]
    session.add_all(providers)
    outside = [
        OutsideClinician(clinic_id=clinic.id, kind=ClinicianKind.psychiatrist, name="Dr. Morgan Mindful (demo)",
                         credentials="MD", practice="Example Psychiatry Group", npi=npi_with_check_digit(f"10000{index}101"),
                         phone="555-010-0201", fax="555-010-0202", email="mindful@psych.example",
                         address="1 Fictional Plaza, Springfield"),
        OutsideClinician(clinic_id=clinic.id, kind=ClinicianKind.therapist, name="Terry Talkwell (demo)",
                         credentials="LCSW", practice="Sample Counseling", npi=npi_with_check_digit(f"10000{index}102"),
                         phone="555-010-0203", fax="555-010-0204", email="talkwell@therapy.example",
                         address="2 Pretend Road, Springfield"),
        OutsideClinician(clinic_id=clinic.id, kind=ClinicianKind.primary_care, name="Dr. Gen Practice (demo)",
                         credentials="DO", practice="Demo Family Medicine", npi=npi_with_check_digit(f"10000{index}103"),
                         phone="555-010-0205", fax="555-010-0206", email="practice@family.example",
                         address="3 Example Lane, Springfield"),
    ]
    session.add_all(outside)
    session.flush()

    today = datetime.now(ZoneInfo(clinic.timezone)).date()
    modality_main = Modality.iv_ketamine if clinic.slug == "stillwater" else Modality.esketamine_nasal
    for n in range(PATIENTS_PER_CLINIC):
        first = FIRST[(n + index * 5) % len(FIRST)]
        last = LAST[(n * 7 + index) % len(LAST)]
        patient = Patient(
            clinic_id=clinic.id, mrn=mrn(clinic, n), legal_first_name=first,
            legal_last_name=last, preferred_name="Zo" if first == "Zoë" else "",
            dob=date(1960 + rng.randrange(40), rng.randrange(1, 13), rng.randrange(1, 28)),
            sex=rng.choice("FMX"), address_line1=f"{10 + n} Example Street", city="Springfield",
            state=clinic.state, postal_code=clinic.postal_code, phone=f"555-010-{1000 + n:04d}"[:12],
            email=f"patient{n}.{clinic.slug}@demo.glia.example",
            escort_name=f"{rng.choice(FIRST)} {last} (escort)", escort_phone=f"555-010-{2000 + n:04d}"[:12],
            emergency_contact_name=f"{rng.choice(FIRST)} {last}", emergency_contact_phone=f"555-010-{3000 + n:04d}"[:12],
            created_at=utcnow())
        if n == 0:  # the portal login for this clinic
            local = PATIENT_LOGINS[clinic.slug]
            user = User(email=email(local), name=f"{first} {last}", role=Role.patient, password_hash=pw,
                        created_at=utcnow())
            session.add(user)
            session.flush()
            patient.user_id = user.id
        session.add(patient)
        session.flush()
        _seed_chart(session, clinic, patient, n, rng, outside, today)
        modality = Modality.sublingual if n % 11 == 10 else (Modality.im_ketamine if n % 9 == 8 else modality_main)
        with workflow.importing(session):  # past sessions are history, written as such (and audited)
            _seed_sessions(session, clinic, patient, n, rng, providers, modality, today)
        if modality == Modality.esketamine_nasal and patient.mrn != held(clinic, "no_rems_enrollment"):
            # enrolled in the Spravato REMS before the first dose
            session.add(RemsEnrollment(clinic_id=clinic.id, patient_id=patient.id, enrollment_id=f"DEMO-PT-{patient.id:05d}",
                                       enrolled_on=today - timedelta(days=60), recorded_by_id=users[clinician_local].id,
                                       recorded_at=utcnow()))


def _seed_chart(session, clinic, patient, n, rng, outside, today):
    codes = [DIAGNOSES[n % len(DIAGNOSES)]] + ([DIAGNOSES[(n + 3) % len(DIAGNOSES)]] if n % 3 == 0 else [])
    for i, code in enumerate(dict.fromkeys(codes)):
        session.add(Diagnosis(clinic_id=clinic.id, patient_id=patient.id, code=code, is_primary=i == 0,
                              description=icd10_description(code), noted_on=today - timedelta(days=400)))
    for k, (name, cls) in enumerate(rng.sample(TRIALS, 2 + n % 3)):
        start = today - timedelta(days=900 - k * 150)
        session.add(Medication(clinic_id=clinic.id, patient_id=patient.id, name=name, drug_class=cls,
                               dose="adequate dose", frequency="daily", is_trial=True, trial_weeks=8,
                               trial_outcome=rng.choice(["no response", "partial response", "not tolerated"]),
                               start_date=start, stop_date=start + timedelta(weeks=8 + k),
                               prescriber="Dr. Morgan Mindful (demo)", created_at=utcnow()))
    for name, cls, dose, freq in [CURRENT[n % len(CURRENT)], CURRENT[(n + 4) % len(CURRENT)]]:
        session.add(Medication(clinic_id=clinic.id, patient_id=patient.id, name=name, drug_class=cls, dose=dose,
                               frequency=freq, start_date=today - timedelta(days=200),
                               prescriber="Dr. Morgan Mindful (demo)", created_at=utcnow()))
    psychiatrist, therapist, pcp = outside
    session.add(CareTeamMember(clinic_id=clinic.id, patient_id=patient.id, clinician_id=psychiatrist.id,
                               role=ClinicianKind.psychiatrist, since=today - timedelta(days=700)))
    if n % 2 == 0:
        session.add(CareTeamMember(clinic_id=clinic.id, patient_id=patient.id, clinician_id=therapist.id,
                                   role=ClinicianKind.therapist, psychotherapy_modality=rng.choice(["CBT", "DBT", "KAP integration"]),
                                   psychotherapy_frequency="weekly", since=today - timedelta(days=300)))
    if n % 4 == 1:
        session.add(CareTeamMember(clinic_id=clinic.id, patient_id=patient.id, clinician_id=pcp.id,
                                   role=ClinicianKind.primary_care, since=today - timedelta(days=1000)))
    baseline = 14 + rng.randrange(10)
    for week in range(0, 8 if n % 5 else 2):
        taken = _at(clinic, today - timedelta(days=56 - week * 7), 9)
        phq = max(0, baseline - week * rng.randrange(1, 3))
        _score(session, clinic, patient, Instrument.phq9, phq, taken, rng, item9=1 if (n == 3 and week == 7) else 0)
        _score(session, clinic, patient, Instrument.gad7, max(0, phq * 2 // 3), taken, rng)


def _score(session, clinic, patient, instrument, target, taken, rng, item9=0):
    count = scoring.ITEMS[instrument]
    items = [0] * count
    if instrument == Instrument.phq9:
        items[8] = item9
    remaining = max(0, target - sum(items))
    free = [i for i in range(count) if not (instrument == Instrument.phq9 and i == 8)]
    while remaining > 0:
        i = rng.choice(free)
        if items[i] < 3:
            items[i] += 1
            remaining -= 1
    result = scoring.score(instrument, items)
    session.add(OutcomeScore(clinic_id=clinic.id, patient_id=patient.id, instrument=instrument, items=items,
                             total=result["total"], band=result["band"], item9=result["item9"],
                             alert=result["alert"], taken_at=taken))


def _seed_sessions(session, clinic, patient, n, rng, providers, modality, today):
    done = [0, 3, 6, 6, 8, 2, 6, 4][n % 8]
    provider = providers[n % 2]
    weight = 55 + rng.randrange(45)
    for k in range(done):
        day = today - timedelta(days=(done - k) * 4 + 1)
        start = _at(clinic, day, 9 + n % 7)
        spravato = modality == Modality.esketamine_nasal
        # labelled doses (56 mg on day 1), 0.5 mg/kg by weight, a mid-range sublingual dose
        dose = (56 if k < 2 else 84) if spravato else 200 if modality == Modality.sublingual else round(weight * 0.5, 1)
        out = 140 if spravato else 100  # minutes from arrival: >= 120 after the first device, >= 30 after an infusion
        t = TreatmentSession(clinic_id=clinic.id, patient_id=patient.id, provider_id=provider.id, modality=modality,
                             status=SessionStatus.discharged, scheduled_at=start, checked_in_at=start,
                             started_at=start + timedelta(minutes=15), monitoring_at=start + timedelta(minutes=60),
                             discharged_at=start + timedelta(minutes=out), dosed_at=start + timedelta(minutes=15),
                             weight_kg=float(weight), dose_mg=float(dose), duration_minutes=40,
                             lot_number=f"DEMO-LOT-{k + 1:03d}" if spravato else "", discharge_ready_by_id=providers[0].user_id,
                             ready_minutes=95 if spravato else None,
                             escort_name=patient.escort_name, escort_phone=patient.escort_phone, escort_confirmed=True,
                             version=6)
        session.add(t)
        session.flush()
        for phase, offset, bump in ((VitalPhase.baseline, 10, 0), (VitalPhase.post_dose, 55, 14), (VitalPhase.discharge, out - 5, 4)):
            session.add(VitalSign(clinic_id=clinic.id, treatment_id=t.id, phase=phase, systolic=118 + bump + rng.randrange(12),
                                  diastolic=76 + bump // 2 + rng.randrange(8), heart_rate=68 + rng.randrange(20), spo2=97 + rng.randrange(3),
                                  taken_at=start + timedelta(minutes=offset)))
        for effect in rng.sample(EFFECTS, rng.randrange(0, 3)):
            session.add(SideEffect(clinic_id=clinic.id, treatment_id=t.id, effect=effect,
                                   severity=rng.choice(["mild", "mild", "moderate"]), recorded_at=start + timedelta(minutes=50),
                                   resolved=True))
    if n % 3 != 2:  # today's schedule
        status = [SessionStatus.scheduled, SessionStatus.checked_in, SessionStatus.scheduled][n % 3]
        start = _at(clinic, today, 8 + n % 9, 30 if n % 2 else 0)
        t = TreatmentSession(clinic_id=clinic.id, patient_id=patient.id, provider_id=provider.id, modality=modality,
                             status=status, scheduled_at=start, weight_kg=float(weight),
                             escort_name=patient.escort_name, escort_phone=patient.escort_phone)
        # a patient can arrive early for a later slot, never in the future: the check-in and its
        # baseline reading are stamped no later than now, whatever hour the demo is built
        arrived = min(start, datetime.now(timezone.utc) - timedelta(minutes=10))
        if status == SessionStatus.checked_in:
            t.checked_in_at = arrived
            t.escort_confirmed = True
        session.add(t)
        session.flush()
        if status == SessionStatus.checked_in:
            systolic, diastolic = HIGH_BP if patient.mrn == held(clinic, "high_blood_pressure") else (124, 80)
            session.add(VitalSign(clinic_id=clinic.id, treatment_id=t.id, phase=VitalPhase.baseline, systolic=systolic,
                                  diastolic=diastolic, heart_rate=72, spo2=98, taken_at=arrived + timedelta(minutes=5)))
