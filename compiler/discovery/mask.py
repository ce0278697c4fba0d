"""Masking of personal-looking sample values before they are shown or sent to a model (docs/discovery.md)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any

from osiris.runtime.catalog.model import Table

# What a column name says its values are, tried in this order on the name's words (split at
# '_', '-', '.', spaces and camelCase, lower-cased) and on the words run together.
_NAME_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("email", r"(^|_)(e_?mail|mail|email_?address|mail_?address|correo|courriel)(_|$)"),
        ("ip", r"(^|_)(ip|ipv4|ipv6|ip_?addr(ess)?|remote_?addr(ess)?|client_?ip)(_|$)"),
        (
            "iban",
            r"(^|_)(iban|bic|swift|bank_?account(_?(no|number|num))?|account_?(no|number|num))(_|$)",
        ),
        (
            "card",
            r"(^|_)((credit_?|debit_?)?card(_?(no|number|num))?|cc_?(no|num|number)?|pan)(_|$)",
        ),
        (
            "national_id",
            r"(^|_)(ssn|social_?security(_?(no|number))?|national_?id|tax_?id|tin|nin|sin|dni|"
            r"nif|nie|passport(_?(no|number))?|personalausweis|steuer_?id|license_?(no|number)|"
            r"driver_?license)(_|$)",
        ),
        (
            "birth",
            r"(^|_)(dob|birth\w*|date_?of_?birth|birth_?date|geburts\w*|fecha_?(de_?)?nacimiento|"
            r"naissance|date_?naissance)(_|$)",
        ),
        (
            "phone",
            r"(^|_)(phone\w*|tel|telephone|telefon|telefono|tel[eé]fono|handy|mobile|mobil|movil|"
            r"m[oó]vil|cell|cellphone|cell_?phone|fax|msisdn|whatsapp)(_|$)",
        ),
        (
            "postcode",
            r"(^|_)(zip|zip_?code|zipcode|post_?code|postal_?code|plz|postleitzahl|cp)(_|$)",
        ),
        (
            "address",
            r"(^|_)(address|addr|street|street_?address|address_?line_?\d*|strasse|stra[sß]e|"
            r"direccion|direcci[oó]n|adresse|indirizzo|house_?(no|number)|hausnummer)(_|$)",
        ),
        (
            "name",
            r"(^|_)((first|last|full|given|family|middle|maiden|sur|fore|display|nick|"
            r"customer|contact|person|holder|card_?holder|user|employee|patient|client|owner)_?name|"
            r"surname|forename|username|firstname|lastname|fullname|nombre|apellidos?|vorname|"
            r"nachname|pr[eé]nom|cognome|nome)(_|$)",
        ),
    )
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s\-.]+")

# Value shapes, found anywhere in a text (an e-mail inside a comment is still an e-mail).
# Each pattern starts only at the edge of a token and is bounded, so that masking a long hostile
# value takes linear time.
_EMAIL_CHAR = r"[^\s@<>()\[\],;:\"]"
_EMAIL = re.compile(rf"(?<!{_EMAIL_CHAR}){_EMAIL_CHAR}{{1,64}}@{_EMAIL_CHAR}+\.{_EMAIL_CHAR}+")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f:.]{2,45}(?<!\.)(?![0-9A-Fa-f:])")
_CARD = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?!\d)")
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)"
    r"(?![A-Za-z0-9])"
)
# A whole value that looks like a phone number: 7-15 digits, with a leading '+', parentheses
# or at least two separators between groups (a bare run of digits is not assumed to be one).
_PHONE = re.compile(r"\+?\s?(?:\(\d{1,5}\)|\d{1,5})(?:[\s.\-/]?(?:\(\d{1,5}\)|\d{1,5})){1,6}")
# Shapes that say what a value is whatever its column is called ('123-45-6789' looks like a
# phone number but in a column named ssn it is a national id: there the name wins).
_DEFINITE_SHAPES = frozenset({"email", "ipv4", "ipv6", "iban", "card"})
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}")


def mask_samples(table: Table) -> Table:
    """table with its sample values masked where the column name or the value's shape looks
    personal; every other value is kept as it is."""
    if not table.samples:
        return table
    kinds: dict[str, str | None] = {}
    samples = []
    for row in table.samples:
        masked = {}
        for column, value in row.items():
            if column not in kinds:
                kinds[column] = column_kind(column)
            masked[column] = mask_value(value, kinds[column])
        samples.append(masked)
    return replace(table, samples=tuple(samples))


def column_kind(name: str) -> str | None:
    """What a column's name says its values are (email, phone, name, address, postcode, ip,
    card, iban, national_id, birth), or None."""
    words = [w.lower() for w in _SEPARATORS.split(_CAMEL.sub(" ", name.replace("_", " "))) if w]
    if not words:
        return None
    snake = "_".join(words)
    joined = "".join(words)
    for kind, pattern in _NAME_KINDS:
        if pattern.search(snake) or pattern.search(joined):
            return kind
    return None


def mask_value(value: Any, kind: str | None = None) -> Any:
    """A sample value with personal data masked: by kind (from the column's name) when given,
    and by the shape of what it holds in any case. None and booleans are kept."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {k: mask_value(v, kind or column_kind(str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v, kind) for v in value]
    if isinstance(value, int | float) and kind is None:
        text = str(value)
        return _mask_by_kind(text, "card") if isinstance(value, int) and _is_card(text) else value
    text = str(value)
    if kind is not None and text:
        shape = value_kind(text)
        return _mask_by_kind(text, shape if shape in _DEFINITE_SHAPES else kind)
    return mask_text(text)


def value_kind(text: str) -> str | None:
    """The kind a whole value has by its shape: email, ipv4, ipv6, iban, card, phone, or None."""
    stripped = text.strip()
    if len(stripped) > 320:  # longer than any e-mail address, card, IBAN, IP or phone number
        return None
    if _EMAIL.fullmatch(stripped):
        return "email"
    if _IPV4.fullmatch(stripped) and _is_ip(stripped):
        return "ipv4"
    if ":" in stripped and _is_ip(stripped):
        return "ipv6"
    if _IBAN.fullmatch(stripped.upper()) and _is_iban(stripped):
        return "iban"
    if _CARD.fullmatch(stripped) and _is_card(stripped):
        return "card"
    if _is_phone(stripped):
        return "phone"
    return None


def mask_text(text: str) -> str:
    """text masked whole when all of it has a personal shape (value_kind), else with every
    e-mail, IBAN, card number and IP address inside it masked."""
    whole = value_kind(text)
    if whole is not None:
        return _mask_by_kind(text, whole)
    if "@" in text:
        text = _EMAIL.sub(lambda m: _mask_by_kind(m.group(0), "email"), text)
    text = _IBAN.sub(lambda m: _masked_if(m.group(0), "iban", _is_iban), text)
    text = _CARD.sub(lambda m: _masked_if(m.group(0), "card", _is_card), text)
    if ":" in text:
        text = _IPV6.sub(lambda m: _masked_if(m.group(0), "ipv6", _is_ipv6), text)
    return _IPV4.sub(lambda m: _masked_if(m.group(0), "ipv4", _is_ip), text)


def _masked_if(found: str, kind: str, test: Any) -> str:
    return _mask_by_kind(found, kind) if test(found) else found


def _mask_by_kind(text: str, kind: str) -> str:
    if kind == "email" and "@" in text:
        local, _, domain = text.rpartition("@")
        top = domain.rsplit(".", 1)[1] if "." in domain else ""
        return f"{local[:1]}***@{domain[:1]}***" + (f".{top}" if top else "")
    if kind in ("ipv4", "ipv6", "ip"):
        found = value_kind(text)
        return f"<{found if found in ('ipv4', 'ipv6') else 'ip'}>"
    if kind in ("phone", "card"):
        return _keep_last_digits(text, 4 if sum(c.isdigit() for c in text) >= 7 else 0)
    if kind == "iban":
        return _mask_iban(text)
    if kind in ("national_id", "birth"):
        return re.sub(r"[A-Za-z0-9]", "*", text)
    if kind == "postcode":
        return re.sub(r"[A-Za-z]", "A", re.sub(r"\d", "#", text))
    # name, address and e-mail-looking text without '@': each word's first letter, digits hidden
    return re.sub(r"\d", "#", re.sub(r"([^\W\d_])[^\W\d_]*", r"\1***", text))


def _keep_last_digits(text: str, keep: int) -> str:
    total = sum(c.isdigit() for c in text)
    out, seen = [], 0
    for char in text:
        if char.isdigit():
            seen += 1
            out.append(char if seen > total - keep else "*")
        else:
            out.append("*" if char.isalpha() else char)
    return "".join(out)


def _mask_iban(text: str) -> str:
    chars = [i for i, c in enumerate(text) if c.isalnum()]
    visible = set(chars[:2]) | set(chars[-4:])
    return "".join(c if i in visible or not c.isalnum() else "*" for i, c in enumerate(text))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_card(text: str) -> bool:
    """13-19 digits (spaces or dashes between them allowed) that pass the Luhn check."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _is_iban(text: str) -> bool:
    """A country code, two check digits and 11-30 letters or digits passing ISO 13616 mod 97."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _is_ipv6(text: str) -> bool:
    return text.count(":") >= 2 and _is_ip(text)


def _is_phone(text: str) -> bool:
    if len(text) > 32 or not _PHONE.fullmatch(text) or _DATE.fullmatch(text):
        return False
    digits = sum(c.isdigit() for c in text)
    separators = len(re.findall(r"[\s.\-/]+", text.strip("+ ")))
    return 7 <= digits <= 15 and (text.startswith("+") or "(" in text or separators >= 2)
