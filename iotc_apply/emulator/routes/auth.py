"""Routes of the auth service (`authBaseUrl`): thin handlers over `auth.Auth`."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .common import ok, route, state


def register(bp: Blueprint) -> None:
    @route(bp, "/Auth/basic-token", ["GET"])
    def basic_token() -> Response:
        return ok(state().auth.basic_token(),
                  message="Basic token has been generated successfully")

    @route(bp, "/Auth/login", ["POST"])
    def login() -> Response:
        data = request.get_json(silent=True) or {}
        return jsonify(state().auth.login(request.headers.get("Authorization"),
                                          request.headers.get("Solution-key"),
                                          data.get("username"), data.get("password")))

    @route(bp, "/Auth/refresh-token", ["POST"])
    def refresh_token() -> Response:
        data = request.get_json(silent=True) or {}
        return jsonify(state().auth.refresh(data.get("refreshtoken")))
