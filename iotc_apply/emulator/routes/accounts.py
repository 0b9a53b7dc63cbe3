"""Routes of the user service (`userBaseUrl`, alias `entityBaseUrl`): entities and users."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from .. import views
from ..core import page
from .common import body_json, no_content, ok, params, route, state


def register(bp: Blueprint) -> None:
    @route(bp, "/Entity", ["GET"])
    def entity_list() -> Response:
        rows = [views.entity_item(e) for e in state().accounts.entities()]
        return ok(rows, count=len(rows)) if rows else no_content()

    @route(bp, "/Entity/lookup", ["GET"])
    def entity_lookup() -> Response:
        rows = [{"guid": e["guid"], "name": e["name"], "parentEntityGuid": e["parentEntityGuid"]}
                for e in state().accounts.entities()]
        return ok(rows, count=len(rows))

    @route(bp, "/Entity/<guid>", ["GET"])
    def entity_get(guid: str) -> Response:
        return ok([views.entity_detail(state().accounts.entity(guid))], count=1)

    @route(bp, "/Entity", ["POST"])
    def entity_create() -> Response:
        record = state().accounts.create_entity(body_json())
        return ok([{"entityGuid": record["guid"], "userGuid": None}],
                  message="Entity created successfully.")

    @route(bp, "/User", ["GET"])
    def user_list() -> Response:
        return _user_page(params())

    @route(bp, "/User/<guid>", ["GET"])
    def user_get(guid: str) -> Response:
        st = state()
        user = st.accounts.user(guid)
        detail = views.user_detail(user, st.accounts.entity_name(user["entityGuid"]),
                                   st.store.meta("company_guid") or "", st.account.cpid)
        return ok([detail], count=1)

    @route(bp, "/User/<email>/availability", ["GET"])
    def user_availability(email: str) -> Response:
        st = state()
        user = st.accounts.user_by_email(email)
        if user is None:
            return no_content()
        company = st.store.meta("company_guid")
        return ok([{"guid": user["guid"], "userId": user["userId"], "companyGuid": company}])


def _user_page(args: dict[str, Any]) -> Response:
    st = state()
    number, size = page(args, st.limits)
    users = st.accounts.users()
    if args.get("Email"):
        users = [u for u in users if args["Email"].lower() in u["userId"].lower()]
    company = st.store.meta("company_guid") or ""
    rows = [views.user_list_item(u, st.accounts.entity_name(u["entityGuid"]), company)
            for u in users[(number - 1) * size:number * size]]
    return ok(rows, count=len(users)) if rows else no_content()
