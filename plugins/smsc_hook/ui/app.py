"""The FastAPI app behind the "SMSC" nav entry: the page and its JSON, behind Airflow's auth.

Mounted by :class:`smsc_hook.airflow.plugin.SmscPlugin` at ``/smsc``. A sub-app mounted in
the api-server is not protected by it, so every route here resolves the user with the
api-server's own ``get_user`` (JWT from the ``Authorization`` header or the UI's ``_token``
cookie) and asks the configured auth manager:

* anonymous → 401 (JSON), or the HTML page redirects to Airflow's login and back;
* the user must be allowed to read the warehouse connection, because the page shows what
  that connection reads (per-login figures, the call ledger), and the DAG's runs and task
  instances of each account shown; otherwise 403. An account whose DAG the user may not
  read is left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from smsc_hook.airflow.settings import AccountConfig, PipelineSettings
from smsc_hook.client.exceptions import SmscConfigError
from smsc_hook.ui import queries, render, snapshot
from smsc_hook.ui.metadata import AirflowMetadata

URL_PREFIX = "/smsc"

_bearer = HTTPBearer(auto_error=False)


class Access:
    """Who asks and which accounts they may see."""

    def __init__(self, settings: PipelineSettings, accounts: list[AccountConfig]) -> None:
        self.settings = settings
        self.accounts = accounts


def pipeline_settings() -> PipelineSettings:
    try:
        return PipelineSettings.from_env()
    except SmscConfigError as exc:
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR, f"SMSC settings of the api-server: {exc}"
        ) from None


async def current_user(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Any:
    """The api-server's own user resolution (raises 401/403 like the REST API)."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, bearer)


def allowed_accounts(user: Any, settings: PipelineSettings) -> list[AccountConfig]:
    """The accounts ``user`` may see; 403 when none, or without the warehouse connection."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        ConnectionDetails,
        DagAccessEntity,
        DagDetails,
        PoolDetails,
    )

    manager = get_auth_manager()
    if not manager.is_authorized_connection(
        method="GET", details=ConnectionDetails(conn_id=settings.warehouse_conn_id), user=user
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"the SMSC page shows what connection {settings.warehouse_conn_id!r} reads:"
            " it needs read access to that connection",
        )
    accounts = [
        account
        for account in settings.all_accounts()
        if all(
            manager.is_authorized_dag(
                method="GET",
                access_entity=entity,
                details=DagDetails(id=account.dag_id, team_name=_team(account.dag_id)),
                user=user,
            )
            for entity in (DagAccessEntity.RUN, DagAccessEntity.TASK_INSTANCE)
        )
        and manager.is_authorized_pool(
            method="GET", details=PoolDetails(name=account.pool), user=user
        )
    ]
    if not accounts:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "no SMSC DAG whose runs, task instances and pool you may read",
        )
    return accounts


def _team(dag_id: str) -> str | None:
    from airflow.configuration import conf

    if not conf.getboolean("core", "multi_team", fallback=False):
        return None
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


def api_access(
    user: Annotated[Any, Depends(current_user)],
    settings: Annotated[PipelineSettings, Depends(pipeline_settings)],
) -> Access:
    # Sync, so FastAPI runs it in its thread pool: an auth manager may query a database.
    return Access(settings, allowed_accounts(user, settings))


async def optional_user(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Any | None:
    """The user, or None when the request carries no (or an expired) credential."""
    try:
        return await current_user(request, bearer)
    except HTTPException as exc:
        # 403 here is Airflow's "Invalid JWT token": a stale or foreign session cookie,
        # which for the page means "log in again", not a refusal.
        if exc.status_code not in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
            raise
        return None


def page_access(
    request: Request,
    user: Annotated[Any | None, Depends(optional_user)],
) -> Access | Response:
    """Like :func:`api_access`, but a browser without a session is sent to the login page
    (and back), and a refusal is a page, not JSON. The settings are read only after the
    user is known: an anonymous request learns nothing of them, not even an error."""
    if user is None:
        from airflow.api_fastapi.app import get_auth_manager

        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = get_auth_manager().get_url_login(next_url=back)
        return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)
    settings = pipeline_settings()
    try:
        return Access(settings, allowed_accounts(user, settings))
    except HTTPException as exc:
        return HTMLResponse(
            render.refusal_page(str(exc.detail)), status_code=exc.status_code, headers=_HEADERS
        )


def metadata_reader() -> AirflowMetadata:
    return AirflowMetadata()


Hours = Annotated[int, Query(ge=1, le=snapshot.MAX_HOURS)]


def create_app() -> FastAPI:
    """The app the plugin mounts (no docs: its JSON is described in the README)."""
    app = FastAPI(title="SMSC operations", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(
        request: Request,
        access: Annotated[Access | Response, Depends(page_access)],
        metadata: Annotated[AirflowMetadata, Depends(metadata_reader)],
        hours: Hours = snapshot.DEFAULT_HOURS,
    ) -> Response:
        if isinstance(access, Response):
            return access
        data = snapshot.collect(
            access.accounts, settings=access.settings, metadata=metadata, hours=hours
        )
        limit = access.settings.rate
        html = render.render_page(
            data,
            timezone=access.settings.timezone,
            limit={
                "calls": limit.calls,
                "window_s": limit.window.total_seconds(),
                "span_s": limit.span.total_seconds(),
            },
            base=str(request.scope.get("root_path", "")).rstrip("/"),
            ui=_ui_root(),
            generated=datetime.now(UTC),
        )
        return HTMLResponse(html, headers=_HEADERS)

    def panel(name: str) -> Any:
        def endpoint(
            access: Annotated[Access, Depends(api_access)],
            metadata: Annotated[AirflowMetadata, Depends(metadata_reader)],
            hours: Hours = snapshot.DEFAULT_HOURS,
        ) -> JSONResponse:
            data = snapshot.collect(
                access.accounts,
                settings=access.settings,
                metadata=metadata,
                panels=(name,),
                hours=hours,
            )
            return JSONResponse(queries.as_json(data), headers=_NO_STORE)

        endpoint.__name__ = f"{name}_json"
        return endpoint

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:
        # The nav button's icon: static, nothing to protect.
        return Response(
            ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
        )

    for name in snapshot.PANELS:
        app.add_api_route(f"/api/{name}", panel(name), methods=["GET"], include_in_schema=False)
    return app


_NO_STORE = {"Cache-Control": "no-store"}
#: The HTML runs no script at all, so the policy forbids any (an escaping slip could not
#: become an XSS); only Airflow's own UI may frame it.
_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
        " frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}
#: A speech bubble with a bar chart: SMS statistics.
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
    'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
    '<path d="M4 4h16v12H8l-4 4z"/><path d="M9 13v-3M12 13V7M15 13v-5"/></svg>'
)


def _ui_root() -> str:
    """Airflow UI's root path (``[api] base_url``'s path, ``/`` by default)."""
    from airflow.api_fastapi.app import API_ROOT_PATH

    return API_ROOT_PATH
