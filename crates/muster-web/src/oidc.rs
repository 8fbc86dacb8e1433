//! The company's identity provider, as Muster's console uses it (OpenID Connect, with the
//! `openidconnect` crate): its configuration, its discovery document and keys (cached, read again
//! when stale or when a token is signed with an unknown key), and the client built from them. The
//! sign-in handlers are `console::oidc`.

use std::time::{Duration, Instant};

use openidconnect::core::CoreClient;
use openidconnect::{ClientId, ClientSecret, IssuerUrl, ProviderMetadataWithLogout, RedirectUrl};

/// How long discovery (and its keys) is reused before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(300);

/// A client of the provider, with the endpoints discovery gives.
pub(crate) type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// How the console signs in with the identity provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL (its discovery document is at `/.well-known/openid-configuration`).
    pub issuer: String,
    /// Muster's client id at the provider.
    pub client_id: String,
    /// Its client secret, when the provider gave one.
    pub client_secret: Option<String>,
    /// Scopes to ask for (`openid` always).
    pub scopes: Vec<String>,
    /// The claim whose values map to roles (`groups`).
    pub role_claim: String,
    /// The provider's name on the sign-in button.
    pub label: String,
    /// Muster's public URL (the redirect URI is `{public_url}/console/oidc/callback`).
    pub public_url: String,
}

/// The identity provider, as the console uses it.
pub struct Oidc {
    pub(crate) config: OidcConfig,
    pub(crate) http: reqwest::Client,
    metadata: tokio::sync::RwLock<Option<(ProviderMetadataWithLogout, Instant)>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl Oidc {
    /// The provider; nothing is fetched until the first sign-in.
    pub fn new(config: OidcConfig) -> Result<Oidc, String> {
        IssuerUrl::new(config.issuer.clone()).map_err(|e| format!("oidc_issuer: {e}"))?;
        let http = reqwest::Client::builder()
            // Following redirects would let a discovery document send Muster anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(Oidc {
            config,
            http,
            metadata: tokio::sync::RwLock::new(None),
        })
    }

    /// The provider's name on the sign-in button.
    pub fn label(&self) -> &str {
        &self.config.label
    }

    fn redirect_uri(&self) -> String {
        format!("{}/console/oidc/callback", self.config.public_url)
    }

    /// Discovery and keys, read again after [`METADATA_TTL`] or when `fresh`.
    pub(crate) async fn metadata(&self, fresh: bool) -> Result<ProviderMetadataWithLogout, String> {
        if !fresh {
            if let Some((m, at)) = self.metadata.read().await.as_ref() {
                if at.elapsed() < METADATA_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| e.to_string())?;
        let m = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| format!("discovery at {}: {e}", self.config.issuer))?;
        *self.metadata.write().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    pub(crate) fn client(&self, m: ProviderMetadataWithLogout) -> Result<Client, String> {
        let redirect = RedirectUrl::new(self.redirect_uri()).map_err(|e| e.to_string())?;
        Ok(CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Where sign-out sends the browser: the provider's end-session endpoint, when it has one.
    pub async fn end_session_url(&self) -> Option<String> {
        let m = self.metadata(false).await.ok()?;
        let end = m.additional_metadata().end_session_endpoint.clone()?;
        let mut url = end.url().clone();
        url.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair(
                "post_logout_redirect_uri",
                &format!("{}/console/login", self.config.public_url),
            );
        Some(url.to_string())
    }
}
