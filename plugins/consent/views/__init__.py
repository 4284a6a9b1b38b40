"""Consent pages, one module per audience: signing (tablet and portal), the clinician's attestation,
screening, the clinician's decisions and the manager's editors. All share one blueprint, named after
the plugin."""
from plugins.consent.views import attestation, clinician, manage, screening, signing  # noqa: F401 - they add the routes
from plugins.consent.views.base import bp

__all__ = ["bp"]
