"""The business state machine, pure: who may say what, in which order.

Per (document, recipient), on top of the copy's transport state (gateway.service.transport)
the recipient reports business statuses (QCVN 102 status codes) that only move forward:

    01 arrived ──▶ 02 rejected (final)
               └─▶ 03 accepted ──▶ 04 assigned ──▶ 05 in progress ──▶ 06 done (final)
                                   (04 and 05 may be skipped; 06 is final)

A recall is a conversation of its own: only the original sender sends 13 (asks to recall or
update); each recipient answers it once with 15 (agreed) or 16 (refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.errors import PackageRejected

ARRIVED, REJECTED, ACCEPTED, ASSIGNED, IN_PROGRESS, DONE = "01", "02", "03", "04", "05", "06"
RECALL, RECALL_AGREED, RECALL_REFUSED = "13", "15", "16"

# What each business status may follow (None: the first status of a recipient).
_FOLLOWS: dict[str, frozenset[str | None]] = {
    ARRIVED: frozenset({None}),
    REJECTED: frozenset({ARRIVED}),
    ACCEPTED: frozenset({ARRIVED}),
    ASSIGNED: frozenset({ACCEPTED}),
    IN_PROGRESS: frozenset({ACCEPTED, ASSIGNED}),
    DONE: frozenset({ACCEPTED, ASSIGNED, IN_PROGRESS}),
}


@dataclass
class RecipientState:
    """What one recipient has said about one document so far."""

    business: str | None = None  # the last of 01..06
    recall_pending: bool = False  # a 13 reached it and it has not answered yet
    recall_answer: str | None = None  # 15 or 16


@dataclass
class DocumentState:
    """A document as the workflow sees it: its sender and each recipient's state."""

    sender: str
    recipients: dict[str, RecipientState] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusMove:
    """An accepted status: who it goes to, and which recipients' states it changes."""

    code: str
    route_to: tuple[str, ...]  # OrganIds the status packet is delivered to
    recipients: tuple[str, ...]  # recipients whose state changes


def check_status(document: DocumentState, responder: str, code: str) -> StatusMove:
    """Decide whether ``responder`` may send status ``code`` about ``document`` now.

    Raises PackageRejected with ``recall_not_sender``, ``status_not_recipient`` or
    ``status_out_of_order``. Does not change ``document``: call ``apply_status`` once the
    move is committed."""
    if code == RECALL:
        if responder != document.sender:
            raise PackageRejected(
                "recall_not_sender",
                f"only the sender {document.sender} may recall this document, not {responder}",
            )
        targets = tuple(r for r, s in document.recipients.items() if s.recall_answer is None)
        if not targets:
            raise PackageRejected(
                "status_out_of_order", "every recipient has already answered a recall"
            )
        return StatusMove(code, route_to=targets, recipients=targets)

    state = document.recipients.get(responder)
    if state is None:
        raise PackageRejected(
            "status_not_recipient",
            f"{responder} is not a recipient of this document and cannot report its status",
        )
    if code in (RECALL_AGREED, RECALL_REFUSED):
        if not state.recall_pending:
            raise PackageRejected(
                "status_out_of_order",
                f"status {code} answers a recall (13), and none is waiting for {responder}",
            )
    else:
        allowed = _FOLLOWS.get(code)
        if allowed is None or state.business not in allowed:
            after = f"after {state.business}" if state.business else "as the first status"
            raise PackageRejected(
                "status_out_of_order", f"status {code} cannot come {after} from {responder}"
            )
    return StatusMove(code, route_to=(document.sender,), recipients=(responder,))


def apply_status(document: DocumentState, move: StatusMove) -> None:
    """Record a committed status move."""
    for organ_id in move.recipients:
        state = document.recipients[organ_id]
        if move.code == RECALL:
            state.recall_pending = True
        elif move.code in (RECALL_AGREED, RECALL_REFUSED):
            state.recall_pending = False
            state.recall_answer = move.code
        else:
            state.business = move.code
