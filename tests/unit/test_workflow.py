"""Business statuses move forward only, from the right party; recalls are the sender's."""

from __future__ import annotations

import pytest

from gateway.errors import PackageRejected
from gateway.workflow import DocumentState, RecipientState, apply_status, check_status

SENDER, A, B = "000.00.05.H07", "000.00.06.H07", "000.01.20.H07"


def document() -> DocumentState:
    return DocumentState(SENDER, {A: RecipientState(), B: RecipientState()})


def say(doc: DocumentState, who: str, *codes: str) -> None:
    for code in codes:
        apply_status(doc, check_status(doc, who, code))


def refused(doc: DocumentState, who: str, code: str) -> str:
    with pytest.raises(PackageRejected) as caught:
        check_status(doc, who, code)
    return caught.value.code


@pytest.mark.parametrize(
    "path",
    [
        ["01", "02"],
        ["01", "03", "06"],
        ["01", "03", "04", "05", "06"],
        ["01", "03", "05"],
        ["01", "03", "04", "06"],
    ],
)
def test_forward_paths_are_accepted_and_routed_to_the_sender(path: list[str]) -> None:
    doc = document()
    for code in path:
        move = check_status(doc, A, code)
        assert move.route_to == (SENDER,) and move.recipients == (A,)
        apply_status(doc, move)
    assert doc.recipients[A].business == path[-1]
    assert doc.recipients[B].business is None


@pytest.mark.parametrize(
    ("before", "code"),
    [
        ([], "03"),  # accepted before arrived
        ([], "06"),  # done before arrived
        (["01"], "01"),  # the same again
        (["01"], "04"),  # assigned before accepted
        (["01", "02"], "03"),  # accepted after rejected
        (["01", "03"], "02"),  # rejected after accepted
        (["01", "03", "06"], "05"),  # backwards
        (["01", "03", "05"], "04"),  # backwards
    ],
)
def test_out_of_order_statuses_are_refused(before: list[str], code: str) -> None:
    doc = document()
    say(doc, A, *before)
    assert refused(doc, A, code) == "status_out_of_order"


def test_status_from_a_unit_that_is_not_a_recipient_is_refused() -> None:
    assert refused(document(), "000.00.99.H07", "01") == "status_not_recipient"


def test_sender_reporting_business_status_is_not_a_recipient() -> None:
    assert refused(document(), SENDER, "01") == "status_not_recipient"


def test_each_recipient_moves_on_its_own() -> None:
    doc = document()
    say(doc, A, "01", "03")
    say(doc, B, "01")
    assert refused(doc, B, "04") == "status_out_of_order"
    say(doc, A, "04")


def test_recall_goes_from_the_sender_to_every_recipient_and_each_answers_once() -> None:
    doc = document()
    say(doc, A, "01")
    move = check_status(doc, SENDER, "13")
    assert move.route_to == (A, B) and move.recipients == (A, B)
    apply_status(doc, move)
    agreed = check_status(doc, A, "15")
    assert agreed.route_to == (SENDER,)
    apply_status(doc, agreed)
    assert refused(doc, A, "16") == "status_out_of_order"  # answered already
    say(doc, B, "16")
    assert doc.recipients[A].recall_answer == "15" and doc.recipients[B].recall_answer == "16"
    assert refused(doc, SENDER, "13") == "status_out_of_order"  # nobody left to ask


def test_recall_by_anyone_but_the_sender_is_refused() -> None:
    assert refused(document(), A, "13") == "recall_not_sender"


@pytest.mark.parametrize("code", ["15", "16"])
def test_recall_answer_without_a_recall_is_out_of_order(code: str) -> None:
    assert refused(document(), A, code) == "status_out_of_order"


def test_check_does_not_change_the_document() -> None:
    doc = document()
    check_status(doc, A, "01")
    check_status(doc, SENDER, "13")
    assert doc.recipients[A] == RecipientState()
