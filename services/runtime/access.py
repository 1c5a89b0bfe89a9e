"""Who may call the HTTP APIs: bearer JWTs (HS256) carrying one role, checked by a FastAPI dependency.

Every route that is not ``/health`` declares the roles it admits with ``Depends(require(...))`` and gets
back the ``Caller``. The acting person recorded in events comes from the token's subject, never from a
request body, so nobody can act in someone else's name. A partner's token is bound to one organisation;
the routes compare it with the organisation that owns what is touched.

401 means "we do not know who you are" (no, expired, tampered or malformed token); 403 means "we know,
and you may not" (wrong role, another organisation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, get_args

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.runtime.settings import ServiceSettings

Role = Literal["caseworker", "approver", "auditor", "partner", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
ALGORITHM = "HS256"

_bearer = HTTPBearer(auto_error=False, description="A token from `python -m services.runtime.tokens`.")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated person or partner system behind a request."""

    subject: str
    role: Role
    organisation_id: str | None = None

    def speaks_for(self, organisation_id: str | None) -> bool:
        """Whether the caller may touch what belongs to ``organisation_id``: partners only their own."""
        return self.role != "partner" or (organisation_id is not None and organisation_id == self.organisation_id)

    def refuse_unless_speaks_for(self, organisation_id: str | None, what: str) -> None:
        """403 when a partner reaches for another organisation's ``what``."""
        if not self.speaks_for(organisation_id):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{what} belongs to another organisation; this token speaks for {self.organisation_id!r} only",
            )


@dataclass(frozen=True, slots=True)
class TokenAuthority:
    """Issues and verifies the centre's tokens with one shared secret, issuer and audience."""

    secret: str
    issuer: str
    audience: str

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TokenAuthority:
        return cls(settings.auth_secret.get_secret_value(), settings.auth_issuer, settings.auth_audience)

    def issue(self, subject: str, role: Role, *, organisation_id: str | None = None,
              lifetime: timedelta = timedelta(hours=1), now: datetime | None = None) -> str:
        """A signed token; a partner token must name its organisation, other roles must not."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        if (role == "partner") != (organisation_id is not None):
            raise ValueError("a partner token names exactly one organisation; other roles name none")
        issued_at = now or datetime.now(UTC)
        claims: dict[str, object] = {"sub": subject, "role": role, "iss": self.issuer, "aud": self.audience,
                                     "iat": issued_at, "exp": issued_at + lifetime}
        if organisation_id is not None:
            claims["org"] = organisation_id
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Caller:
        """The caller a token names; ``HTTPException(401)`` when it is expired, tampered or incomplete."""
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM], audience=self.audience,
                                issuer=self.issuer, options={"require": ["exp", "iat", "sub", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise _unauthenticated("the token has expired; ask for a new one") from None
        except jwt.InvalidSignatureError:
            raise _unauthenticated("the token's signature does not verify") from None
        except jwt.InvalidTokenError as problem:
            raise _unauthenticated(f"the token is not valid: {problem}") from None
        role = claims.get("role")
        if role not in ROLES:
            raise _unauthenticated(f"the token carries no known role (one of {', '.join(ROLES)})")
        organisation_id = claims.get("org")
        if role == "partner" and not isinstance(organisation_id, str):
            raise _unauthenticated("a partner token must name its organisation (claim 'org')")
        return Caller(subject=str(claims["sub"]), role=role,
                      organisation_id=organisation_id if role == "partner" else None)


def require(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """A FastAPI dependency admitting callers with one of ``roles`` (admin is always admitted)."""
    admitted = frozenset(roles) | {"admin"}

    async def authenticated_caller(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthenticated("this endpoint needs a bearer token (Authorization: Bearer <token>)")
        # Set by ``build_app`` from the service's settings, so every service verifies with the same rules.
        authority: TokenAuthority = request.app.state.token_authority
        caller = authority.verify(credentials.credentials)
        if caller.role not in admitted:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {caller.role!r} may not do this; it needs one of: {', '.join(sorted(admitted))}",
            )
        return caller

    return authenticated_caller


def _unauthenticated(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})
