"""The documentation stays true: the settings page is the render of the code, and every relative link lands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import settings_doc

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200  # the README is the front door: quickstarts, one screenshot, links to docs/
SCREENSHOT_MAX_BYTES = 200_000  # it travels with every clone and every Space build


def test_the_settings_page_is_the_render_of_the_specs():
    rendered = settings_doc.render()
    on_disk = settings_doc.DOC.read_text(encoding="utf-8") if settings_doc.DOC.exists() else ""
    assert on_disk == rendered, (f"docs/settings.md differs from the parameter specs, presets and options: run "
                                 f"`{settings_doc.WRITE_COMMAND}` and commit the result")


def test_the_settings_page_names_every_parameter_preset_and_option():
    """The render reads the code: each spec, preset and app option appears, so a new one cannot be left out."""
    from svd_demo.core.models import SDXL_PRESETS, SVD_PRESETS
    from svd_demo.core.params import ALL_SPECS
    from svd_demo.core.settings import Settings

    text = settings_doc.DOC.read_text(encoding="utf-8")
    rows = {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", text, re.M)}
    assert set(ALL_SPECS) <= rows, sorted(set(ALL_SPECS) - rows)
    assert all(f"`{p.model_id}`" in text for p in (*SVD_PRESETS, *SDXL_PRESETS))
    flags = {"--" + name.replace("_", "-") for name in Settings.__dataclass_fields__}
    assert all(f"`{flag}`" in text for flag in flags), sorted(f for f in flags if f"`{f}`" not in text)


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub and the Hub make it: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def _links(page: Path) -> list[str]:
    """Relative link targets of a Markdown page, outside code blocks and code spans."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto:


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked}")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading with the anchor #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_sees_links_and_anchors():
    """The checker itself: a link in the text is found, one in code is not, and anchors are made as GitHub does."""
    assert _slug("Speed: feature caching and the 4-step lane") == "speed-feature-caching-and-the-4-step-lane"
    assert _slug("The `pipe` of [the API](api.md)") == "the-pipe-of-the-api"
    assert "docs/api.md" in _links(ROOT / "README.md") and "docs/screenshot.png" in _links(ROOT / "README.md")


def test_the_readme_is_short_and_shows_one_small_screenshot():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES, "README.md is the front door: move detail into docs/"
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images == ["docs/screenshot.png"], images
    shot = ROOT / "docs" / "screenshot.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size < SCREENSHOT_MAX_BYTES
