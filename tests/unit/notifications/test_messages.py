"""Every message in every language: all templates present, every placeholder filled, right to left where needed."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from services.notifications.messages import (
    FIRST_STRONG_ISOLATE,
    LANGUAGES,
    TemplateError,
    best_language,
    message_key,
    placeholders,
    write_message,
)
from services.notifications.rules import MESSAGES

REQUIRED_LANGUAGES = {"en", "nl", "uk", "ar", "prs"}
RIGHT_TO_LEFT = {"ar", "prs"}
SAMPLE_FACTS = {
    "proposal_id": "proposal-17",
    "case_id": "case-42",
    "host_id": "host-7",
    "pool_id": "pool-north",
    "placement_id": "placement-proposal-17",
    "decide_by": "2026-03-03 09:30 UTC",
    "respond_by": "2026-03-09",
}
# Typed loosely, as the parametrised tests name them.
FACTS: dict[tuple[str, str], frozenset[str]] = {key: facts for key, facts in MESSAGES.items()}
ALL_MESSAGES = sorted(FACTS)


def facts_for(rule: str, kind: str) -> dict[str, str]:
    return {name: SAMPLE_FACTS[name] for name in FACTS[(rule, kind)]}


def test_the_required_languages_are_there_and_right_to_left_where_the_language_is() -> None:
    assert set(LANGUAGES) >= REQUIRED_LANGUAGES
    assert {code for code, language in LANGUAGES.items() if language.direction == "rtl"} == RIGHT_TO_LEFT


@pytest.mark.parametrize("language", sorted(REQUIRED_LANGUAGES))
def test_every_language_has_every_message_and_no_other(language: str) -> None:
    assert set(LANGUAGES[language].messages) == {message_key(rule, kind) for rule, kind in MESSAGES}


@pytest.mark.parametrize("language", sorted(REQUIRED_LANGUAGES))
@pytest.mark.parametrize(("rule", "kind"), ALL_MESSAGES)
def test_each_translation_quotes_the_same_facts_as_the_rule_gives(language: str, rule: str, kind: str) -> None:
    template = LANGUAGES[language].messages[message_key(rule, kind)]
    quoted = placeholders(template.subject).union(*(placeholders(part) for part in template.body))
    # A translation may not drop a deadline or an id, nor quote anything the rule does not give.
    assert quoted == set(FACTS[(rule, kind)])


@pytest.mark.parametrize("language", sorted(REQUIRED_LANGUAGES))
def test_footers_and_notes_quote_only_what_they_are_given(language: str) -> None:
    assert placeholders(LANGUAGES[language].footer) == {"notification_id"}
    assert placeholders(LANGUAGES[language].for_household) == {"case_id", "language_name"}


class Document(HTMLParser):
    """What the tests look at in an HTML part: the root's attributes, the text, and balanced tags."""

    def __init__(self) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}
        self.text: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.root = dict(attrs)
        if tag not in {"meta", "hr", "br"}:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("language", sorted(REQUIRED_LANGUAGES))
@pytest.mark.parametrize(("rule", "kind"), ALL_MESSAGES)
def test_every_message_is_written_with_every_placeholder_filled(language: str, rule: str, kind: str) -> None:
    message = write_message(rule, kind, language, facts_for(rule, kind), notification_id="note-1")
    assert message.language == language
    for part in (message.subject, message.text, message.html):
        assert not re.search(r"\{[a-z_]*\}", part), "an unfilled placeholder"
    for fact in FACTS[(rule, kind)]:
        assert SAMPLE_FACTS[fact] in message.text
        assert SAMPLE_FACTS[fact] in message.html
    assert "note-1" in message.text, "the footer quotes the reference"

    document = Document()
    document.feed(message.html)
    document.close()
    direction = "rtl" if language in RIGHT_TO_LEFT else "ltr"
    assert document.root == {"lang": language, "dir": direction}
    assert document.open == []


@pytest.mark.parametrize("language", sorted(RIGHT_TO_LEFT))
def test_ids_in_right_to_left_text_are_isolated(language: str) -> None:
    message = write_message("match_offer", "beneficiary", language, facts_for("match_offer", "beneficiary"),
                            notification_id="note-1")
    assert f"{FIRST_STRONG_ISOLATE}case-42\u2069" in message.text
    assert "<bdi>case-42</bdi>" in message.html


def test_values_are_escaped_in_the_html_part() -> None:
    facts = facts_for("proposal_rejected", "caseworker") | {"case_id": "<script>"}
    message = write_message("proposal_rejected", "caseworker", "en", facts, notification_id="note-1")
    assert "<script>" not in message.html
    assert "&lt;script&gt;" in message.html


def test_a_message_for_a_household_sent_to_its_desk_says_so_in_the_desks_language() -> None:
    message = write_message("match_offer", "beneficiary", "ar", facts_for("match_offer", "beneficiary"),
                            notification_id="note-1", for_household_in="nl")
    assert message.subject.startswith("[case-42] ")
    assert message.text.startswith("Geef dit bericht door aan het huishouden van dossier case-42.")
    assert "العربية" in message.text.splitlines()[0]
    assert '<p lang="nl" dir="ltr">' in message.html
    assert message.language == "ar"


def test_a_missing_fact_or_template_is_an_error_not_a_half_written_message() -> None:
    with pytest.raises(TemplateError):
        write_message("match_offer", "beneficiary", "en", {"case_id": "case-1"}, notification_id="n")
    with pytest.raises(TemplateError):
        write_message("match_offer", "host", "en", facts_for("match_offer", "beneficiary"), notification_id="n")
    with pytest.raises(TemplateError):
        write_message("match_offer", "beneficiary", "xx", facts_for("match_offer", "beneficiary"), notification_id="n")


@pytest.mark.parametrize(
    ("code", "expected"),
    [("uk", "uk"), ("uk-UA", "uk"), ("fa-AF", "prs"), ("prs", "prs"), ("ar-SY", "ar"), ("so", "en"), (None, "en")],
)
def test_a_cases_language_code_finds_its_templates_or_the_default(code: str | None, expected: str) -> None:
    assert best_language(code) == expected
