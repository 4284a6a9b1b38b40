"""Measurement-based care: a patient's signed outcome report and the clinic's outcome figures."""
