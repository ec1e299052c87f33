"""benchlib renders measured tables into marked blocks of a hand-written doc:
it replaces only what stands between a block's markers, and refuses a doc
that lacks them with a message naming the doc and the missing marker."""

import importlib.util
import os

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts")


def _benchlib():
    spec = importlib.util.spec_from_file_location("benchlib", os.path.join(SCRIPTS, "benchlib.py"))
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_render_replaces_only_the_marked_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Prose before.\n<!-- bench:t begin -->\nold\n<!-- bench:t end -->\nProse after.\n")
    _benchlib().render(str(doc), {"t": "| a |\n|---|\n| 1 |"})
    assert doc.read_text() == ("Prose before.\n<!-- bench:t begin -->\n| a |\n|---|\n| 1 |\n"
                               "<!-- bench:t end -->\nProse after.\n")


def test_render_refuses_a_doc_without_markers(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("Only prose, no blocks.\n")
    with pytest.raises(SystemExit) as exc:
        _benchlib().render(str(doc), {"peers": "| a |"})
    assert str(exc.value) == (f"bench: {doc} has no block <!-- bench:peers begin --> … "
                              "<!-- bench:peers end -->")
    assert doc.read_text() == "Only prose, no blocks.\n"
