"""Property: parse_package(build_package(m)) gives back m for any generated model."""

from __future__ import annotations

import string
from datetime import date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from samples import with_dummy_signature

from gateway.envelope import (
    Attachment,
    Business,
    BusinessType,
    Code,
    DocumentType,
    Kind,
    Organization,
    Package,
    Profile,
    Receiver,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusInfo,
    TraceHeader,
    build_package,
    make_document_id,
    parse_package,
)

# Text that survives XML and the reader's whitespace trimming: no control characters, no
# leading or trailing spaces.
_ALPHABET = string.ascii_letters + string.digits + "ăâđêôơưàáảãạèéẻẽẹ ,.-()/:;&<>\"'"
text = st.text(_ALPHABET, min_size=1, max_size=40).map(str.strip).filter(bool)
optional_text = st.none() | text
token = st.text(string.ascii_letters + string.digits + "-.", min_size=1, max_size=20)
organ_ids = st.builds(
    "{:03d}.{:02d}.{:02d}.{}{:02d}".format,
    st.integers(0, 999),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from("GH"),
    st.integers(0, 99),
)
dates = st.dates(date(2000, 1, 1), date(2099, 12, 31))
timestamps = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


def organizations(organ_id: st.SearchStrategy[str] = organ_ids) -> st.SearchStrategy[Organization]:
    return st.builds(
        Organization,
        organ_id=organ_id,
        name=text,
        in_charge=optional_text,
        address=optional_text,
        email=optional_text,
        telephone=optional_text,
        fax=optional_text,
        website=optional_text,
    )


staff = st.none() | st.builds(
    StaffInfo,
    department=optional_text,
    staff=optional_text,
    mobile=optional_text,
    email=optional_text,
)
attachments = st.lists(
    st.builds(
        Attachment,
        content_id=token.map(lambda t: f"cid:{t}"),
        name=text,
        content_type=st.sampled_from(["application/pdf", "text/plain", "image/png"]),
        data=st.binary(max_size=300),
        description=optional_text,
    ),
    max_size=3,
    unique_by=lambda a: a.content_id,
)
business = st.none() | st.builds(
    Business,
    doc_type=st.sampled_from(list(BusinessType)),
    reason=optional_text,
    document_id=optional_text,
    paper=st.none() | st.integers(0, 5),
    staff=staff,
    receivers=st.lists(
        st.builds(Receiver, organ_id=organ_ids, added=st.booleans()), max_size=2
    ).map(tuple),
)


def trace_lists(max_size: int) -> st.SearchStrategy[tuple[TraceHeader, ...]]:
    trace = st.builds(TraceHeader, organ_id=organ_ids, timestamp=timestamps)
    return st.lists(trace, max_size=max_size).map(tuple)


response_for = st.builds(
    lambda org, day, number, notation: ResponseFor(
        org, f"{number}/{notation}", day, make_document_id(org, day, number, notation)
    ),
    organ_ids,
    dates,
    token,
    token,
)


@st.composite
def documents(draw: st.DrawFn) -> Package:
    sender = draw(organizations())
    day = draw(dates)
    number, notation = draw(token), draw(token)
    return Package(
        kind=Kind.DOCUMENT,
        sender=sender,
        recipients=tuple(
            draw(st.lists(organizations(), min_size=1, max_size=4, unique_by=lambda o: o.organ_id))
        ),
        document_id=make_document_id(sender.organ_id, day, number, notation),
        code=Code(number, notation),
        subject=draw(text),
        content=draw(optional_text),
        promulgation_place=draw(optional_text),
        promulgation_date=day,
        document_type=draw(
            st.builds(
                DocumentType,
                type=st.integers(0, 50),
                detail=st.none() | st.integers(0, 9),
                name=optional_text,
            )
        ),
        signer=draw(
            st.none()
            | st.builds(
                SignerInfo,
                competence=optional_text,
                position=optional_text,
                full_name=optional_text,
            )
        ),
        due_date=draw(st.none() | dates),
        priority=draw(st.integers(0, 4)),
        steering_type=draw(st.none() | st.integers(0, 3)),
        to_places=tuple(draw(st.lists(text, max_size=3))),
        response_for=tuple(draw(st.lists(response_for, max_size=2))),
        business=draw(business),
        traces=tuple(
            draw(
                st.lists(
                    st.builds(TraceHeader, organ_id=organ_ids, timestamp=timestamps), max_size=3
                )
            )
        ),
        attachments=tuple(draw(attachments)),
    )


@st.composite
def statuses(draw: st.DrawFn) -> Package:
    answered = draw(response_for)
    return Package(
        kind=Kind.STATUS,
        sender=draw(organizations()),
        recipients=(Organization(answered.organ_id),),
        document_id=answered.document_id,
        traces=tuple(
            draw(
                st.lists(
                    st.builds(TraceHeader, organ_id=organ_ids, timestamp=timestamps), max_size=2
                )
            )
        ),
        status=StatusInfo(
            code=draw(st.sampled_from(["01", "02", "03", "04", "05", "06", "13", "15", "16"])),
            timestamp=draw(timestamps),
            response_for=answered,
            description=draw(optional_text),
            staff=draw(staff),
        ),
    )


@settings(max_examples=150, deadline=None)
@given(documents() | statuses())
def test_parse_of_build_gives_back_the_model(model: Package) -> None:
    data = with_dummy_signature(build_package(model))
    parsed = parse_package(data, Profile.STRICT)
    assert parsed == model
    assert parsed.warnings == ()
    assert parsed.raw == data
