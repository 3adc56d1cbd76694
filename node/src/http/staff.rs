//! The case-worker pages of a gateway under `/staff/` (SPEC.md §8.4): log in,
//! issue upload codes (shown once), manage operator accounts, read the audit
//! entries, log out. HTML without scripts; not in openapi.yaml (they are pages
//! for people, not an API).
//!
//! Every answer carries `Cache-Control: no-store` and a CSP that allows
//! nothing but forms posting back here. Every POST must come from this origin
//! (`Origin`, else `Referer`) and, once logged in, carry the session's CSRF
//! token. The session cookie is `HttpOnly; Secure; SameSite=Strict;
//! Path=/staff`, its id 256 random bits, its expiry kept on the server (30
//! minutes idle, on the node's clock). Logins are throttled per account name
//! and per client address ([`throttle`]); a wrong password, an unknown and a
//! disabled account get the same answer after the same Argon2id work. No
//! code, password or session id is ever logged or put in a URL.

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use traceless_protocol::log::{Event, OperatorRole};

use crate::http::api::blocking;
use crate::http::HttpState;
use crate::operators::issuance::{self, IssuanceError, MAX_CODES};
use crate::operators::session::{Session, IDLE_SECONDS};
use crate::operators::{
    audit_entries, parse_roles, password, roles_text, throttle, Account, Actor, OperatorError,
    Staff,
};

type Shared = State<Arc<HttpState>>;

/// The login route, the only one that sees the client's address.
pub const LOGIN_PATH: &str = "/staff/login";
/// The session cookie's name.
pub const COOKIE: &str = "traceless_staff";
/// The staff pages' Content-Security-Policy.
pub const CSP: &str =
    "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The client's address, as the HTTP server saw it: used only as a login
/// throttle key, in memory, never logged.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

/// The staff routes (merged into the node's router; gateways only answer).
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/staff/", get(home))
        .route(LOGIN_PATH, post(login))
        .route("/staff/issue", post(issue))
        .route("/staff/accounts", post(accounts))
        .route("/staff/audit", get(audit))
        .route("/staff/logout", post(logout))
}

/// A refusal: status, a machine word (`data-reason`) and a sentence.
#[derive(Debug)]
pub struct StaffError {
    status: StatusCode,
    reason: &'static str,
    message: String,
    retry_after: Option<u64>,
}

fn refuse(status: StatusCode, reason: &'static str, message: impl Into<String>) -> StaffError {
    StaffError {
        status,
        reason,
        message: message.into(),
        retry_after: None,
    }
}

impl From<OperatorError> for StaffError {
    fn from(e: OperatorError) -> Self {
        let (status, reason) = match &e {
            OperatorError::BadName(_)
            | OperatorError::UnknownRole(_)
            | OperatorError::WeakPassword => (StatusCode::BAD_REQUEST, "invalid"),
            OperatorError::Exists(_) => (StatusCode::CONFLICT, "exists"),
            OperatorError::NoSuchAccount(_) => (StatusCode::NOT_FOUND, "no-such-account"),
            OperatorError::NotPermitted(_) => (StatusCode::FORBIDDEN, "not-permitted"),
            OperatorError::Escalation(_) => (StatusCode::FORBIDDEN, "escalation"),
            OperatorError::LastManager => (StatusCode::CONFLICT, "last-manager"),
            OperatorError::Log(_) | OperatorError::Storage(_) => {
                tracing::error!("staff: {e}");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        refuse(status, reason, e.to_string())
    }
}

impl From<crate::http::api::ApiError> for StaffError {
    fn from(_: crate::http::api::ApiError) -> Self {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the node could not do this now",
        )
    }
}

impl IntoResponse for StaffError {
    fn into_response(self) -> Response {
        let body = format!(
            "<p id=\"error\" data-reason=\"{}\">{}</p>\n<p><a href=\"/staff/\">Back</a></p>",
            self.reason,
            esc(&self.message)
        );
        let mut r = page(self.status, "Refused", &body);
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        r
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An HTML page with the staff headers.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}: Traceless staff</title></head><body>\n<h1>{title}</h1>\n{body}\n</body></html>\n"
    );
    let mut r = (status, html).into_response();
    staff_headers(r.headers_mut());
    r
}

fn staff_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn staff(http: &HttpState) -> Result<Arc<Staff>, StaffError> {
    http.staff.clone().ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "not-a-gateway",
            "staff pages exist only on a health authority's gateway",
        )
    })
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The live session of the request and its account as stored now (a disabled
/// or changed account counts from the next request on).
fn session(
    http: &HttpState,
    staff: &Staff,
    headers: &HeaderMap,
) -> Result<(String, Session, Account), StaffError> {
    let not_in = || {
        refuse(
            StatusCode::UNAUTHORIZED,
            "not-logged-in",
            "not logged in, or the session ended (30 minutes without use)",
        )
    };
    let id = cookie(headers).ok_or_else(not_in)?;
    let s = staff
        .sessions
        .touch(&id, http.core.now())
        .ok_or_else(not_in)?;
    let account = staff
        .accounts
        .get(&s.account)?
        .filter(|a| !a.disabled)
        .ok_or_else(|| {
            staff.sessions.end(&id);
            not_in()
        })?;
    Ok((id, s, account))
}

/// Refuses a POST that does not come from this origin: `Origin` (or, without
/// it, `Referer`) must be `http(s)://<Host>`.
fn same_origin(headers: &HeaderMap) -> Result<(), StaffError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ours = |url: &str| {
        ["http://", "https://"].iter().any(|scheme| {
            url.strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix(host))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    };
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
    let ok = !host.is_empty()
        && match (origin, referer) {
            (Some(o), _) => ours(o),
            (None, Some(r)) => ours(r),
            (None, None) => false,
        };
    if ok {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::FORBIDDEN,
            "origin",
            "this form was not sent from this site",
        ))
    }
}

fn check_csrf(s: &Session, token: Option<&str>) -> Result<(), StaffError> {
    if token.is_some_and(|t| s.csrf_ok(t)) {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::FORBIDDEN,
            "csrf-token",
            "the form's security token is missing or wrong; reload the page",
        ))
    }
}

fn hidden_csrf(s: &Session) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", s.csrf)
}

fn login_form() -> String {
    "<form id=\"login\" method=\"post\" action=\"/staff/login\">\n<p><label>Account <input id=\"name\" name=\"name\" autocomplete=\"username\" required></label></p>\n<p><label>Password <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\n<p><button id=\"login-button\" type=\"submit\">Log in</button></p>\n</form>".to_owned()
}

/// `GET /staff/`: the login form, or what the logged-in operator may do.
pub async fn home(State(http): Shared, headers: HeaderMap) -> Result<Response, StaffError> {
    let staff = staff(&http)?;
    let Ok((_, s, account)) = session(&http, &staff, &headers) else {
        return Ok(page(StatusCode::OK, "Staff login", &login_form()));
    };
    let mut b = format!(
        "<p id=\"who\" data-account=\"{name}\" data-roles=\"{roles}\">Logged in as <strong>{name}</strong> ({roles}). Everything you do here is recorded, with your name, in this node's public record.</p>\n",
        name = esc(&account.name),
        roles = roles_text(&account.roles),
    );
    if account.may(OperatorRole::IssueCodes) {
        let _ = write!(
            b,
            "<h2>Issue upload codes</h2>\n<form id=\"issue\" method=\"post\" action=\"/staff/issue\">{}\n<p><label>How many (1 to {MAX_CODES}) <input id=\"count\" name=\"count\" type=\"number\" min=\"1\" max=\"{MAX_CODES}\" value=\"1\" required></label></p>\n<p><button id=\"issue-button\" type=\"submit\">Issue</button></p>\n</form>\n",
            hidden_csrf(&s)
        );
    }
    if account.may(OperatorRole::ManageOperators) {
        let _ = write!(
            b,
            "<h2>Operator accounts</h2>\n<form id=\"accounts\" method=\"post\" action=\"/staff/accounts\">{}\n<p><label>Action <select name=\"action\"><option value=\"create\">create</option><option value=\"set-roles\">set roles</option><option value=\"disable\">disable</option><option value=\"reset-password\">reset password</option></select></label></p>\n<p><label>Account <input name=\"name\" required></label></p>\n<p><label>Roles (comma-separated: issue-codes, manage-operators, read-audit) <input name=\"roles\"></label></p>\n<p><button type=\"submit\">Apply</button></p>\n</form>\n",
            hidden_csrf(&s)
        );
    }
    if account.may(OperatorRole::ReadAudit) {
        b.push_str("<p><a id=\"audit\" href=\"/staff/audit\">Audit entries (JSON)</a></p>\n");
    }
    let _ = write!(
        b,
        "<form id=\"logout\" method=\"post\" action=\"/staff/logout\">{}<button id=\"logout-button\" type=\"submit\">Log out</button></form>",
        hidden_csrf(&s)
    );
    Ok(page(StatusCode::OK, "Staff", &b))
}

/// The login form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
}

/// `POST /staff/login`.
pub async fn login(
    State(http): Shared,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, StaffError> {
    let staff = staff(&http)?;
    same_origin(&headers)?;
    let now = http.core.now();
    let mut keys = vec![format!("account {}", f.name)];
    if let Some(Extension(ClientAddr(ip))) = client {
        keys.push(format!("address {ip}"));
    }
    if let Err(wait) = staff.throttle.check(&keys, now) {
        return Err(StaffError {
            retry_after: Some(wait),
            ..refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                format!(
                    "too many failed logins; try again in {wait} seconds (after {} failures the wait doubles each time)",
                    throttle::FREE_FAILURES
                ),
            )
        });
    }
    let s = staff.clone();
    let account = blocking(move || {
        s.accounts
            .login(&f.name, &f.password)
            .map_err(|_| crate::http::api::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ""))
    })
    .await?;
    let Some(account) = account else {
        staff.throttle.failure(&keys, now);
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "login-failed",
            "wrong account name or password",
        ));
    };
    staff.throttle.success(&keys);
    let id = staff.sessions.create(&account.name, now);
    let mut r = StatusCode::SEE_OTHER.into_response();
    staff_headers(r.headers_mut());
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/staff/"));
    let c = format!(
        "{COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/staff; Max-Age={IDLE_SECONDS}"
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// The issue form's fields.
#[derive(Deserialize)]
pub struct IssueForm {
    csrf: Option<String>,
    count: usize,
}

/// `POST /staff/issue`: issues the codes and shows them, once.
pub async fn issue(
    State(http): Shared,
    headers: HeaderMap,
    Form(f): Form<IssueForm>,
) -> Result<Response, StaffError> {
    let staff = staff(&http)?;
    same_origin(&headers)?;
    let (_, s, account) = session(&http, &staff, &headers)?;
    check_csrf(&s, f.csrf.as_deref())?;
    let core = http.core.clone();
    let result = tokio::task::spawn_blocking(move || issuance::issue(&core, &account, f.count))
        .await
        .map_err(|_| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unavailable",
                "task failed",
            )
        })?;
    let codes = result.map_err(|e| match e {
        IssuanceError::NotPermitted => {
            refuse(StatusCode::FORBIDDEN, "not-permitted", e.to_string())
        }
        IssuanceError::Count(_) => refuse(StatusCode::BAD_REQUEST, "count", e.to_string()),
        IssuanceError::NotAGateway => refuse(StatusCode::NOT_FOUND, "not-a-gateway", e.to_string()),
        IssuanceError::Failed(e) => e.into(),
    })?;
    let mut b = format!(
        "<p>These {} codes are shown <strong>only now</strong>: this node keeps only salted hashes of them. Hand each to one person who tested positive; each works once, for 48 hours.</p>\n<ol id=\"codes\">\n",
        codes.len()
    );
    for c in &codes {
        let _ = writeln!(b, "<li class=\"code\"><code>{c}</code></li>");
    }
    b.push_str("</ol>\n<p><a id=\"back\" href=\"/staff/\">Back</a></p>");
    Ok(page(StatusCode::OK, "Codes issued", &b))
}

/// The account form's fields.
#[derive(Deserialize)]
pub struct AccountForm {
    csrf: Option<String>,
    action: String,
    name: String,
    #[serde(default)]
    roles: String,
}

/// `POST /staff/accounts`: create, set roles, disable, reset password (a new
/// password is generated and shown once).
pub async fn accounts(
    State(http): Shared,
    headers: HeaderMap,
    Form(f): Form<AccountForm>,
) -> Result<Response, StaffError> {
    let staff = staff(&http)?;
    same_origin(&headers)?;
    let (_, s, actor) = session(&http, &staff, &headers)?;
    check_csrf(&s, f.csrf.as_deref())?;
    let core = http.core.clone();
    let st = staff.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<String, OperatorError> {
        let a = &st.accounts;
        let (log, now, by) = (&core.log, core.now(), Actor::Operator(&actor));
        Ok(match f.action.as_str() {
            "create" => {
                let pw = password::generate();
                a.create(log, by, &f.name, parse_roles(&f.roles)?, &pw, now)?;
                format!("Account {} created; its one-time password: <code id=\"new-password\">{pw}</code>", esc(&f.name))
            }
            "set-roles" => {
                let acc = a.set_roles(log, by, &f.name, parse_roles(&f.roles)?, now)?;
                format!("Roles of {} are now: {}", esc(&acc.name), roles_text(&acc.roles))
            }
            "disable" => {
                a.disable(log, by, &f.name, now)?;
                st.sessions.end_all_of(&f.name);
                format!("Account {} disabled", esc(&f.name))
            }
            "reset-password" => {
                let pw = password::generate();
                a.reset_password(log, by, &f.name, &pw, now)?;
                st.sessions.end_all_of(&f.name);
                format!("New one-time password of {}: <code id=\"new-password\">{pw}</code>", esc(&f.name))
            }
            other => return Err(OperatorError::UnknownRole(format!("action {other}"))),
        })
    })
    .await
    .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "unavailable", "task failed"))??;
    Ok(page(
        StatusCode::OK,
        "Done",
        &format!("<p id=\"done\">{done}</p>\n<p><a href=\"/staff/\">Back</a></p>"),
    ))
}

/// `GET /staff/audit` (`read-audit`): account changes and issuance from the
/// log, as JSON.
pub async fn audit(State(http): Shared, headers: HeaderMap) -> Result<Response, StaffError> {
    let staff = staff(&http)?;
    let (_, _, account) = session(&http, &staff, &headers)?;
    if !account.may(OperatorRole::ReadAudit) {
        return Err(OperatorError::NotPermitted(OperatorRole::ReadAudit).into());
    }
    let core = http.core.clone();
    let entries = blocking(move || Ok(audit_entries(&core.log)?)).await?;
    let list: Vec<_> = entries
        .into_iter()
        .map(|(index, e)| {
            let text = String::from_utf8_lossy(&e.encode()).trim_end().to_owned();
            let kind = match e {
                Event::AccountChanged { .. } => "account",
                _ => "codes-issued",
            };
            serde_json::json!({ "index": index, "kind": kind, "entry": text })
        })
        .collect();
    let mut r = Json(serde_json::json!({ "entries": list })).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The logout form's fields.
#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

/// `POST /staff/logout`.
pub async fn logout(
    State(http): Shared,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Result<Response, StaffError> {
    let staff = staff(&http)?;
    same_origin(&headers)?;
    let (id, s, _) = session(&http, &staff, &headers)?;
    check_csrf(&s, f.csrf.as_deref())?;
    staff.sessions.end(&id);
    let mut r = page(
        StatusCode::OK,
        "Logged out",
        "<p id=\"logged-out\">You are logged out.</p>\n<p><a href=\"/staff/\">Log in again</a></p>",
    );
    let c = format!("{COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/staff; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}
