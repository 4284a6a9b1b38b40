"""Care-coordination letters to outside psychiatrists, therapists and primary care."""
