"""Unit tests: --with splitting and requirement normalization (the layer key)."""

import pytest

from runx_env.runner.requirements import Spec, normalize, split_with


@pytest.mark.fast
@pytest.mark.parametrize("value, expect", [
    ("requests", ["requests"]),
    ("requests,rich", ["requests", "rich"]),
    (" requests , rich ,", ["requests", "rich"]),
    ("httpx>=0.27,<1,rich", ["httpx>=0.27,<1", "rich"]),
    ("black[d,jupyter]==24.1,click", ["black[d,jupyter]==24.1", "click"]),
    ("pkg>=1,!=1.5,~=1.2", ["pkg>=1,!=1.5,~=1.2"]),
])
def test_split_with(value, expect):
    assert split_with(value) == expect


@pytest.mark.fast
def test_normalize_names_not_versions():
    assert normalize("Foo_Bar.baz >= 1.0") == "foo-bar-baz >= 1.0"
    assert normalize("  Django==4.2 ") == "django==4.2"


@pytest.mark.fast
def test_key_ignores_spelling_and_order():
    a = Spec(["Rich", "requests"])
    b = Spec(["requests", "rich"])
    assert a.digest() == b.digest()
    assert Spec(["rich==13"]).digest() != Spec(["rich==14"]).digest()
    assert Spec(["rich"], index_url="https://x").digest() != Spec(["rich"]).digest()


@pytest.mark.fast
def test_pinned():
    assert Spec(["rich==13.7.1", "Requests == 2.31.0"]).pinned
    assert not Spec(["rich>=13"]).pinned
    assert not Spec(["rich==13.*"]).pinned
    assert not Spec([], requirement_files=["/x"]).pinned
