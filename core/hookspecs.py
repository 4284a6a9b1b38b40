"""The plugin contract. A plugin is a module of functions marked with ``core.hookimpl``.

Request-time hooks are called through the clinic's relay, so a plugin disabled for a clinic
is never called for it. An implementation names only the arguments it needs.
"""
import pluggy

hookspec = pluggy.HookspecMarker("glia")
hookimpl = pluggy.HookimplMarker("glia")

# -- called once at startup ------------------------------------------------------------


@hookspec
def register_blueprints(app):
    """Register the plugin's Flask blueprint(s) on ``app``; routes live under /<plugin>/."""


@hookspec
def register_models():
    """Return the plugin's SQLModel table classes (tables named ``<plugin>_...``)."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``glia`` command line."""


@hookspec
def register_settings():
    """Return a list of ``Setting``: the per-clinic settings schema with defaults."""


@hookspec
def register_document_types():
    """Return a list of ``DocumentType`` for the immutable documents the plugin issues."""


@hookspec
def seed_demo_data(session, clinic):
    """Add obviously fictional demo rows for ``clinic`` (called by ``glia demo``)."""


# -- per request, through the clinic relay ------------------------------------------------


@hookspec
def nav_items(clinic, user):
    """Return a list of ``NavItem`` for the main navigation."""


@hookspec
def dashboard_widgets(clinic, user):
    """Return a list of ``Widget`` for the dashboard."""


@hookspec
def patient_chart_panels(clinic, patient, user):
    """Return a list of ``Panel`` for the patient chart."""


@hookspec
def session_panels(clinic, patient, treatment, user):
    """Return a list of ``Panel`` for the treatment-session page (the clinician's view of the day)."""


@hookspec
def portal_items(clinic, patient):
    """Return a list of ``PortalItem`` the patient sees in the portal."""


@hookspec
def treatment_blockers(clinic, patient, treatment):
    """Return a list of ``Blocker``; any blocker stops the session from starting."""


@hookspec
def letter_sections(clinic, patient, recipient):
    """Return a list of ``LetterSection`` for a care-coordination letter about ``patient``.

    A section that raises is shown as failed on the preview, and the letter cannot be signed until it renders.
    """


@hookspec
def superbill_extra_fields(clinic, patient, superbill):
    """Return a dict of extra label -> value pairs printed on a superbill."""


# -- events, after commit, each implementation isolated ------------------------------------


@hookspec
def treatment_completed(clinic, treatment):
    """A treatment session was discharged."""


@hookspec
def patient_created(clinic, patient):
    """A patient was added to ``clinic``."""


@hookspec
def document_issued(clinic, document):
    """An immutable document (signed consent, sent letter, superbill, a payment's receipt...) was issued."""


# -- single decisions ----------------------------------------------------------------------


@hookspec(firstresult=True)
def render_pdf(html, base_url):
    """Return PDF bytes for ``html`` (or None to pass); the first answer wins, core's WeasyPrint runs last."""
