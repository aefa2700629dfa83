"""The dashboard: server-rendered pages (Jinja) with htmx for actions and live updates and
Chart.js for charts, all served by the API (no Node build step, no CDN).

Why server-rendered: the pages call the same functions as the JSON routes
(`kestrel.api.findings`, `kestrel.api.entities`), so the dashboard cannot show something
the API would not. Login sets the token in an HttpOnly, SameSite=Strict cookie; state
changes need htmx's ``HX-Request`` header besides (see `kestrel.api.deps`). Agent tokens
cannot log in.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from kestrel.api import entities, findings, hunts, live, respond, rules
from kestrel.api.auth import Principal, Role
from kestrel.api.dashboard_data import overview_data
from kestrel.api.deps import COOKIE, STAFF, ApiState, FindingQuery, State, get_state
from kestrel.api.schemas import TRANSITIONS, Status, StatusUpdate
from kestrel.errors import PlaybookError
from kestrel.findings import Severity
from kestrel.web import STATIC, TEMPLATES

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES)
# A strict policy: scripts and styles from this server only (charts read their data from
# JSON script tags, not inline code).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


class LoginRequiredError(Exception):
    """No valid dashboard session: answered with a redirect to the login page."""


def viewer(request: Request, state: Annotated[ApiState, Depends(get_state)]) -> Principal:
    """The logged-in admin or analyst; redirects to /ui/login otherwise."""
    token = request.cookies.get(COOKIE)
    who = state.authenticate(token) if token else None
    if who is None or who.role not in STAFF:
        raise LoginRequiredError
    if request.method not in ("GET", "HEAD") and request.headers.get("hx-request") != "true":
        raise HTTPException(403, "state changes need the HX-Request header")
    return who


Viewer = Annotated[Principal, Depends(viewer)]


def page(request: Request, name: str, who: Principal | None, **context: Any) -> HTMLResponse:
    """Render a template with the common context; every page gets the CSP header."""
    response = templates.TemplateResponse(request, name, {"who": who, **context})
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/")
def root() -> RedirectResponse:
    """The dashboard lives under /ui/."""
    return RedirectResponse("/ui/", 303)


@router.get("/ui/login")
def login_form(request: Request, error: str = "") -> HTMLResponse:
    """The login page: paste an admin or analyst token."""
    return page(request, "login.html", None, error=error)


@router.post("/ui/login")
def login(request: Request, state: State, token: Annotated[str, Form()]) -> Response:
    """Check the token and keep it in an HttpOnly cookie; never echo it back."""
    who = state.authenticate(token.strip())
    if who is None or who.role is Role.AGENT:
        return page(request, "login.html", None, error="That token is not valid here.")
    response = RedirectResponse("/ui/", 303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                        secure=state.settings.secure_cookies, path="/")  # fmt: skip
    return response


@router.post("/ui/logout")
def logout() -> RedirectResponse:
    """Forget the session cookie."""
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/ui/")
def overview(request: Request, state: State, who: Viewer) -> HTMLResponse:
    """Findings by severity over time, top entities, technique heat map, pipeline health."""
    return page(request, "overview.html", who, **overview_data(state))


@router.get("/ui/findings")
def findings_page(
    request: Request, state: State, who: Viewer, severity: str = "", status: str = "",
    detector: str = "", technique: str = "",
) -> HTMLResponse:  # fmt: skip
    """The findings list; the filter form reloads only the table (htmx)."""
    query = FindingQuery(
        min_severity=Severity.parse(severity) if severity in _SEVERITIES else None,
        detector=detector or None,
        technique=technique or None,
    )
    wanted = Status(status) if status in {s.value for s in Status} else None
    result = findings.page(state, query, wanted, 500, 0)
    name = "_findings_table.html" if request.headers.get("hx-request") else "findings.html"
    return page(request, name, who, result=result, severity=severity, status=status,
                detector=detector, severities=_SEVERITIES, statuses=list(Status))  # fmt: skip


_SEVERITIES = ("info", "low", "medium", "high", "critical")


@router.get("/ui/findings/{finding_id}")
def finding_page(request: Request, finding_id: str, state: State, who: Viewer) -> HTMLResponse:
    """One finding: signals and the z-score chart, evidence, history, status actions."""
    found = findings.detail(state, finding_id)
    if found is None:
        raise HTTPException(404, f"no finding {finding_id}")
    return page(request, "finding.html", who, f=found, actions=_actions(found.status),
                chart=_signal_chart(found.signals))  # fmt: skip


def _actions(current: Status) -> list[str]:
    order = [Status.ACKNOWLEDGED, Status.RESOLVED, Status.FALSE_POSITIVE]
    return [s.value for s in order if s in TRANSITIONS[current]]


def _signal_chart(signals: list[Any]) -> dict[str, Any]:
    """Numeric signals against their thresholds (z-scores against the entity baseline)."""
    numeric = [s for s in signals if isinstance(s.value, int | float)]
    return {"labels": [s.name for s in numeric], "values": [s.value for s in numeric],
            "thresholds": [s.threshold for s in numeric]}  # fmt: skip


@router.post("/ui/findings/{finding_id}/status")
def finding_status(
    request: Request, finding_id: str, state: State, who: Viewer,
    status: Annotated[str, Form()], note: Annotated[str, Form()] = "",
) -> HTMLResponse:  # fmt: skip
    """A status button: change the status and answer the refreshed status panel."""
    if status not in {s.value for s in Status}:
        raise HTTPException(422, f"unknown status {status!r}")
    try:
        update = StatusUpdate(status=Status(status), note=note[:4000])
        findings.change_status(state, finding_id, update, who)
    except findings.WorkflowError as exc:
        raise HTTPException(409, str(exc)) from exc
    found = findings.detail(state, finding_id)
    if found is None:
        raise HTTPException(404, f"no finding {finding_id}")
    return page(request, "_status.html", who, f=found, actions=_actions(found.status))


@router.get("/ui/entities/{entity_type}/{entity_id}")
def entity_page(
    request: Request, entity_type: str, entity_id: str, state: State, who: Viewer
) -> HTMLResponse:
    """One entity: profile, baselines, timeline and findings."""
    found = entities.profile(state, entity_type, entity_id)
    if found is None:
        raise HTTPException(404, f"no entity {entity_type}:{entity_id}")
    points = entities.timeline(state, entity_type, entity_id, "hour")
    return page(request, "entity.html", who, e=found, timeline=_timeline_chart(points))


def _timeline_chart(points: list[Any]) -> dict[str, Any]:
    buckets = sorted({p.bucket.strftime("%Y-%m-%d %H:00") for p in points})
    series: dict[str, dict[str, int]] = {}
    for p in points:
        series.setdefault(p.event_class, {})[p.bucket.strftime("%Y-%m-%d %H:00")] = p.events
    return {"labels": buckets,
            "series": {c: [v.get(b, 0) for b in buckets] for c, v in series.items()}}  # fmt: skip


@router.get("/ui/live")
def live_page(request: Request, who: Viewer) -> HTMLResponse:
    """Pick a workload scenario and stream it through the detectors."""
    return page(request, "live.html", who, scenarios=live.scenarios())


@router.post("/ui/live")
def live_start(
    request: Request, state: State, who: Viewer, scenario: Annotated[str, Form()]
) -> HTMLResponse:
    """Start a run; the answer polls its own step route until the scenario ends."""
    if scenario not in live.scenarios():
        raise HTTPException(422, f"unknown scenario {scenario!r}")
    run = live.start(state, scenario)
    return page(request, "_live_step.html", who, run=run, new=[], baselines=[])


@router.post("/ui/live/{run_id}/step")
def live_step(request: Request, run_id: str, state: State, who: Viewer) -> HTMLResponse:
    """Stream the next two hours and answer the refreshed panel."""
    run = state.live_runs.get(run_id)
    if run is None:
        raise HTTPException(404, f"no live run {run_id}")
    new = live.advance(state, run, hours=2)
    return page(request, "_live_step.html", who, run=run, new=new,
                baselines=live.baselines(run))  # fmt: skip


_HUNT_ROWS = 200
_HUNT_EXAMPLE = "procs = GET process\nDISP procs ATTR name, pid, command_line LIMIT 20"


@router.get("/ui/hunt")
def hunt_page(request: Request, who: Viewer) -> HTMLResponse:
    """The hunt console: a text area, a run button and the tables the hunt displays."""
    return page(request, "hunt.html", who, text=_HUNT_EXAMPLE, max_rows=_HUNT_ROWS,
                displays=[], error=None, ran=False)  # fmt: skip


@router.post("/ui/hunt")
def hunt_run(
    request: Request, state: State, who: Viewer, text: Annotated[str, Form(max_length=100_000)]
) -> HTMLResponse:
    """Run the hunt (audited, like the JSON route) and answer the result panel; a hunt
    that cannot run is shown in the panel with its line and column (htmx does not swap a
    4xx answer, so the panel comes back 200)."""
    with state.lock:
        state.mgmt.audit(who.actor, "hunt.run", "store", {"text": text[:2000]})
    try:
        shown, error = hunts.run_hunt(state, text, _HUNT_ROWS), None
    except hunts.HuntRunError as exc:
        shown, error = [], exc
    return page(request, "_hunt_result.html", who, displays=shown, error=error, ran=True)


@router.get("/ui/playbooks")
def playbooks_page(request: Request, state: State, who: Viewer) -> HTMLResponse:
    """Playbooks, and runs newest first with an approve button (admins) on waiting ones."""
    try:
        books, error = respond.playbooks(state), ""
    except PlaybookError as exc:  # a bad file is shown, not a broken page
        books, error = [], str(exc)
    return page(request, "playbooks.html", who, playbooks=books, runs=respond.runs(state),
                error=error)  # fmt: skip


@router.post("/ui/runs/{run_id}/approve")
def approve_run(request: Request, run_id: str, state: State, who: Viewer) -> HTMLResponse:
    """The approve button (admins only, like the API): answer the refreshed run row."""
    if who.role is not Role.ADMIN:
        raise HTTPException(403, f"role {who.role} may not approve runs (admin may)")
    try:
        done = respond.approve(state, run_id, who)
    except respond.RunNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except respond.RunStateError as exc:
        raise HTTPException(409, str(exc)) from None
    return page(request, "_run_row.html", who, r=done)


@router.get("/ui/rules")
def rules_page(request: Request, state: State, who: Viewer) -> HTMLResponse:
    """The Sigma rule sets, with on / off buttons for admins."""
    return page(request, "rules.html", who, sets=rules.rule_sets(state))


@router.post("/ui/rules")
def rules_switch(
    request: Request, state: State, who: Viewer,
    path: Annotated[str, Form()], enabled: Annotated[str, Form()],
) -> HTMLResponse:  # fmt: skip
    """Switch one rule set (admins only, like ``PUT /api/v1/policies``): a policy change,
    audited with its old and new value; answers the refreshed row."""
    if who.role is not Role.ADMIN:
        raise HTTPException(403, f"role {who.role} may not switch rule sets (admin may)")
    if path not in rules.available(state):
        raise HTTPException(404, f"no rule set {path!r}")
    with state.lock:
        old = state.mgmt.policies().get(rules.POLICY)
        new = {**rules.switches(state), path: enabled == "true"}
        state.mgmt.set_policy(rules.POLICY, new, who.actor)
        state.mgmt.audit(who.actor, "policy.set", rules.POLICY, {"old": old, "new": new})
    row = next(r for r in rules.rule_sets(state) if r.path == path)
    return page(request, "_rule_row.html", who, r=row)


@router.get("/ui/audit")
def audit_page(request: Request, state: State, who: Viewer) -> HTMLResponse:
    """The newest 200 audit lines."""
    with state.lock:
        rows = state.mgmt.audit_log(200)
    return page(request, "audit.html", who, rows=rows)


def mount(app: FastAPI) -> None:
    """Add the dashboard routes, its static files and the login redirect to ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def to_login(request: Request, exc: Exception) -> Response:
        if request.headers.get("hx-request"):  # htmx follows HX-Redirect, not a 303
            return Response(status_code=401, headers={"HX-Redirect": "/ui/login"})
        return RedirectResponse("/ui/login", 303)

    app.add_exception_handler(LoginRequiredError, to_login)
