"""Every hook in core/hookspecs.py has a section in docs/plugins.md and a real test.

"A real test" is checkable: tests/test_hooks.py's HOOK_TESTS names, for each hook, a test
function that exists and mentions the hook, and an example plugin under tests/example_plugins
implements the hook with @hookimpl (so the test exercises a real implementation).
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from core import hookspecs
from tests import test_hooks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["tests.example_plugins.ratings", "tests.example_plugins.faulty", "tests.example_plugins.stamp"]


def declared_hooks() -> list[str]:
    return sorted(name for name, fn in vars(hookspecs).items() if callable(fn) and hasattr(fn, "glia_spec"))


def test_every_hook_has_a_docs_section_with_an_example():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    sections = dict(re.findall(r"^### (\w+)\n(.*?)(?=^#{1,3} |\Z)", doc, re.S | re.M))
    hooks = declared_hooks()
    assert len(hooks) >= 17
    missing = [h for h in hooks if h not in sections]
    assert not missing, f"docs/plugins.md has no '### <hook>' section for: {missing}"
    for hook in hooks:
        assert "```python" in sections[hook] and f"def {hook}(" in sections[hook], f"{hook}: no example"
    assert not set(sections) - set(hooks), "a section documents a hook core does not declare"


def test_every_hook_has_a_test_and_an_example_implementation():
    implemented = set()
    for name in EXAMPLES:
        module = importlib.import_module(name)
        implemented |= {n for n, fn in vars(module).items() if callable(fn) and hasattr(fn, "glia_impl")}
    for hook in declared_hooks():
        assert hook in test_hooks.HOOK_TESTS, f"tests/test_hooks.py HOOK_TESTS has no test for {hook}"
        test = getattr(test_hooks, test_hooks.HOOK_TESTS[hook], None)
        assert callable(test), f"{test_hooks.HOOK_TESTS[hook]} (for {hook}) does not exist"
        assert hook in inspect.getsource(test), f"{test.__name__} never mentions {hook}"
        assert hook in implemented, f"no example plugin implements {hook}"
