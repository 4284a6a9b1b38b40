"""A plugin whose import fails: startup must stop and name it."""
import glia_example_dependency_that_is_not_installed  # noqa: F401
