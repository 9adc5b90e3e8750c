"""Form fields' attributes written by ``serve.html_params``: the text WTForms' own writes,
byte for byte, through every widget that writes attributes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from wtforms import Form, widgets
from wtforms.fields import (
    BooleanField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice as C
from wtforms.widgets import core as widgets_core

from idp import serve
from idp.serve import LIBRARY_HTML_PARAMS, html_params

KEYS = st.one_of(
    st.from_regex(r"\A(data_|aria_)?[a-z][a-z_]{0,12}_?\Z"),  # class_, data_x_y, aria_label
    st.text(min_size=1, max_size=8),  # anything: quotes, <, &, non-ASCII
)
VALUES = st.one_of(
    st.booleans(), st.none(), st.integers(), st.floats(allow_nan=False),
    st.text(max_size=20), st.text(max_size=20).map(Markup),  # markup passes unescaped
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_attributes_are_written_as_wtforms_writes_them(attributes):
    ours, theirs = html_params(**attributes), LIBRARY_HTML_PARAMS(**attributes)
    assert ours == theirs
    assert type(ours) is type(theirs) is Markup


class Everything(Form):
    name = StringField("Name <b>", render_kw={"autocomplete": "username", "autofocus": True})
    secret = PasswordField("Secret", render_kw={"data_strength": 'a"b', "aria_describedby": "x"})
    note = TextAreaField("Note", default="<hi>")
    hidden = HiddenField(default='q"uote&')
    agree = BooleanField("Agree", default=True)
    one = SelectField("One", choices=[C("a", "A & a"), C("b", 'B "b"')], default="b")
    many = SelectMultipleField("Many", choices=[C("x", "X"), C("y", "Y")], default=["y"])
    pick = RadioField("Pick", choices=[C("1", "One"), C("2", "Two")], default="2")
    go = SubmitField("Go")


def render(form: Form) -> str:
    return "".join(str(field.label) + str(field(class_="c")) for field in form)


def test_every_widget_writes_through_it_and_the_page_is_unchanged(app, monkeypatch):
    # Installed by create_app (the app fixture): inputs, buttons, text areas, selects and
    # their options, lists of radio buttons and labels all write through html_params.
    calls = []

    def counted(**kwargs):
        calls.append(kwargs)
        return html_params(**kwargs)

    monkeypatch.setattr(widgets_core, "html_params", counted)
    monkeypatch.setattr(widgets, "html_params", counted)
    for holder in (widgets_core.Input, widgets_core.Button):
        monkeypatch.setattr(holder, "html_params", staticmethod(counted))
    ours = render(Everything())
    assert len(calls) >= 2 * len(Everything()._fields)  # each field and its label

    monkeypatch.setattr(widgets_core, "html_params", LIBRARY_HTML_PARAMS)
    monkeypatch.setattr(widgets, "html_params", LIBRARY_HTML_PARAMS)
    for holder in (widgets_core.Input, widgets_core.Button):
        monkeypatch.setattr(holder, "html_params", staticmethod(LIBRARY_HTML_PARAMS))
    assert ours == render(Everything())


@pytest.mark.usefixtures("app")
def test_create_app_installs_it():
    assert widgets_core.html_params is widgets.html_params is serve.html_params
    assert widgets_core.TextInput.html_params is widgets_core.SubmitInput.html_params is html_params
