"""Versioned consents with e-signatures and contraindication screening that gates treatment."""
