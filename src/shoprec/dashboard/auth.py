"""Dashboard access: the admin key as X-API-Key (scripts), or a signed session cookie set by the login form.

The cookie holds `<expiry>.<nonce>.<signature>`: an HMAC-SHA256 over expiry and nonce with a key
derived from SHOPREC_SECRET_KEY and the admin key (so changing either ends every session); it never
holds the admin key. It is HttpOnly, SameSite=Strict, and Secure when the request came over https.
Sessions are stateless: logout removes the cookie from the browser, and a copied cookie stays valid
until its expiry (SESSION_TTL_S).

State-changing forms carry a CSRF token derived from the session token (HMAC again), checked on POST;
requests authenticated by the X-API-Key header need none (a browser cannot send that header cross-site).
Without either credential a browser (Accept: text/html) is redirected to the login page, anything else
gets 401. Login attempts are limited per client address (LOGIN_RATE), so the key cannot be guessed fast, and a
failed login counts toward the API's failed-authentication limit of that address (shoprec.api.auth.AuthFirst),
which also counts a wrong X-API-Key on any path: the login form and the header share one budget.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import HTTPException, Request, Response

from shoprec.service import Services
from shoprec.service.ratelimit import make_rate_limiter

COOKIE = "shoprec_dashboard"
SESSION_TTL_S = 8 * 3600
LOGIN_RATE = (10, 60.0)  # login attempts per client address per minute (shared by workers through Redis)
LOGIN_PATH = "/dashboard/login"


class LoginRequired(Exception):
    """A browser without a session: answered with a redirect to the login page (see install in routes)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfError(Exception):
    """A state-changing form without a valid CSRF token."""


@dataclass(frozen=True)
class Access:
    """How the caller got in: "cookie" (a browser session, with its CSRF token) or "header" (X-API-Key)."""

    via: str
    csrf: str = ""


class DashboardAuth:
    def __init__(self, services: Services) -> None:
        self.services = services
        admin = services.config.admin_key or ""
        material = f"shoprec-dashboard\0{services.settings.secret_key}\0{admin}".encode()
        self._key = hashlib.sha256(material).digest()
        self._logins = make_rate_limiter(LOGIN_RATE, services.cache)

    @property
    def enabled(self) -> bool:
        return bool(self.services.config.admin_key)

    # ---------------------------------------------------------------- tokens
    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def new_session(self, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + SESSION_TTL_S)
        body = f"{expiry}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign(body)}"

    def valid_session(self, token: str | None, now: float | None = None) -> bool:
        if not token or not self.enabled or len(token) > 200:
            return False
        body, _, signature = token.rpartition(".")
        expiry = body.split(".", 1)[0]
        if not expiry.isdigit() or not hmac.compare_digest(self._sign(body), signature):
            return False
        return int(expiry) > (time.time() if now is None else now)

    def csrf_token(self, session: str) -> str:
        return self._sign(f"csrf\0{session}")[:40]

    def login_wait(self, request: Request) -> float:
        """0.0 when this client may try to log in now, else the seconds until it may (guessing is slow)."""
        client = request.client.host if request.client is not None else "unknown"
        return self._logins.acquire(f"dashboard-login:{client}") if self._logins is not None else 0.0

    def is_admin_key(self, key: str | None) -> bool:
        """Whether `key` is the admin key (constant-time; no database read, so it is safe in async code)."""
        admin = self.services.config.admin_key
        return bool(key and admin) and hmac.compare_digest(str(key).encode(), str(admin).encode())

    # ---------------------------------------------------------------- requests
    def access(self, request: Request) -> Access:
        """Who is asking, or raise: 401 for a wrong header key or a non-browser, a login redirect for a browser."""
        key = request.headers.get("x-api-key")
        if key is not None:
            if self.is_admin_key(key):
                return Access("header")
            raise HTTPException(401, "the dashboard needs the admin key (header X-API-Key)")
        session = request.cookies.get(COOKIE)
        if self.valid_session(session):
            assert session is not None
            return Access("cookie", self.csrf_token(session))
        if "text/html" in request.headers.get("accept", ""):
            raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        raise HTTPException(401, "log in at /dashboard/login or send the admin key as X-API-Key")

    def check_csrf(self, access: Access, token: str | None) -> None:
        if access.via == "cookie" and not (token and hmac.compare_digest(token, access.csrf)):
            raise CsrfError("the form's CSRF token is missing or stale: reload the page and try again")

    def set_cookie(self, request: Request, response: Response, session: str) -> None:
        response.set_cookie(COOKIE, session, max_age=SESSION_TTL_S, path="/dashboard", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")

    @staticmethod
    def clear_cookie(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="strict")


def safe_next(value: str | None) -> str:
    """A post-login target inside the dashboard (never another site: no scheme, no '//' host)."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value \
            and all(32 <= ord(c) < 127 for c in value):
        return value
    return "/dashboard"


def login_url(next_path: str) -> str:
    return f"{LOGIN_PATH}?next={quote(safe_next(next_path), safe='')}"
