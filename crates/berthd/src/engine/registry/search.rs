//! `GET /images/search`: the registry v1 search API (`/v1/search`), asked
//! the way dockerd asks it.
//!
//! The term names its registry as a pull does (`host[:port]/name`, Docker
//! Hub's index otherwise). A registry other than Docker Hub is pinged first
//! (`/v1/_ping`, over https, then over http when it is insecure); its
//! answer is filtered here (`is-official`, `is-automated`, `stars`), since
//! the v1 API knows no filters.

use berth_api::filters::{FilterError, Filters};
use http::{header, Method, Request, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};

use super::auth::{AuthConfig, USER_AGENT};
use super::client::{self, read_body};
use super::endpoint::{Endpoint, DOCKER_HUB_DOMAIN};
use super::Registries;
use crate::engine::{EngineError, Result};

/// The limit when the request names none (dockerd's `DefaultSearchLimit`).
pub const DEFAULT_LIMIT: i64 = 25;
/// Docker Hub's v1 index: searched without a ping, never over http.
const HUB_INDEX_HOST: &str = "index.docker.io";
/// A search answer larger than this is refused.
const MAX_ANSWER: usize = 16 << 20;

/// One result, on the wire in dockerd's field order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default, deserialize_with = "null_default")]
    pub star_count: i64,
    #[serde(default, deserialize_with = "null_default")]
    pub is_official: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub is_automated: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub description: String,
}

/// Go decodes a JSON `null` as the zero value.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> std::result::Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The registry's answer; only `results` matters.
#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(default, deserialize_with = "null_default")]
    results: Vec<SearchResult>,
}

/// The search filters, checked before any registry is asked.
#[derive(Debug, Default, PartialEq, Eq)]
struct SearchFilters {
    automated: Option<bool>,
    official: Option<bool>,
    min_stars: Option<i64>,
}

/// dockerd 20.10 words a bad search filter `Invalid filter 'key=[values]'`.
fn bad_bool(f: &Filters, key: &str) -> EngineError {
    let vals: Vec<&str> = f.get(key).collect();
    EngineError::invalid(format!("Invalid filter '{key}=[{}]'", vals.join(" ")))
}

fn parse_bool(f: &Filters, key: &str) -> Result<Option<bool>> {
    if !f.contains(key) {
        return Ok(None);
    }
    let vals: Vec<&str> = f.get(key).collect();
    match vals.as_slice() {
        ["true"] => Ok(Some(true)),
        ["false"] => Ok(Some(false)),
        _ => Err(bad_bool(f, key)),
    }
}

fn parse_filters(raw: &str) -> Result<SearchFilters> {
    let f = Filters::parse(raw).map_err(|e| match e {
        // dockerd passes the JSON decoder's error on, untyped: a 500.
        FilterError::Malformed(m) => EngineError::internal(m),
        e => EngineError::invalid(e.to_string()),
    })?;
    f.validate(&["is-automated", "is-official", "stars"])
        .map_err(|e| match e {
            FilterError::UnknownKey(k) => EngineError::invalid(format!("Invalid filter '{k}'")),
            e => EngineError::invalid(e.to_string()),
        })?;
    let mut out = SearchFilters {
        automated: parse_bool(&f, "is-automated")?,
        official: parse_bool(&f, "is-official")?,
        min_stars: None,
    };
    if f.contains("stars") {
        let mut min = 0;
        for v in f.get("stars") {
            let n: i64 = v
                .parse()
                .map_err(|_| EngineError::invalid(format!("Invalid filter 'stars={v}'")))?;
            min = min.max(n);
        }
        out.min_stars = Some(min);
    }
    Ok(out)
}

impl SearchFilters {
    fn keep(&self, r: &SearchResult) -> bool {
        self.automated.is_none_or(|a| a == r.is_automated)
            && self.official.is_none_or(|o| o == r.is_official)
            && self.min_stars.is_none_or(|s| r.star_count >= s)
    }
}

/// `busybox` → (docker.io, busybox); `host:5000/a/b` → (host:5000, a/b).
/// As in dockerd, the first component names a registry only when it has
/// a `.` or a `:` or is `localhost`.
fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            let index = match first {
                HUB_INDEX_HOST | "registry-1.docker.io" => DOCKER_HUB_DOMAIN,
                f => f,
            };
            (index.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB_DOMAIN.to_string(), term.to_string()),
    }
}

/// Where the search goes: Docker Hub's index, or a registry that answered
/// its ping.
struct V1Endpoint {
    endpoint: Endpoint,
}

impl V1Endpoint {
    fn base(&self) -> String {
        self.endpoint.url("/v1/")
    }
}

impl Registries {
    /// Searches the registry the term names; `filters` is the request's
    /// raw `filters` parameter.
    pub async fn search(
        &self,
        term: &str,
        limit: i64,
        filters: &str,
        creds: &AuthConfig,
    ) -> Result<Vec<SearchResult>> {
        let filters = parse_filters(filters)?;
        if term.contains("://") {
            return Err(EngineError::internal(
                "Invalid repository name (ex: \"registry.domain.tld/myrepos\")",
            ));
        }
        let (index, mut remote) = split_term(term);
        if index.starts_with('-') || index.ends_with('-') {
            return Err(EngineError::internal(format!(
                "invalid index name ({index}). Cannot begin or end with a hyphen"
            )));
        }
        let ep = if index == DOCKER_HUB_DOMAIN {
            // Hub stores official images under `library/`, searched bare.
            if let Some(r) = remote.strip_prefix("library/") {
                remote = r.to_string();
            }
            V1Endpoint {
                endpoint: Endpoint {
                    scheme: "https",
                    host: HUB_INDEX_HOST.into(),
                    skip_verify: false,
                    mirror_rank: 1,
                    mirror: false,
                },
            }
        } else {
            self.v1_endpoint(&index).await?
        };
        // As in dockerd, the limit is checked once the registry answered.
        if !(1..=100).contains(&limit) {
            return Err(EngineError::invalid(format!(
                "Limit {limit} is outside the range of [1, 100]"
            )));
        }
        let results = self.search_at(&ep, &remote, limit, creds).await?;
        Ok(results.into_iter().filter(|r| filters.keep(r)).collect())
    }

    /// Pings `https://host/v1/_ping`, then (insecure registries only)
    /// `http://host/v1/_ping`; any HTTP answer will do.
    async fn v1_endpoint(&self, host: &str) -> Result<V1Endpoint> {
        let insecure = self.endpoints().is_insecure(host).await;
        let https = Endpoint {
            scheme: "https",
            host: host.to_string(),
            skip_verify: insecure,
            mirror_rank: 1,
            mirror: false,
        };
        let https_err = match self.ping_v1(&https).await {
            Ok(()) => return Ok(V1Endpoint { endpoint: https }),
            Err(e) => e,
        };
        if !insecure {
            return Err(EngineError::internal(format!(
                "invalid registry endpoint https://{host}/v1/: {https_err}. If this private registry supports only HTTP or HTTPS with an unknown CA certificate, please add `--insecure-registry {host}` to the daemon's arguments. In the case of HTTPS, if you have access to the registry's CA certificate, no need for the flag; simply place the CA certificate at /etc/docker/certs.d/{host}/ca.crt"
            )));
        }
        let http = Endpoint {
            scheme: "http",
            ..https
        };
        match self.ping_v1(&http).await {
            Ok(()) => Ok(V1Endpoint { endpoint: http }),
            Err(http_err) => Err(EngineError::internal(format!(
                "invalid registry endpoint \"http://{host}/v1/\". HTTPS attempt: {https_err}. HTTP attempt: {http_err}"
            ))),
        }
    }

    async fn ping_v1(&self, ep: &Endpoint) -> Result<()> {
        let t = self.transports.get(&ep.host, ep.skip_verify)?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(ep.url("/v1/_ping"))
            .header(header::USER_AGENT, USER_AGENT)
            .body(client::empty())
            .map_err(|e| EngineError::internal(format!("request: {e}")))?;
        let resp = t.send(req).await?;
        // Drain so the connection goes back to the pool.
        let _ = read_body(resp, 64 << 10).await;
        Ok(())
    }

    /// `GET /v1/search?q=…&n=…`. Credentials go as basic auth whenever a
    /// user name is known (dockerd's v1 transport with `X-Docker-Token`).
    async fn search_at(
        &self,
        ep: &V1Endpoint,
        remote: &str,
        limit: i64,
        creds: &AuthConfig,
    ) -> Result<Vec<SearchResult>> {
        let q: String = url::form_urlencoded::byte_serialize(remote.as_bytes()).collect();
        let url = format!("{}search?q={q}&n={limit}", ep.base());
        let mut b = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header(header::USER_AGENT, USER_AGENT)
            .header("X-Docker-Token", "true");
        if !creds.username.is_empty() {
            b = b.header(header::AUTHORIZATION, creds.basic_header());
        }
        let req = b
            .body(client::empty())
            .map_err(|e| EngineError::internal(format!("request: {e}")))?;
        let t = self
            .transports
            .get(&ep.endpoint.host, ep.endpoint.skip_verify)?;
        let resp = t.send(req).await.map_err(system)?;
        let status = resp.status();
        if status != StatusCode::OK {
            let _ = read_body(resp, 64 << 10).await;
            return Err(EngineError::internal(format!(
                "Unexpected status code {}",
                status.as_u16()
            )));
        }
        let body = read_body(resp, MAX_ANSWER).await?;
        let answer: SearchAnswer = serde_json::from_slice(&body).map_err(|e| {
            EngineError::internal(format!("error decoding registry search results: {e}"))
        })?;
        Ok(answer.results)
    }
}

/// A transport failure during the search is dockerd's `System` error: 500.
fn system(e: EngineError) -> EngineError {
    match e {
        EngineError::Unavailable(m) => EngineError::Internal(m),
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry() {
        assert_eq!(
            split_term("busybox"),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(
            split_term("library/busybox"),
            ("docker.io".into(), "library/busybox".into())
        );
        assert_eq!(
            split_term("127.0.0.1:5000/busy/box"),
            ("127.0.0.1:5000".into(), "busy/box".into())
        );
        assert_eq!(split_term("localhost/x"), ("localhost".into(), "x".into()));
        assert_eq!(
            split_term("index.docker.io/foo"),
            ("docker.io".into(), "foo".into())
        );
    }

    #[test]
    fn filters_read_and_apply_like_dockerd() {
        assert_eq!(parse_filters("").unwrap(), SearchFilters::default());
        let f =
            parse_filters(r#"{"is-official":{"true":true},"stars":{"2":true,"5":true}}"#).unwrap();
        assert_eq!(f.official, Some(true));
        assert_eq!(f.min_stars, Some(5));
        let r = |stars, official| SearchResult {
            star_count: stars,
            is_official: official,
            ..Default::default()
        };
        assert!(f.keep(&r(5, true)));
        assert!(!f.keep(&r(4, true)));
        assert!(!f.keep(&r(9, false)));
        let msg = |raw: &str| parse_filters(raw).unwrap_err().to_string();
        assert_eq!(msg(r#"{"foo":{"x":true}}"#), "Invalid filter 'foo'");
        assert_eq!(
            msg(r#"{"is-official":{"yes":true}}"#),
            "Invalid filter 'is-official=[yes]'"
        );
        assert_eq!(
            msg(r#"{"stars":{"abc":true}}"#),
            "Invalid filter 'stars=abc'"
        );
        assert!(matches!(
            parse_filters("notjson"),
            Err(EngineError::Internal(_))
        ));
    }

    #[test]
    fn results_decode_nulls_as_zero_and_encode_every_field() {
        let a: SearchAnswer = serde_json::from_str(
            r#"{"num_results":1,"query":"x","results":[{"name":"x","description":null,"star_count":3}]}"#,
        )
        .unwrap();
        assert_eq!(a.results[0].star_count, 3);
        assert_eq!(
            serde_json::to_string(&a.results[0]).unwrap(),
            r#"{"star_count":3,"is_official":false,"name":"x","is_automated":false,"description":""}"#
        );
    }
}
