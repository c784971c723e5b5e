"""Authentication: every request carries X-API-Key. A platform key acts on its own platform only; the
admin key (SHOPREC_ADMIN_KEY) names the platform it acts on with X-Platform."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from shoprec.errors import DataError
from shoprec.service import Services
from shoprec.service.platform import Principal


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_principal(services: ServicesDep, x_api_key: Annotated[str | None, Header(max_length=512)] = None
                  ) -> Principal:
    principal = services.platforms.authenticate(x_api_key)
    if principal is None:
        raise HTTPException(401, "missing or unknown API key (header X-API-Key)")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_platform(services: ServicesDep, principal: PrincipalDep,
                 x_platform: Annotated[str | None, Header(max_length=128)] = None) -> str:
    """The platform this request acts on."""
    if principal.admin:
        if not x_platform:
            raise HTTPException(422, "the admin key must name a platform (header X-Platform)")
        try:
            services.platforms.platform_id(x_platform)
        except DataError:
            raise HTTPException(404, f"unknown platform {x_platform!r}") from None
        return x_platform
    if x_platform and x_platform != principal.platform:
        raise HTTPException(403, "this API key belongs to another platform")
    assert principal.platform is not None
    return principal.platform


def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.admin:
        raise HTTPException(403, "only the admin key may do this")
    return principal


PlatformDep = Annotated[str, Depends(get_platform)]
AdminDep = Annotated[Principal, Depends(require_admin)]
