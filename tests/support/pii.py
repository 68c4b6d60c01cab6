"""Generated personal data for redaction tests: values as people and payloads write them."""

from __future__ import annotations

import string

from hypothesis import strategies as st


@st.composite
def phones(draw: st.DrawFn) -> str:
    """A Mexican phone number: 10 digits, grouped or not, maybe after +52 (and the old 1)."""
    national = draw(st.sampled_from("23456789")) + draw(
        st.text(string.digits, min_size=9, max_size=9)
    )
    area = national[: draw(st.sampled_from([2, 3]))]
    middle, last = national[len(area) : -4], national[-4:]
    separator = draw(st.sampled_from(["", " ", "-"]))
    if draw(st.booleans()):
        area = f"({area})" + draw(st.sampled_from(["", " "]))
    else:
        area += separator
    prefix = draw(st.sampled_from(["", "+52", "+52 ", "+52-", "+52 1 ", "+521"]))
    return f"{prefix}{area}{middle}{separator}{last}"


def emails() -> st.SearchStrategy[str]:
    """Email addresses, RFC 5322 local parts included."""
    return st.emails()
