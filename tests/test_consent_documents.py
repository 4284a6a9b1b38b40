"""Signed consents as documents, read back with pypdf: the patient's name and date of birth and the
page count on every page, the clinician's attestation, a consent for every modality with the risk
content DOMAIN.md lists, a signature that never stands alone on a page, and old consents that stay
valid through the migration."""
from __future__ import annotations

import io
import re
from datetime import date

import pytest
from alembic import command
from pypdf import PdfReader, PdfWriter
from sqlmodel import func, select

from core.db import new_session
from core.migrate import alembic_config
from core.models import Clinic, Modality, Patient, Provider, TreatmentSession, User, utcnow
from plugins.consent import DEFAULT_REQUIRED, documents, service, status
from plugins.consent.models import ConsentAttestation, ConsentTemplate, SignedConsent
from tests.support import login, post, unlock_tablet

NAME = ("Zoë", "Łukasz-Intakeson")
DOB = date(1979, 11, 23)

# every topic DOMAIN.md's "Consent plugin" part asks an informed consent to carry, as patterns
TOPICS = {
    "dissociation": r"dissociat",
    "blood pressure": r"blood pressure",
    "heart rate": r"heart rate",
    "nausea": r"nausea",
    "sedation": r"sedation",
    "abuse or dependence": r"abuse.{0,40}dependence|dependence.{0,40}abuse",
    "bladder problems with frequent use": r"bladder[^.]*frequent",
    "cognitive effects": r"cognitive effects?:?[^.]*(memory|thinking)",
    "benefits": r"## possible benefits",
    "alternatives": r"## alternatives",
    "no driving until the next day": r"(not|never) drive[^.]*until the next day",
    "escort required": r"escort is required|escort take me home",
    "pregnancy": r"pregnan",
}


def _clinic(db) -> Clinic:
    return db.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()


def _new_patient(db, clinic, modality=Modality.iv_ketamine) -> Patient:
    with new_session(db.get_bind()) as s:
        provider = s.exec(select(Provider).where(Provider.clinic_id == clinic.id)).first()
        p = Patient(clinic_id=clinic.id, mrn=f"DOC{utcnow():%H%M%S%f}"[:20], legal_first_name=NAME[0],
                    legal_last_name=NAME[1], dob=DOB, created_at=utcnow())
        s.add(p)
        s.flush()
        s.add(TreatmentSession(clinic_id=clinic.id, patient_id=p.id, provider_id=provider.id, modality=modality,
                               scheduled_at=utcnow()))
        s.commit()
        pid = p.id
    db.rollback()
    return db.get(Patient, pid)


def _publish(db, clinic, kind: str, body: str) -> None:
    """A new version of the clinic's template, as the manager's editor would add it."""
    with new_session(db.get_bind()) as s:
        current = service.current_templates(s, clinic)[kind]
        s.add(ConsentTemplate(clinic_id=clinic.id, kind=kind, version=current.version + 1, title=current.title,
                              body=body, acknowledgements=current.acknowledgements, change_note="test",
                              created_at=utcnow()))
        s.commit()
    db.rollback()


def _sign_and_attest(app, client, patient: Patient, kind: str) -> bytes:
    """The patient signs on the tablet, the clinician attests, and the issued PDF is downloaded."""
    url = f"/consent/patients/{patient.id}/sign/{kind}"
    page = client.get(url).text
    data = {name: re.search(rf'name="{name}" value="([^"]*)"', page).group(1)
            for name in ("template_id", "submission_token")}
    acks = {f"ack_{i}": "1" for i in range(len(re.findall(r'name="ack_\d+"', page)))}
    signed = post(app, client, url, {**data, **acks, "signer_name": patient.legal_name, "signer_role": "patient"})
    assert signed.status_code == 302
    unlock_tablet(app, client)
    consent_id = signed.location.rsplit("/", 1)[1]
    assert post(app, client, f"/consent/patients/{patient.id}/consents/{consent_id}/attest",
                {"attest": "1"}).status_code == 302
    pdf = client.get(f"/consent/patients/{patient.id}/consents/{consent_id}.pdf")
    assert pdf.status_code == 200
    return pdf.data


def _pages(data: bytes) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages]


def _paragraphs(n: int) -> str:
    filler = ("This paragraph stands for the clinic's own explanation of the treatment, written out in full so "
              "that the consent runs as long as a real one does and fills the page line by line.")
    body = "\n\n".join(f"## Section {i}\n\nParagraph {i}. {filler}" if i % 4 == 0 else f"Paragraph {i}. {filler}"
                       for i in range(1, n + 1))
    return body + "\n\n## Your rights\n\nClosing paragraph: you may withdraw this consent at any time."


def test_every_page_carries_the_patients_name_date_of_birth_and_page_count(app, client, db):
    clinic = _clinic(db)
    patient = _new_patient(db, clinic)
    _publish(db, clinic, "informed_ketamine", _paragraphs(40))
    login(app, client, "clinician")
    pages = _pages(_sign_and_attest(app, client, patient, "informed_ketamine"))
    assert len(pages) >= 3
    for number, text in enumerate(pages, 1):
        assert "Zoë Łukasz-Intakeson" in text and "Date of birth 11/23/1979" in text, number
        assert f"Page {number} of {len(pages)}" in text, number


def test_the_clinicians_attestation_is_on_the_issued_pdf_and_binds_it(app, client, db):
    clinic = _clinic(db)
    patient = _new_patient(db, clinic)
    login(app, client, "clinician")
    pdf = _sign_and_attest(app, client, patient, "treatment_day")
    words = " ".join(_pages(pdf))
    db.rollback()
    record = db.exec(select(SignedConsent).where(SignedConsent.patient_id == patient.id)).one()
    att = db.exec(select(ConsentAttestation).where(ConsentAttestation.consent_id == record.id)).one()
    clinician = db.exec(select(User).where(User.email == "clinician@demo.glia.example")).one()
    provider = db.exec(select(Provider).where(Provider.user_id == clinician.id)).one()
    assert (att.clinician_user_id, att.provider_id, att.credentials) == (clinician.id, provider.id, "MD")
    assert att.attested_at >= record.signed_at and pdf == att.pdf and documents.attestation_ok(att, record)
    assert "Clinician's attestation" in words and "/s/ Cleo Clinician, MD" in words
    assert ("I, Cleo Clinician, MD, explained \"Treatment-day agreement\" (version 1) to Zoë Łukasz-Intakeson"
            in words) and "I answered the patient's questions" in words
    when = documents.local(att.attested_at, clinic)
    assert when in words and documents.local(record.signed_at, clinic) in words
    # a clinician without a provider record may not attest, nor may the manager
    other = app.test_client()
    login(app, other, "manager")
    assert other.get(f"/consent/patients/{patient.id}/consents/{record.id}/attest").status_code == 403


@pytest.mark.parametrize("kind", ["informed_ketamine", "informed_ketamine_im", "informed_ketamine_oral",
                                  "informed_esketamine"])
def test_each_modalitys_informed_consent_is_issued_with_its_own_text(app, client, db, kind):
    modality = {"informed_ketamine": Modality.iv_ketamine, "informed_ketamine_im": Modality.im_ketamine,
                "informed_ketamine_oral": Modality.sublingual,
                "informed_esketamine": Modality.esketamine_nasal}[kind]
    clinic = _clinic(db)
    patient = _new_patient(db, clinic, modality)
    login(app, client, "clinician")
    assert f'/sign/{kind}"' in client.get(f"/consent/patients/{patient.id}").text  # required for the modality
    words = " ".join(_pages(_sign_and_attest(app, client, patient, kind))).lower()
    expected = {"informed_ketamine": "intravenous (iv) infusion", "informed_ketamine_im": "intramuscular (im)",
                "informed_ketamine_oral": "doses taken at home", "informed_esketamine": "spravato rems"}[kind]
    assert expected in words
    for topic in ("dissociation", "bladder", "pregnan", "escort is required"):
        assert topic in words, topic


def test_every_shipped_informed_consent_carries_the_risk_content_domain_lists():
    informed = [spec for spec in service.default_templates() if spec.get("informed_consent_for")]
    assert {m for spec in informed for m in spec["informed_consent_for"]} == {m.value for m in Modality}
    for spec in informed:
        text = " ".join([spec["body"], *spec["acknowledgements"]]).lower()
        text = " ".join(text.split())
        missing = [topic for topic, pattern in TOPICS.items() if not re.search(pattern, text)]
        assert not missing, (spec["kind"], missing)
    # each modality has its own: sublingual or oral ketamine is not folded into the IV consent
    assert all(len(spec["informed_consent_for"]) == 1 for spec in informed)
    oral = next(s for s in informed if s["informed_consent_for"] == ["sublingual"])
    assert all(w in oral["body"] for w in ("off-label", "compounding", "at home", "locked", "sober"))
    assert service.uninformed_modalities({f"required_{m}": kinds for m, kinds in DEFAULT_REQUIRED.items()}) == []


def test_the_signature_never_stands_alone_on_a_page(app, client, db):
    """Bodies of many lengths, so the end of the text falls at every point of a page: the page with
    the signatures always carries the consent's last paragraph too."""
    clinic = _clinic(db)
    patient = _new_patient(db, clinic)
    login(app, client, "clinician")
    last_statement = service.current_templates(db, clinic)["financial"].acknowledgements[-1]
    landed = set()
    for n in range(8, 26, 2):
        _publish(db, clinic, "financial", _paragraphs(n))
        pages = _pages(_sign_and_attest(app, client, patient, "financial"))
        (where,) = [i for i, text in enumerate(pages) if f"/s/ {patient.legal_name}" in text]
        assert "/s/ Cleo Clinician, MD" in pages[where], n  # both signature blocks together
        assert last_statement in pages[where], n  # with the last text the patient confirmed
        landed.add((len(pages), where))
    assert len({where for _pages_count, where in landed}) >= 2  # the lengths did cross a page boundary


def _legacy_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_consents_signed_before_attestations_existed_stay_valid_as_issued(make_app, db_url):
    """Downgrade to the schema before attestations, sign the old way (PDF issued at signing), upgrade."""
    app = make_app()
    ext = app.extensions["glia"]
    with app.app_context():
        command.downgrade(alembic_config(ext, "consent"), "0002_consent_item_review")
    with new_session(ext.engine) as s:
        clinic = s.exec(select(Clinic).where(Clinic.slug == "stillwater")).one()
        held = s.exec(select(Patient).where(Patient.clinic_id == clinic.id, Patient.mrn == "ST1016")).one()
        template = s.exec(select(ConsentTemplate).where(ConsentTemplate.clinic_id == clinic.id,
                                                        ConsentTemplate.kind == "financial")).one()
        text = documents.signed_text(template, clinic)
        pdf = _legacy_pdf()
        at = utcnow()
        legacy = SignedConsent(
            clinic_id=clinic.id, patient_id=held.id, template_id=template.id, kind="financial", version=1,
            title=template.title, signed_text=text, text_sha256=service.sha256(text), signer_role="patient",
            signer_name=held.legal_name, method="typed", channel="tablet", signed_at=at, submission_token="legacy",
            pdf=pdf, pdf_sha256=service.sha256(pdf),
            signature_sha256=documents.signature_digest(
                patient_id=held.id, template_id=template.id, signer_name=held.legal_name, signer_role="patient",
                authority="", method="typed", signed_at=at, text_sha256=service.sha256(text),
                pdf_sha256=service.sha256(pdf)))
        s.add(legacy)
        s.commit()
        ids = clinic.id, held.id, legacy.id
    with app.app_context():
        command.upgrade(alembic_config(ext, "consent"), "head")

    app = make_app()  # starts: the schema is current again
    client = app.test_client()
    login(app, client, "clinician")
    clinic_id, patient_id, consent_id = ids
    download = client.get(f"/consent/patients/{patient_id}/consents/{consent_id}.pdf")
    assert download.status_code == 200 and download.data == pdf
    with app.app_context(), new_session(app.extensions["glia"].engine) as s:
        clinic = s.get(Clinic, clinic_id)
        state = status.status_for(s, clinic, [patient_id])[patient_id].consents["financial"]
        assert state.status == "valid" and state.record.id == consent_id
        assert consent_id not in [r.id for r in status.awaiting_attestation(s, clinic)]
        assert s.exec(select(func.count()).select_from(ConsentAttestation)
                      .where(ConsentAttestation.consent_id == consent_id)).one() == 0
    assert "already complete" in client.get(f"/consent/patients/{patient_id}/consents/{consent_id}/attest",
                                            follow_redirects=True).text
