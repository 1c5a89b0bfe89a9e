"""What a person reads: each message written from its template, in their language, as text and as HTML.

Templates are data (``templates/<language>.json``), one file per language, so a translator edits text
and never code. Each holds, per message (rule and recipient kind), a subject and paragraphs with
``{placeholders}`` for the facts the rule gives (ids, dates, deadlines), plus a footer that tells people
how to recognise a genuine message. ``tests/unit/notifications/test_messages.py`` holds every language
to every message and every placeholder to the facts its rule provides.

Right-to-left languages get ``dir="rtl"`` on the HTML document; every quoted id or date is isolated
(``<bdi>`` in HTML, FSI/PDI in text) so that a left-to-right id inside right-to-left text keeps its
order.
"""

from __future__ import annotations

import html
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from services.notifications.rules import DEFAULT_LANGUAGE

TEMPLATES: Final = Path(__file__).parent / "templates"
# Codes a case may carry for a language the templates hold under another code.
ALIASES: Final[Mapping[str, str]] = {"fa-af": "prs", "fa_af": "prs"}
FIRST_STRONG_ISOLATE: Final = "\u2068"
POP_DIRECTIONAL_ISOLATE: Final = "\u2069"

Direction = Literal["ltr", "rtl"]


class TemplateError(Exception):
    """A message that cannot be written: no template, or a fact its template quotes is missing."""


@dataclass(frozen=True, slots=True)
class Template:
    subject: str
    body: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Language:
    """One language's templates."""

    code: str
    name: str
    direction: Direction
    footer: str
    for_household: str
    messages: Mapping[str, Template]


@dataclass(frozen=True, slots=True)
class Message:
    """A written message: the subject and both parts of an email."""

    language: str
    direction: Direction
    subject: str
    text: str
    html: str


def message_key(rule: str, recipient_kind: str) -> str:
    return f"{rule}/{recipient_kind}"


def load_languages(folder: Path = TEMPLATES) -> dict[str, Language]:
    """Every language in the templates folder, by code."""
    languages: dict[str, Language] = {}
    for path in sorted(folder.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        languages[document["language"]] = Language(
            code=document["language"],
            name=document["name"],
            direction=document["direction"],
            footer=document["footer"],
            for_household=document["for_household"],
            messages={
                key: Template(subject=value["subject"], body=tuple(value["body"]))
                for key, value in document["messages"].items()
            },
        )
    return languages


LANGUAGES: Final[Mapping[str, Language]] = load_languages()


def best_language(code: str | None) -> str:
    """The templates' language for a case's language code: itself, its alias, its base, or the default."""
    if not code:
        return DEFAULT_LANGUAGE
    lowered = code.lower()
    for candidate in (lowered, ALIASES.get(lowered), lowered.split("-")[0]):
        if candidate is not None and candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def placeholders(text: str) -> set[str]:
    """The names of the ``{placeholders}`` a template text quotes."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def write_message(
    rule: str,
    recipient_kind: str,
    language: str,
    facts: Mapping[str, Any],
    *,
    notification_id: str,
    for_household_in: str | None = None,
) -> Message:
    """Write one message.

    ``for_household_in`` is set when a beneficiary's message goes to their caseworker's desk instead of
    to them: it names the desk's language, in which a first paragraph asks the desk to pass the message on.
    """
    chosen = LANGUAGES.get(language)
    if chosen is None:
        raise TemplateError(f"no templates in language {language!r}")
    template = chosen.messages.get(message_key(rule, recipient_kind))
    if template is None:
        raise TemplateError(f"no template for {message_key(rule, recipient_kind)} in {language!r}")
    values = {**facts, "notification_id": notification_id}
    rtl = chosen.direction == "rtl"
    subject = _fill(template.subject, values, isolate=False)
    paragraphs = [_fill(part, values, isolate=rtl) for part in template.body]
    footer = _fill(chosen.footer, values, isolate=rtl)
    html_paragraphs = [_fill_html(part, values) for part in template.body]
    html_footer = _fill_html(chosen.footer, values)

    text_parts = [*paragraphs, "--", footer]
    html_parts = [f"<p>{part}</p>" for part in html_paragraphs] + [f"<p><small>{html_footer}</small></p>"]
    if for_household_in is not None:
        desk = LANGUAGES.get(for_household_in) or LANGUAGES[DEFAULT_LANGUAGE]
        note_values = {"case_id": facts.get("case_id", ""), "language_name": chosen.name}
        subject = f"[{facts.get('case_id', '')}] {subject}"
        text_parts = [_fill(desk.for_household, note_values, isolate=desk.direction == "rtl"), "", *text_parts]
        html_parts.insert(
            0,
            f'<p lang="{desk.code}" dir="{desk.direction}"><em>{_fill_html(desk.for_household, note_values)}</em></p>'
            "<hr>",
        )
    return Message(
        language=chosen.code,
        direction=chosen.direction,
        subject=subject,
        text="\n\n".join(text_parts) + "\n",
        html=(
            f'<!DOCTYPE html>\n<html lang="{chosen.code}" dir="{chosen.direction}">\n'
            f'<head><meta charset="utf-8"><title>{html.escape(subject)}</title></head>\n'
            f"<body>\n{chr(10).join(html_parts)}\n</body>\n</html>\n"
        ),
    )


def _fill(text: str, values: Mapping[str, Any], *, isolate: bool) -> str:
    try:
        if isolate:
            wrapped = {key: f"{FIRST_STRONG_ISOLATE}{value}{POP_DIRECTIONAL_ISOLATE}" for key, value in values.items()}
            return text.format_map(wrapped)
        return text.format_map(values)
    except KeyError as missing:
        raise TemplateError(f"the template quotes {missing.args[0]!r}, which the rule does not give") from None


def _fill_html(text: str, values: Mapping[str, Any]) -> str:
    # Escape the translator's text and every value; braces survive escaping, so placeholders still fill.
    wrapped = {key: f"<bdi>{html.escape(str(value))}</bdi>" for key, value in values.items()}
    try:
        return html.escape(text, quote=False).format_map(wrapped)
    except KeyError as missing:
        raise TemplateError(f"the template quotes {missing.args[0]!r}, which the rule does not give") from None
