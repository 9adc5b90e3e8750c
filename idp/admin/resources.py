"""Admin: resources (RFC 8707) and each client's token exchange policy (RFC 8693).

A resource is an API that clients request tokens for: its identifier (the ``resource``
value), its scopes, the format and lifetime of its access tokens (RFC 9068 JWT or opaque),
which clients may request it and which client its server introspects as. The validation is
``oauth.resources.save`` and ``oauth.token_exchange.policy_problem``, shared with the CLI.
"""

from __future__ import annotations

import json

from flask import Response, abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import delete, select
from wtforms import BooleanField, IntegerField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from .. import db
from ..models import Client, Resource
from ..oauth import resource_metadata, resources, token_exchange
from ..oauth.claims import OIDC_SCOPES
from . import changes
from .access import admin_required, bp
from .forms import SCOPE_TOKEN, DeleteForm, MultiCheckboxField, strip, words


class ResourceForm(FlaskForm):
    identifier = StringField(
        "Identifier",
        filters=[strip],
        validators=[DataRequired(), Length(max=512)],
        description="The URI clients send as resource (RFC 8707), e.g. https://api.example.com/.",
    )
    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=255)])
    # oauth.resources.save requires a scope: the form says so before anyone submits it.
    scopes = StringField(
        "Scopes",
        filters=[strip],
        validators=[DataRequired(message="Give at least one scope.")],
        description="At least one, separated by spaces, e.g. orders:read orders:write.",
    )
    token_format = SelectField(
        "Access token format",
        choices=[
            SelectChoice("", "The client's (else the server's)"),
            SelectChoice("jwt", "JWT (RFC 9068)"),
            SelectChoice("opaque", "Opaque"),
        ],
        default="",
    )
    access_token_lifetime = IntegerField(
        "Access token lifetime (seconds)",
        validators=[Optional(), NumberRange(min=60, max=86400)],
        description="Empty: the client's lifetime, else the server default.",
    )
    clients = MultiCheckboxField("Clients that may request it", choices=[])
    introspection_client = SelectField(
        "Introspects as",
        choices=[],
        description="The client the API's server authenticates as to introspect its tokens.",
    )
    submit = SubmitField("Save resource")

    # The checks of oauth.resources.definition_problem that concern one field, run with the
    # others so that one submit shows every problem (the save repeats them all).
    def validate_identifier(self, field):
        problem = resources.invalid_indicator(field.data or "")
        if problem:
            raise ValidationError(f"The identifier {problem} (RFC 8707 §2).")

    def validate_scopes(self, field):
        for scope in words(field.data):
            if scope in OIDC_SCOPES:
                raise ValidationError(f"{scope} belongs to OpenID Connect, not to a resource.")
            if not SCOPE_TOKEN.match(scope):
                raise ValidationError(f"{scope!r} is not a valid scope (RFC 6749 §3.3).")


class ExchangePolicyForm(FlaskForm):
    allowed = BooleanField("Allow token exchange (RFC 8693)")
    # The rules of token_exchange.policy_problem, said before the form is sent.
    audiences = MultiCheckboxField(
        "Resources it may obtain tokens for",
        choices=[],
        description="At least one, when token exchange is allowed.",
    )
    subject_clients = StringField(
        "Clients whose tokens it may exchange",
        filters=[strip],
        description="At least one, when token exchange is allowed: client ids separated by "
        "spaces, or * for any client.",
    )
    subject_token_types = MultiCheckboxField(
        "Subject token types",
        choices=[
            SelectChoice("access_token", "Access tokens"),
            SelectChoice("id_token", "ID tokens"),
        ],
        default=["access_token"],
        description="At least one, when token exchange is allowed.",
    )
    submit = SubmitField("Save policy")


def all_clients() -> list[Client]:
    return list(db.session().scalars(select(Client).order_by(Client.client_name)))


def fill_choices(form: ResourceForm) -> None:
    clients = all_clients()
    form.clients.choices = [SelectChoice(c.client_id, label(c)) for c in clients]
    form.introspection_client.choices = [SelectChoice("", "None")] + [
        SelectChoice(c.client_id, label(c)) for c in clients if not c.is_public
    ]


def label(client: Client) -> str:
    return f"{client.client_name} ({client.client_id})"


def find_resource(resource_id: int) -> Resource:
    resource = db.session().get(Resource, resource_id)
    if resource is None:
        abort(404)
    return resource


def snapshot(resource: Resource) -> dict:
    data = resources.describe(resource)
    data.pop("created_at")
    return data


def target(resource: Resource) -> str:
    return f"resource:{resource.identifier}"


def field_for(problem: str) -> str:
    """The form field a problem of ``oauth.resources.save`` is about."""
    for word, name in (
        ("identifier", "identifier"),
        ("name", "name"),
        ("scope", "scopes"),
        ("format", "token_format"),
        ("lifetime", "access_token_lifetime"),
    ):
        if word in problem:
            return name
    return "clients"


def saved(form: ResourceForm, resource: Resource) -> bool:
    """Validate and apply the form; problems are attached to their fields."""
    if not form.validate_on_submit():
        return False
    problem = resources.save(
        resource,
        identifier=form.identifier.data,
        name=form.name.data,
        scopes=words(form.scopes.data),
        token_format=form.token_format.data or None,
        lifetime=form.access_token_lifetime.data,
        client_ids=list(form.clients.data or []),
        introspection_client_id=form.introspection_client.data or None,
    )
    if problem:
        getattr(form, field_for(problem)).errors.append(problem[0].upper() + problem[1:] + ".")
        return False
    return True


def form_data(resource: Resource) -> dict:
    return {
        "identifier": resource.identifier,
        "name": resource.name,
        "scopes": resource.scope,
        "token_format": resource.token_format or "",
        "access_token_lifetime": resource.access_token_lifetime,
        "clients": [c.client_id for c in resource.clients],
        "introspection_client": resource.introspection_client_id or "",
    }


@bp.get("/resources")
@admin_required
def resources_list():
    rows = db.session().scalars(select(Resource).order_by(Resource.identifier)).all()
    return render_template("admin/resources/list.html", resources=rows)


@bp.route("/resources/new", methods=["GET", "POST"])
@admin_required
def new_resource():
    form = ResourceForm()
    fill_choices(form)
    resource = Resource()
    if saved(form, resource):
        session = db.session()
        session.flush()
        changes.record("resource.created", target(resource), after=snapshot(resource))
        session.commit()
        flash(f"Resource {resource.name} created.")
        return redirect(url_for("admin.resource", resource_id=resource.id))
    status = 400 if form.errors else 200
    return render_template("admin/resources/form.html", form=form, resource=None), status


@bp.route("/resources/<int:resource_id>", methods=["GET", "POST"])
@admin_required
def resource(resource_id: int):
    """The resource page; POST saves the edit form shown on it."""
    row = find_resource(resource_id)
    before = snapshot(row)
    form = ResourceForm(data=form_data(row))
    fill_choices(form)
    if saved(form, row):
        changes.record("resource.updated", target(row), before, snapshot(row))
        db.session().commit()
        flash("Resource saved.")
        return redirect(url_for("admin.resource", resource_id=row.id))
    status = 400 if form.errors else 200
    return (
        render_template(
            "admin/resources/form.html",
            form=form,
            resource=row,
            metadata_url=resource_metadata.well_known_url(row.identifier),
        ),
        status,
    )


@bp.route("/resources/<int:resource_id>/delete", methods=["GET", "POST"])
@admin_required
def delete_resource(resource_id: int):
    row = find_resource(resource_id)
    form = DeleteForm()
    if form.validate_on_submit():
        session = db.session()
        before = snapshot(row)
        session.execute(delete(Resource).where(Resource.id == row.id))  # client links cascade
        session.expunge(row)
        changes.record("resource.deleted", target(row), before=before)
        session.commit()
        flash(f"Resource {before['name']} deleted.")
        return redirect(url_for("admin.resources_list"))
    return render_template("admin/resources/delete.html", resource=row, form=form)


@bp.route("/clients/<client_id>/token-exchange", methods=["GET", "POST"])
@admin_required
def token_exchange_policy(client_id: str):
    """A client's RFC 8693 policy: which tokens it may exchange, for which resources."""
    session = db.session()
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        abort(404)
    policy = client.token_exchange_policy or {}
    form = ExchangePolicyForm(
        data={
            "allowed": bool(client.token_exchange_policy),
            "audiences": policy.get("audiences", []),
            "subject_clients": " ".join(policy.get("subject_clients", [])),
            "subject_token_types": policy.get("subject_token_types", ["access_token"]),
        }
    )
    form.audiences.choices = [
        SelectChoice(r.identifier, f"{r.name} ({r.identifier})")
        for r in session.scalars(select(Resource).order_by(Resource.identifier))
    ]
    if form.validate_on_submit():
        before = changes.client_snapshot(client)
        grants = [g for g in client.grant_types if g != token_exchange.GRANT_TYPE]
        problem = None
        if form.allowed.data:
            audiences = list(form.audiences.data or [])
            subjects = words(form.subject_clients.data)
            types = list(form.subject_token_types.data or [])
            # The required fields first, all at once; then the policy's own checks.
            for field, given, what in (
                (form.audiences, audiences, "resource (audience)"),
                (form.subject_clients, subjects, "client, or *"),
                (form.subject_token_types, types, "token type"),
            ):
                if not given:
                    field.errors.append(f"Give at least one {what}, or do not allow it.")
            problem = (
                "Public clients cannot use token exchange."
                if client.is_public
                else None
                if form.errors
                else token_exchange.policy_problem(audiences, subjects, types)
            )
            if problem is None and not form.errors:
                client.token_exchange_policy = token_exchange.make_policy(
                    audiences, subjects, types
                )
                client.grant_types = grants + [token_exchange.GRANT_TYPE]
        else:
            client.token_exchange_policy = None
            client.grant_types = grants
        if problem:
            form.allowed.errors.append(problem[0].upper() + problem[1:].rstrip(".") + ".")
        if not form.errors:
            changes.record(
                "client.policy_updated", client_id, before, changes.client_snapshot(client)
            )
            session.commit()
            flash("Token exchange policy saved.")
            return redirect(url_for("admin.client", client_id=client_id))
    status = 400 if form.errors else 200
    return render_template("admin/resources/policy.html", form=form, client=client), status


@bp.get("/resources/<int:resource_id>/metadata.json")
@admin_required
def resource_metadata_document(resource_id: int):
    """RFC 9728 §2: the metadata document the resource's server should serve, as a download."""
    row = find_resource(resource_id)
    body = json.dumps(resource_metadata.resource_document(row), indent=2) + "\n"
    response = Response(body, mimetype="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="oauth-protected-resource.json"'
    response.headers["Cache-Control"] = "no-store"
    return response
