"""A plugin implementing a hook core does not declare (a typo): startup must stop and name it."""
from core.hookspecs import hookimpl


@hookimpl
def nav_itemz(clinic, user):
    return []
