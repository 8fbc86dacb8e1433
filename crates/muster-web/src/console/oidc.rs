//! Console sign-in with the company's identity provider: OpenID Connect authorization code flow
//! with PKCE (the `openidconnect` crate). `state` is bound to the browser (a cookie) and stored
//! server-side with the nonce and the PKCE verifier, taken once at the callback; the ID token's
//! signature and claims (issuer, audience, expiry, nonce) are checked against the issuer's
//! discovery document and keys. Keys are re-read when a token is signed with one Muster does not
//! know (the provider rotated them). The domain's half (who that is, which role) is
//! `muster_core::auth::oidc`.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use muster_core::auth::oidc::OidcIdentity;
use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{
    AuthorizationCode, CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier, Scope, TokenResponse,
};
use serde::Deserialize;

use super::shell::{error_page, redirect, session_cookie};
use crate::state::AppState;

/// The cookie that binds a sign-in's `state` to the browser that started it.
const STATE_COOKIE: &str = "muster_oidc";

fn refused(status: StatusCode, message: &str) -> Response {
    error_page(status, message)
}

fn unavailable(e: &str) -> Response {
    tracing::error!(error = %e, "console sign-in with the identity provider failed");
    refused(
        StatusCode::BAD_GATEWAY,
        "The identity provider could not be reached. Try again, or sign in with a break-glass account.",
    )
}

/// `GET /console/oidc/start`: sends the browser to the identity provider.
pub async fn start(State(state): State<AppState>) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return refused(
            StatusCode::NOT_FOUND,
            "Sign-in with an identity provider is not configured.",
        );
    };
    let env = match state.muster.find_environment(&state.environment).await {
        Ok(Some(env)) => env.id,
        _ => return refused(StatusCode::SERVICE_UNAVAILABLE, "The console is not ready."),
    };
    let m = match oidc.metadata(false).await {
        Ok(m) => m,
        Err(e) => return unavailable(&e),
    };
    let client = match oidc.client(m) {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in &oidc.config.scopes {
        request = request.add_scope(Scope::new(s.clone()));
    }
    let (url, csrf, nonce) = request.url();
    if let Err(e) = state
        .muster
        .oidc_begin(env, csrf.secret(), nonce.secret(), verifier.secret())
        .await
    {
        return unavailable(&e.to_string());
    }
    let mut resp = redirect(url.as_str());
    // Lax: the provider sends the browser back with a top-level GET from its own site.
    let cookie = format!(
        "{STATE_COOKIE}={}; Path=/console/oidc; HttpOnly; SameSite=Lax; Max-Age=600{}",
        csrf.secret(),
        if oidc.config.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// What the provider sends back.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn state_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == STATE_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The role claim's values in a verified ID token: a string or an array of strings. The
/// token's signature was checked before; this reads one more claim from its payload.
fn claim_values(id_token: &str, claim: &str) -> Vec<String> {
    let payload = id_token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or_default();
    match &payload[claim] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// `GET /console/oidc/callback`: checks what came back, and signs the administrator in.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return refused(
            StatusCode::NOT_FOUND,
            "Sign-in with an identity provider is not configured.",
        );
    };
    if let Some(err) = q.error {
        return refused(
            StatusCode::UNAUTHORIZED,
            &format!(
                "The identity provider did not sign you in: {err}{}",
                q.error_description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
        );
    }
    let start_again = "This sign-in is not valid: it did not start in this browser, was already used, or took too long. Start again from the sign-in page.";
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return refused(StatusCode::BAD_REQUEST, start_again);
    };
    let bound = state_cookie(&headers)
        .is_some_and(|c| muster_core::auth::secret::hashes_match(c.as_bytes(), st.as_bytes()));
    if !bound {
        return refused(StatusCode::BAD_REQUEST, start_again);
    }
    let (env, nonce, verifier) = match state.muster.oidc_take(&st).await {
        Ok(Some(taken)) => taken,
        Ok(None) => return refused(StatusCode::BAD_REQUEST, start_again),
        Err(e) => return unavailable(&e.to_string()),
    };
    let m = match oidc.metadata(false).await {
        Ok(m) => m,
        Err(e) => return unavailable(&e),
    };
    let client = match oidc.client(m) {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let exchange = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(x) => x,
        Err(e) => return unavailable(&e.to_string()),
    };
    let tokens = match exchange
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&oidc.http)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "the identity provider refused a code exchange");
            return refused(
                StatusCode::UNAUTHORIZED,
                "The identity provider did not accept this sign-in (its code may have been used already). Start again from the sign-in page.",
            );
        }
    };
    let Some(id_token) = tokens.id_token() else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "The identity provider sent no ID token.",
        );
    };
    let nonce = Nonce::new(nonce);
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.clone(),
        Err(first) => {
            // Perhaps the provider rotated its keys: read them again, and check once more.
            let again = match oidc.metadata(true).await.and_then(|m| oidc.client(m)) {
                Ok(c) => id_token.claims(&c.id_token_verifier(), &nonce).cloned(),
                Err(e) => return unavailable(&e),
            };
            match again {
                Ok(c) => c,
                Err(_) => {
                    tracing::warn!(error = %first, "an ID token did not verify");
                    return refused(
                        StatusCode::UNAUTHORIZED,
                        &format!(
                            "The ID token was refused: {first}. Start again from the sign-in page."
                        ),
                    );
                }
            }
        }
    };
    let subject = claims.subject().as_str().to_string();
    let email = claims.email().map(|e| e.as_str().to_string());
    let username = claims
        .preferred_username()
        .map(|u| u.as_str().to_string())
        .or_else(|| email.clone())
        .unwrap_or_else(|| subject.clone());
    let who = OidcIdentity {
        subject: format!("{}|{subject}", claims.issuer().as_str()),
        username,
        email,
        groups: claim_values(&id_token.to_string(), &oidc.config.role_claim),
    };
    match state.muster.oidc_sign_in(env, &who).await {
        Ok(Ok(signed)) => {
            let mut resp = redirect("/console");
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&session_cookie(&state, &signed.secret)) {
                h.append(header::SET_COOKIE, v);
            }
            h.append(
                header::SET_COOKIE,
                HeaderValue::from_static("muster_oidc=; Path=/console/oidc; HttpOnly; Max-Age=0"),
            );
            resp
        }
        Ok(Err(refusal)) => refused(StatusCode::FORBIDDEN, &refusal.message),
        Err(e) => unavailable(&e.to_string()),
    }
}
