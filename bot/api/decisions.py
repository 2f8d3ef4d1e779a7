"""The decision API: in-house systems ask Baton who may do what (aiohttp.web, JSON, ``/v1``).

``GET /v1/check?user=&permission=``, ``GET /v1/users/<id>/permissions``,
``GET /v1/permissions/<name>/holders`` (paged), ``GET /v1/events?after=&limit=`` (the change
feed for pollers) and ``GET /v1/openapi.json`` (the description; no token needed).

Every answer comes from the in-memory permission index (``storage.index``), resolved by
``sources_of``, the function ``whoami`` uses. Before answering, a request waits for a
freshness read that started after it arrived (shared by every request waiting then), so
the answer reflects every change committed before it arrived, on any replica; ``as_of`` in
the answer is the feed sequence it reflects, and ``at_least=<seq>`` waits (at most
``api.max_wait``) for an index at least that fresh.

Tokens: ``Authorization: Bearer <token>``. A verified token is cached by its hash with the
revoke epoch it was verified at; the freshness read every request waits for anyway carries
the current epoch (the number of revoked tokens), so a revoke on any replica sends every
cached token back to the store on the next request, and a token seen revoked is refused.
An unknown user is a member who holds nothing: nothing says whether they exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.config import Settings
from bot.core.clock import Clock
from bot.core.domain.index import CorpIndex
from bot.core.domain.permissions import Catalog, Source, expiry
from bot.core.domain.tokens import TokenView, token_hash, well_formed
from storage.db import Database
from storage.index import IndexKeeper, keeper

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_LIMIT = 1000
TOKEN_KEY = web.AppKey("token", TokenView)
AS_OF_KEY = web.AppKey("as_of", int)


class ApiError(Exception):
    """A refusal: the HTTP status, a stable code and a sentence saying what to do."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers: dict[str, str] = {}

    def response(self) -> web.Response:
        return web.json_response({"error": self.code, "message": self.message, **self.extra},
                                 status=self.status, headers=self.headers)


class Bucket:
    """A token bucket: ``rate`` a second, ``burst`` at once."""

    __slots__ = ("burst", "last", "level", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst, self.level, self.last = rate, float(burst), float(burst), now

    def take(self, now: float) -> float:
        """0 when a request may go now, else the seconds until one may."""
        self.level = min(self.burst, self.level + (now - self.last) * self.rate)
        self.last = now
        if self.level >= 1.0:
            self.level -= 1.0
            return 0.0
        return (1.0 - self.level) / self.rate


@dataclass(frozen=True, slots=True)
class _Verified:
    token: TokenView
    epoch: int
    at: float


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _sources(srcs: tuple[Source, ...]) -> list[dict[str, Any]]:
    return [{"kind": s.kind, "name": s.name, "expires_at": _iso(s.expires_at)} for s in srcs]


def _held(permission: str, srcs: tuple[Source, ...]) -> dict[str, Any]:
    return {"permission": permission, "sources": _sources(srcs),
            "expires_at": _iso(expiry(srcs))}


def _int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(400, "bad_query", f"{name} must be a whole number from {lo} to {hi}, "
                       f"e.g. {name}={max(lo, 1)}; got {raw[:40]!r}")
    return int(raw)


def encode_cursor(user_id: str) -> str:
    return base64.urlsafe_b64encode(b"u:" + user_id.encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> str:
    try:
        got = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        got = ""
    if not got.startswith("u:") or len(got) < 3 or len(got) > 70:
        raise ApiError(400, "bad_cursor", "cursor is not one this API gave out: pass the "
                       "next_cursor of the previous page as it was, or leave it out for the "
                       "first page")
    return got[2:]


class DecisionApi:
    def __init__(self, db: Database, settings: Settings, clock: Clock, *,
                 index: IndexKeeper | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db, self.settings, self.clock = db, settings, clock
        self.cfg = settings.api
        # The index's catalog (the composition root hands over the one the chat uses);
        # alone (tests, benchmarks), one built from the settings.
        self.keeper = index or keeper(db, Catalog.from_settings(settings.catalog))
        self.catalog: Catalog = self.keeper.catalog
        self.monotonic = monotonic
        self._verified: dict[str, _Verified] = {}
        self._buckets: dict[int, Bucket] = {}
        self._failures: dict[str, Bucket] = {}       # wrong tokens, by peer address
        self.token_lookups = 0          # store reads for a token (cache misses)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- the web app ---------------------------------------------------------------------
    def routes(self) -> dict[str, Handler]:
        return {
            "/v1/check": self.check,
            "/v1/users/{user}/permissions": self.user_permissions,
            "/v1/permissions/{name}/holders": self.holders,
            "/v1/events": self.events,
            "/v1/openapi.json": self.openapi,
        }

    def web_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        for path, fn in self.routes().items():
            app.router.add_get(path, fn, allow_head=False)
        return app

    async def start(self) -> None:
        if self.cfg.port is None:
            return
        await self.keeper.sync()        # loaded before the first request, not by it
        self._runner = web.AppRunner(self.web_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.cfg.port
        log.info("decision API on http://%s:%d/v1", self.cfg.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return e.response()
        except web.HTTPException as e:
            if e.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed"}.get(e.status, "bad_request")
            return web.json_response(
                {"error": code, "message": f"{request.method} {request.path}: {e.reason}; "
                 "see /v1/openapi.json for what this API serves"}, status=e.status)

    # ---- every request: freshness, token, rate ------------------------------------------
    async def _enter(self, request: web.Request) -> tuple[TokenView, CorpIndex, int]:
        try:
            as_of = await self.keeper.sync()
        except Exception as e:
            log.warning("decision API: store unavailable: %r", e)
            err = ApiError(503, "unavailable", "the permission store does not answer; "
                           "retry shortly")
            err.headers["Retry-After"] = "1"
            raise err from e
        token = await self._authenticate(request)
        self._limit(token)
        at_least = _int(request, "at_least", None, 0, 2**62)
        if at_least is not None and as_of < at_least:
            as_of = await self._wait_for(at_least)
        return token, self.keeper.corp(token.corp_id), as_of

    async def _authenticate(self, request: web.Request) -> TokenView:
        header = request.headers.get("Authorization", "")
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            raise self._unauthorized("no token: send the header "
                                     "'Authorization: Bearer <token>' (baton token create)")
        if not well_formed(raw):
            raise self._unauthorized("the token is not valid")
        h = token_hash(raw)
        now = self.monotonic()
        hit = self._verified.get(h)
        epoch = self.keeper.token_epoch
        if hit is not None and hit.epoch >= epoch and \
                now - hit.at < self.cfg.token_cache.total_seconds():
            return hit.token
        self.token_lookups += 1
        async with self.db.uow() as uow:
            found = await uow.tokens.by_hash(h)
        if found is None or not found.active:
            self._verified.pop(h, None)
            # Guessing costs a store read each: a peer's failures share one bucket.
            self._limit_failures(request.remote or "?")
            raise self._unauthorized("the token is not valid (unknown or revoked)")
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[h] = _Verified(found, epoch, now)
        return found

    @staticmethod
    def _unauthorized(message: str) -> ApiError:
        err = ApiError(401, "unauthorized", message)
        err.headers["WWW-Authenticate"] = 'Bearer realm="baton"'
        return err

    def _limit_failures(self, peer: str) -> None:
        now = self.monotonic()
        b = self._failures.get(peer)
        if b is None:
            if len(self._failures) > 10_000:
                self._failures.clear()
            b = self._failures[peer] = Bucket(self.cfg.rate_per_second, self.cfg.burst, now)
        wait = b.take(now)
        if wait > 0:
            err = ApiError(429, "rate_limited", "too many requests with tokens that are not "
                           "valid; retry after the Retry-After seconds",
                           retry_after=round(wait, 3))
            err.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            raise err

    def _limit(self, token: TokenView) -> None:
        now = self.monotonic()
        b = self._buckets.get(token.id)
        if b is None:
            b = self._buckets[token.id] = Bucket(self.cfg.rate_per_second, self.cfg.burst, now)
        wait = b.take(now)
        if wait > 0:
            err = ApiError(429, "rate_limited", f"token {token.name!r} is over its rate "
                           f"({self.cfg.rate_per_second:g}/s, burst {self.cfg.burst}); retry "
                           "after the Retry-After seconds", retry_after=round(wait, 3))
            err.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            raise err

    async def _wait_for(self, at_least: int) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.max_wait.total_seconds()
        as_of = self.keeper.as_of
        while as_of < at_least:
            left = deadline - loop.time()
            if left <= 0:
                err = ApiError(503, "not_fresh", f"the index is at {as_of}, not yet at "
                               f"{at_least}: retry shortly (a sequence number from the future "
                               "never arrives)", as_of=as_of, at_least=at_least)
                err.headers["Retry-After"] = "1"
                raise err
            # A commit here wakes us at once; another replica's is seen by the next poll.
            await self.keeper.wait_moved(min(left, 0.05))
            as_of = await self.keeper.sync()
        return as_of

    # ---- endpoints -----------------------------------------------------------------------
    def _permission(self, name: str) -> str:
        if self.catalog.is_permission(name):
            return name
        hints = self.catalog.suggest(name, roles=False)
        what = "a role, not a permission: ask for one of its permissions" \
            if self.catalog.is_role(name) else "not a permission in the catalog"
        raise ApiError(400, "unknown_permission", f"{name[:80]!r} is {what}",
                       did_you_mean=hints)

    @staticmethod
    def _user(raw: str | None) -> str:
        if raw is None or not raw.strip():
            raise ApiError(400, "bad_query", "user is missing: pass the member's DingTalk "
                           "userId, e.g. ?user=zhaoliu&permission=crm.export")
        if len(raw) > 64:
            raise ApiError(400, "bad_query", "user is longer than a DingTalk userId can be "
                           "(64 characters)")
        return raw

    async def check(self, request: web.Request) -> web.Response:
        _token, corp, as_of = await self._enter(request)
        user = self._user(request.query.get("user"))
        perm = request.query.get("permission")
        if not perm:
            raise ApiError(400, "bad_query", "permission is missing, e.g. "
                           "?user=zhaoliu&permission=crm.export")
        perm = self._permission(perm)
        srcs = corp.check(user, perm, self.clock.now())
        return web.json_response({
            "user": user, "permission": perm, "allowed": bool(srcs),
            "sources": _sources(srcs), "expires_at": _iso(expiry(srcs)) if srcs else None,
            "as_of": as_of})

    async def user_permissions(self, request: web.Request) -> web.Response:
        _token, corp, as_of = await self._enter(request)
        user = self._user(request.match_info["user"])
        held = corp.sources(user, self.clock.now())
        return web.json_response({"user": user, "as_of": as_of,
                                  "permissions": [_held(p, s) for p, s in held.items()]})

    async def holders(self, request: web.Request) -> web.Response:
        _token, corp, as_of = await self._enter(request)
        perm = self._permission(request.match_info["name"])
        limit = _int(request, "limit", self.cfg.page_size, 1, MAX_LIMIT)
        assert limit is not None
        raw = request.query.get("cursor")
        after = decode_cursor(raw) if raw else None
        page, more = corp.holders_page(perm, self.clock.now(), after=after, limit=limit)
        body: dict[str, Any] = {
            "permission": perm, "as_of": as_of,
            "holders": [{"user": u, "sources": _sources(s), "expires_at": _iso(expiry(s))}
                        for u, s in page]}
        if more and page:
            body["next_cursor"] = encode_cursor(page[-1][0])
        return web.json_response(body)

    async def events(self, request: web.Request) -> web.Response:
        token, _corp, as_of = await self._enter(request)
        after = _int(request, "after", 0, 0, 2**62)
        limit = _int(request, "limit", self.cfg.page_size, 1, MAX_LIMIT)
        assert after is not None and limit is not None
        async with self.db.uow() as uow:
            oldest = await uow.feed.oldest()
            got = await uow.feed.after(after, limit)
        if oldest is not None and after + 1 < oldest:
            raise ApiError(410, "gone", f"events up to {oldest - 1} are past the audit "
                           f"retention: start from after={oldest - 1} (and reconcile with "
                           "/v1/users/<id>/permissions)", oldest=oldest)
        events = [e.as_json() for e in got if e.corp_id == token.corp_id]
        body: dict[str, Any] = {"events": events, "as_of": as_of,
                                "next_after": got[-1].seq if got else after}
        return web.json_response(body)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)


# ---- the description ---------------------------------------------------------------------

_ERR = {"$ref": "#/components/schemas/Error"}
_SOURCE = {"type": "object", "properties": {
    "kind": {"type": "string", "enum": ["level", "role", "grant", "template"]},
    "name": {"type": "string"},
    "expires_at": {"type": ["string", "null"], "format": "date-time"}}}
_AT_LEAST = {"name": "at_least", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0},
             "description": "wait (up to api.max_wait) for an answer at least this fresh "
                            "(an as_of seen before); 503 not_fresh if it does not come"}


def _responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": {
        "application/json": {"schema": ok}}}}
    words = {400: "bad query, unknown permission or bad cursor", 401: "no, wrong or revoked "
             "token", 410: "past the retention", 429: "over the token's rate (Retry-After)",
             503: "store unavailable, or at_least not reached in time (Retry-After)"}
    for c in (401, 429, 503, *codes):
        out[str(c)] = {"description": words[c], "content": {"application/json": {"schema": _ERR}}}
    return out


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Baton decision API", "version": "1",
             "description": "Who may do what, as Baton's ledger says, resolved as whoami "
                            "resolves it. Every answer carries as_of, the change-feed "
                            "sequence it reflects."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "message"], "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}}},
            "Source": _SOURCE,
        }},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/check": {"get": {
            "summary": "May this member use this permission now?",
            "parameters": [
                {"name": "user", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "permission", "in": "query", "required": True,
                 "schema": {"type": "string"}}, _AT_LEAST],
            "responses": _responses({"type": "object", "properties": {
                "user": {"type": "string"}, "permission": {"type": "string"},
                "allowed": {"type": "boolean"},
                "sources": {"type": "array", "items": _SOURCE},
                "expires_at": {"type": ["string", "null"], "format": "date-time"},
                "as_of": {"type": "integer"}}}, 400)}},
        "/v1/users/{user}/permissions": {"get": {
            "summary": "A member's effective permissions with sources and expiries",
            "parameters": [
                {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}},
                _AT_LEAST],
            "responses": _responses({"type": "object", "properties": {
                "user": {"type": "string"}, "as_of": {"type": "integer"},
                "permissions": {"type": "array", "items": {"type": "object", "properties": {
                    "permission": {"type": "string"},
                    "sources": {"type": "array", "items": _SOURCE},
                    "expires_at": {"type": ["string", "null"]}}}}}}, 400)}},
        "/v1/permissions/{name}/holders": {"get": {
            "summary": "Who holds a permission, by userId, a page at a time",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": MAX_LIMIT}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"},
                 "description": "next_cursor of the previous page"}, _AT_LEAST],
            "responses": _responses({"type": "object", "properties": {
                "permission": {"type": "string"}, "as_of": {"type": "integer"},
                "holders": {"type": "array", "items": {"type": "object", "properties": {
                    "user": {"type": "string"},
                    "sources": {"type": "array", "items": _SOURCE},
                    "expires_at": {"type": ["string", "null"]}}}},
                "next_cursor": {"type": "string", "description": "absent on the last page"}}},
                400)}},
        "/v1/events": {"get": {
            "summary": "The change feed, for consumers that poll",
            "parameters": [
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0},
                 "description": "the last seq you have (0: from the oldest kept)"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                            "maximum": MAX_LIMIT}}, _AT_LEAST],
            "responses": _responses({"type": "object", "properties": {
                "events": {"type": "array", "items": {"type": "object"}},
                "next_after": {"type": "integer"}, "as_of": {"type": "integer"}}}, 400, 410)}},
        "/v1/openapi.json": {"get": {
            "summary": "This description", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    },
}
