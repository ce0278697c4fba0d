"""Masking of discovered sample values (compiler/discovery/mask.py, docs/discovery.md: Masking samples)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from osiris.compiler.discovery.mask import column_kind, mask_samples, mask_text, mask_value
from osiris.runtime.catalog.model import Column, Table


def _table(rows: list[dict[str, object]]) -> Table:
    names = list(rows[0]) if rows else []
    columns = tuple(Column(n, "text", "string", True) for n in names)
    return Table("people", "public", columns, samples=tuple(rows))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("email", "email"),
        ("e_mail", "email"),
        ("EMail", "email"),
        ("customerEmail", "email"),
        ("E-Mail Address", "email"),
        ("correo", "email"),
        ("phone", "phone"),
        ("phone_number", "phone"),
        ("PhoneNumber", "phone"),
        ("mobile", "phone"),
        ("telefon", "phone"),
        ("telefono", "phone"),
        ("first_name", "name"),
        ("LastName", "name"),
        ("full name", "name"),
        ("surname", "name"),
        ("nombre", "name"),
        ("Vorname", "name"),
        ("address", "address"),
        ("street", "address"),
        ("addressLine2", "address"),
        ("zip", "postcode"),
        ("zip_code", "postcode"),
        ("PostCode", "postcode"),
        ("postal-code", "postcode"),
        ("ip", "ip"),
        ("ip_address", "ip"),
        ("clientIp", "ip"),
        ("card_number", "card"),
        ("cc_number", "card"),
        ("creditCard", "card"),
        ("iban", "iban"),
        ("IBAN", "iban"),
        ("ssn", "national_id"),
        ("passport_number", "national_id"),
        ("date_of_birth", "birth"),
        ("birthDate", "birth"),
        ("dob", "birth"),
    ],
)
def test_personal_column_names_in_several_styles(name: str, kind: str) -> None:
    assert column_kind(name) == kind


@pytest.mark.parametrize(
    "name", ["id", "name", "product_name", "amount", "description", "ship_date", "tip", "zipper"]
)
def test_ordinary_column_names_are_not_personal(name: str) -> None:
    assert column_kind(name) is None


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("john.doe@example.com", "j***@e***.com"),
        ("555-123-4567", "***-***-4567"),
        ("+1 (555) 123-4567", "+* (***) ***-4567"),
        ("192.168.1.10", "<ipv4>"),
        ("2001:db8::1", "<ipv6>"),
        ("4111 1111 1111 1111", "**** **** **** 1111"),
        ("DE89 3704 0044 0532 0130 00", "DE** **** **** **** **30 00"),
        ("GB82WEST12345698765432", "GB****************5432"),
    ],
)
def test_values_masked_by_shape_in_any_column(value: str, masked: str) -> None:
    assert mask_value(value) == masked
    assert mask_value(value, None) == mask_text(value)


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-15",
        "12:30:45",
        "hello world",
        "1234567",
        "3.14",
        "v1.2.3",
        "4111 1111 1111 1112",  # fails Luhn: not a card
        "DE89 3704 0044 0532 0130 01",  # fails mod 97: not an IBAN
        "999.1.1.1",  # not an address
    ],
)
def test_ordinary_values_are_kept(value: str) -> None:
    assert mask_value(value) == value


def test_shapes_inside_free_text_are_masked_and_the_rest_kept() -> None:
    text = "mail a.b@c.org from 10.0.0.1, card 5500-0000-0000-0004, IBAN DE89370400440532013000 ok"
    assert mask_text(text) == (
        "mail a***@c***.org from <ipv4>, card ****-****-****-0004, IBAN DE****************3000 ok"
    )


def test_masked_by_column_name_keeping_the_shape() -> None:
    assert mask_value("Jane Q. Doe", "name") == "J*** Q***. D***"
    assert mask_value("12 Main Street", "address") == "## M*** S***"
    assert mask_value("SW1A 1AA", "postcode") == "AA#A #AA"
    assert mask_value("123-45-6789", "national_id") == "***-**-****"  # the name wins: not a phone
    assert mask_value("1985-03-12", "birth") == "****-**-**"
    assert mask_value(5551234567, "phone") == "******4567"
    assert mask_value("unknown", "ip") == "<ip>"
    assert mask_value("x@y.io", "name") == "x***@y***.io"  # a definite shape wins over the name


def test_none_booleans_and_plain_numbers_are_kept() -> None:
    for value in (None, True, False, 42, 3.5, ""):
        assert mask_value(value) == value
    assert mask_value(None, "email") is None
    assert mask_value(4111111111111111) == "************1111"  # an integer card number


def test_nested_values_are_masked() -> None:
    assert mask_value({"email": "Jane", "note": "at 10.1.2.3"}) == {
        "email": "J***",
        "note": "at <ipv4>",
    }
    assert mask_value(["a@b.com", "x"]) == ["a***@b***.com", "x"]


def test_mask_samples_masks_personal_columns_only() -> None:
    table = _table(
        [
            {"id": 1, "first_name": "Ada", "contact": "ada@lovelace.org", "city": "London"},
            {"id": 2, "first_name": "Alan", "contact": "+44 20 7946 0958", "city": "Wilmslow"},
        ]
    )
    masked = mask_samples(table)
    assert masked.samples == (
        {"id": 1, "first_name": "A***", "contact": "a***@l***.org", "city": "London"},
        {"id": 2, "first_name": "A***", "contact": "+** ** **** 0958", "city": "Wilmslow"},
    )
    assert masked.columns == table.columns and masked.name == table.name
    assert table.samples[0]["first_name"] == "Ada"  # the input is not changed
    assert mask_samples(_table([])) == _table([])


# -- properties: nothing that looks personal survives ------------------------------------------


def _luhn_complete(body: str) -> str:
    total = 0
    for i, char in enumerate(reversed(body)):
        digit = int(char)
        if i % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return body + str((10 - total % 10) % 10)


cards = st.builds(_luhn_complete, st.text(alphabet="0123456789", min_size=12, max_size=18)).filter(
    lambda c: len(set(c)) > 1
)


def _grouped(number: str, sep: str) -> str:
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


ibans = st.builds(
    _iban,
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=11, max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(st.emails(), st.sampled_from([None, "email", "contact", "name"]))
@example("0*@A.AO", None)
def test_no_generated_email_survives(email: str, column: str | None) -> None:
    kind = column_kind(column) if column else None
    masked = mask_value(email, kind)
    assert email not in masked
    local = email.rpartition("@")[0]
    # only the first character of the local part is kept (a local part such as '0*' would be
    # "in" its own mask '0***', so the exact form is what is asserted)
    assert masked.split("@")[0] == local[:1] + "***"


@settings(max_examples=300, deadline=None)
@given(cards, st.sampled_from(["", " ", "-"]), st.sampled_from(["{}", "card: {} thanks"]))
def test_no_generated_card_survives(number: str, sep: str, template: str) -> None:
    text = template.format(_grouped(number, sep) if sep else number)
    masked = mask_value(text)
    digits = re.sub(r"\D", "", masked)
    assert number not in digits
    assert digits == number[-4:]  # only the last four digits stay visible


@settings(max_examples=200, deadline=None)
@given(ibans, st.booleans())
def test_no_generated_iban_survives(iban: str, grouped: bool) -> None:
    text = _grouped(iban, " ") if grouped else iban
    masked = mask_value(text)
    assert re.sub(r"\W", "", masked) != iban
    assert masked[:2] == iban[:2] and re.sub(r"[\s*]", "", masked)[2:] == iban[-4:]


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_no_generated_ip_address_survives(address: object) -> None:
    text = str(address)
    masked = mask_value(f"from {text} at noon")
    assert text not in masked
    assert masked == f"from <ipv{4 if '.' in text and ':' not in text else 6}> at noon"


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="0123456789", min_size=10, max_size=10),
    st.sampled_from(["{}-{}-{}", "({}) {} {}", "+1 {}.{}.{}"]),
)
def test_no_generated_phone_number_survives(digits: str, layout: str) -> None:
    phone = layout.format(digits[:3], digits[3:6], digits[6:])
    masked = mask_value(phone, column_kind("phone"))
    assert re.sub(r"\D", "", masked) == digits[-4:]
    assert mask_value(phone) == masked  # the shape alone is enough


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_masking_never_fails_and_keeps_text_without_personal_shapes(text: str) -> None:
    masked = mask_value(text)
    assert isinstance(masked, str)
    if not re.search(r"[@:.\d]", text):
        assert masked == text


@pytest.mark.parametrize(
    "hostile",
    [
        "a" * 200_000,
        ":" * 200_000,
        "1" * 200_000,
        "a@" * 100_000,
        "1:" * 100_000,
        "1." * 100_000,
        "x.y" * 60_000 + "@",
        "DE89 " * 40_000,
    ],
)
def test_masking_a_long_hostile_value_takes_linear_time(hostile: str) -> None:
    import time

    started = time.perf_counter()
    mask_value(hostile)
    mask_value(hostile, "email")
    assert time.perf_counter() - started < 2.0
