"""The plugin contract. A plugin is a module of functions marked with ``core.hookimpl``.

Request-time hooks are called through the clinic's relay, so a plugin disabled for a clinic
is never called for it. An implementation names only the arguments it needs.

The contract is versioned: a plugin may declare ``GLIA_CONTRACT = ">=1.0,<2"`` (a PEP 440
range) and is refused at startup when CONTRACT_VERSION is outside it. The minor number grows
when something is added (a hook, an argument, a slot field); the major number when something a
plugin relies on is removed or changed, after a deprecation of at least one minor release
(docs/plugins.md, "Contract version and deprecation").

Argument types, for every hook: ``clinic`` core.models.Clinic, ``user`` core.models.User (staff),
``patient`` core.models.Patient, ``treatment`` core.models.TreatmentSession, ``recipient``
core.models.OutsideClinician, ``document`` the issuing plugin's table row, ``superbill`` the
superbill's data dict. docs/plugins.md lists the fields a plugin may rely on.

When an implementation raises (its writes in that call are rolled back, the error is logged with
the plugin's name and traceback, never the exception's text): a startup hook stops startup; a
slot hook loses its part of the page; a blocker fails closed; a letter section blocks signing;
an event is logged and not retried.
"""
import pluggy

hookspec = pluggy.HookspecMarker("glia")
hookimpl = pluggy.HookimplMarker("glia")

CONTRACT_VERSION = "1.0"

# -- called once at startup; an implementation that raises stops startup, naming the plugin -----


@hookspec
def register_blueprints(app):
    """Register the plugin's Flask blueprint(s) on ``app`` (flask.Flask); routes live under /<plugin>/."""


@hookspec
def register_models():
    """Return the plugin's SQLModel table classes (tables named ``<plugin>_...``).

    Startup stops, with the command that creates one, when a returned table has no migration.
    """


@hookspec
def register_commands(cli):
    """Add click commands or groups to ``cli`` (the ``glia`` flask.cli.AppGroup)."""


@hookspec
def register_settings():
    """Return a list of ``Setting``: the per-clinic settings schema with defaults."""


@hookspec
def register_document_types():
    """Return a list of ``DocumentType`` for the immutable documents the plugin issues."""


@hookspec
def seed_demo_data(session, clinic):
    """Add obviously fictional demo rows for ``clinic`` to ``session`` (sqlmodel.Session; do not commit).

    Called by ``glia demo``; raising stops the seed and nothing is written.
    """


# -- per request, through the clinic relay; raising loses the plugin's part of the page --------
# Slot html is Markup (core.slots.render); a plain str is escaped, shown as text and logged.


@hookspec
def nav_items(clinic, user):
    """Return a list of ``NavItem`` for the main navigation (links: site paths or http(s) only)."""


@hookspec
def dashboard_widgets(clinic, user):
    """Return a list of ``Widget`` for the dashboard; ``html`` is Markup, a plain str is escaped."""


@hookspec
def patient_chart_panels(clinic, patient, user):
    """Return a list of ``Panel`` for the patient chart; ``html`` is Markup, a plain str is escaped."""


@hookspec
def session_panels(clinic, patient, treatment, user):
    """Return a list of ``Panel`` for the treatment-session page (the clinician's view of the day).

    ``html`` is Markup, a plain str is escaped.
    """


@hookspec
def portal_items(clinic, patient):
    """Return a list of ``PortalItem`` the patient sees in the portal (``patient`` is the signed-in one)."""


@hookspec
def treatment_blockers(clinic, patient, treatment):
    """Return a list of ``Blocker``; any blocker stops the session from starting.

    Fails closed: an implementation that raises, or returns something other than Blockers, is
    itself a blocker ("a safety check could not run") until it runs cleanly.
    """


@hookspec
def letter_sections(clinic, patient, recipient):
    """Return a list of ``LetterSection`` for a care-coordination letter about ``patient`` to ``recipient``.

    ``html`` is Markup, a plain str is escaped. A section that raises is shown as failed on the
    preview, and the letter cannot be signed (HTTP 422) until it renders.
    """


@hookspec
def superbill_extra_fields(clinic, patient, superbill):
    """Return a dict of extra label -> value strings printed on a superbill (``superbill``: its data dict).

    An implementation that raises is left out of the superbill, which is still issued.
    """


# -- events, after commit, each implementation isolated: a failure is logged, never retried ----


@hookspec
def treatment_completed(clinic, treatment):
    """A treatment session (``treatment``, now discharged) was discharged and committed."""


@hookspec
def patient_created(clinic, patient):
    """A patient was added to ``clinic`` and committed."""


@hookspec
def document_issued(clinic, document):
    """An immutable document (signed consent, sent letter, superbill, a payment's receipt...) was
    issued and committed.

    ``document`` is the issuing plugin's row: ``id``, ``clinic_id``, ``patient_id`` and ``__tablename__``.
    """


# -- single decisions ----------------------------------------------------------------------


@hookspec(firstresult=True)
def render_pdf(html, base_url):
    """Return PDF bytes for ``html`` (or None to pass); the first answer wins, core's WeasyPrint runs last.

    An implementation that raises fails the document being made (nothing is issued).
    """


# -- exports -------------------------------------------------------------------------------


@hookspec
def patient_documents(clinic, patient):
    """Return a list of ``core.documents.DocumentRef`` for ``patient``'s issued documents.

    Only documents that may leave the clinic in a patient's record export: never drafts, never
    a document carrying 42 CFR Part 2 records or psychotherapy notes. Raising leaves the
    plugin's documents out of the export.
    """
