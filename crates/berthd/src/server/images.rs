//! Image routes: parse → engine → serialize. Archive work (import, load,
//! save) runs on blocking threads fed by, or feeding, the HTTP body.

use std::future::Future;
use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;

use berth_api::filters::Filters;
use berth_api::jsonmessage::JsonMessage;
use berth_api::models::{
    DistributionInspect, HistoryResponseItem, ImageDeleteResponseItem, ImagePruneResponse,
    ImageSummary,
};
use berth_api::shapes;
use berth_api::ApiVersion;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::error::ApiError;
use super::http::{
    full, ok_json, ok_shaped, status_only, stream, stream_fallible, ApiResult, ChannelWriter, Req,
};
use crate::engine::images::reference::{self, Reference};
use crate::engine::images::{DeleteOptions, ImageDetails, ImportOptions, ListOptions, SavePlan};
use crate::engine::registry::search::SearchResult;
use crate::engine::registry::{self, AuthConfig, Platform, Progress, PullRequest, PushRequest};
use crate::engine::{Engine, EngineError, Result};

/// A registry transfer the registry has accepted: run it with a progress
/// sink (errors after that travel in the stream).
pub type Transfer =
    Box<dyn FnOnce(Progress) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send>;

/// What the image routes ask of the engine (moby's `router/image` and
/// its `Backend`, with the distribution routes' registry calls).
pub trait Backend: Send + Sync + 'static {
    /// The images of a save, resolved and pinned before the first byte.
    type SavePlan: Send + 'static;
    fn list_images(&self, opts: &ListOptions) -> Result<Vec<ImageSummary>>;
    fn inspect_image(&self, name: &str) -> Result<ImageDetails>;
    fn image_history(&self, name: &str) -> Result<Vec<HistoryResponseItem>>;
    fn tag_image(&self, source: &str, repo: &str, tag: &str) -> Result<()>;
    fn delete_image(
        &self,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>>;
    fn prune_images(&self, filters: &Filters) -> Result<ImagePruneResponse>;
    /// Imports a root file system tar; the new image's ID.
    fn import_image(&self, reader: &mut dyn Read, opts: &ImportOptions) -> Result<String>;
    fn load_images(
        &self,
        reader: &mut dyn Read,
        quiet: bool,
        out: &mut dyn FnMut(JsonMessage),
    ) -> Result<()>;
    fn prepare_save(&self, names: &[String]) -> Result<Self::SavePlan>;
    fn write_save(&self, plan: &Self::SavePlan, w: &mut dyn Write) -> Result<()>;
    fn search_images(
        &self,
        term: &str,
        limit: i64,
        filters: &str,
        creds: &AuthConfig,
    ) -> impl Future<Output = Result<Vec<SearchResult>>> + Send;
    fn distribution_inspect(
        &self,
        r: Reference,
        creds: AuthConfig,
    ) -> impl Future<Output = Result<DistributionInspect>> + Send;
    /// A push: nothing is checked before the stream starts.
    fn push_image(&self, req: PushRequest) -> Transfer;
    /// A pull, once its first manifest is in hand (errors before that are
    /// plain HTTP errors).
    fn pull_image(&self, req: PullRequest) -> impl Future<Output = Result<Transfer>> + Send;
}

impl Backend for Engine {
    type SavePlan = SavePlan;
    fn list_images(&self, opts: &ListOptions) -> Result<Vec<ImageSummary>> {
        self.images.list(opts)
    }
    fn inspect_image(&self, name: &str) -> Result<ImageDetails> {
        self.images.inspect(name)
    }
    fn image_history(&self, name: &str) -> Result<Vec<HistoryResponseItem>> {
        self.images.history(name)
    }
    fn tag_image(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        self.images.tag(source, repo, tag)
    }
    fn delete_image(
        &self,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        self.images.delete(name, opts)
    }
    fn prune_images(&self, filters: &Filters) -> Result<ImagePruneResponse> {
        self.images.prune(filters)
    }
    fn import_image(&self, reader: &mut dyn Read, opts: &ImportOptions) -> Result<String> {
        Ok(self.images.import(reader, opts)?.id.clone())
    }
    fn load_images(
        &self,
        reader: &mut dyn Read,
        quiet: bool,
        out: &mut dyn FnMut(JsonMessage),
    ) -> Result<()> {
        self.images.load(reader, quiet, out).map(drop)
    }
    fn prepare_save(&self, names: &[String]) -> Result<Self::SavePlan> {
        self.images.prepare_save(names)
    }
    fn write_save(&self, plan: &Self::SavePlan, w: &mut dyn Write) -> Result<()> {
        self.images.write_save(plan, w).map(drop)
    }
    async fn search_images(
        &self,
        term: &str,
        limit: i64,
        filters: &str,
        creds: &AuthConfig,
    ) -> Result<Vec<SearchResult>> {
        self.registries.search(term, limit, filters, creds).await
    }
    async fn distribution_inspect(
        &self,
        r: Reference,
        creds: AuthConfig,
    ) -> Result<DistributionInspect> {
        self.registries.distribution_inspect(r, creds).await
    }
    fn push_image(&self, req: PushRequest) -> Transfer {
        let registries = self.registries.clone();
        Box::new(move |out| Box::pin(async move { registries.push(req, out).await }))
    }
    async fn pull_image(&self, req: PullRequest) -> Result<Transfer> {
        let prepared = self.registries.prepare_pull(req).await?;
        Ok(Box::new(move |out| Box::pin(prepared.run(out))))
    }
}

/// The image name from the path segments between `/images/` and the verb.
pub fn name_of(segs: &[&str]) -> String {
    // The router has decoded each segment already: decoding again would
    // turn `%252F` into `/`.
    segs.join("/")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::internal(format!("worker failed: {e}")))?
}

pub async fn list<B: Backend>(b: &B, req: Req) -> ApiResult {
    let opts = ListOptions {
        all: req.query.bool("all"),
        shared_size: req.query.bool("shared-size"),
        count_containers: false,
        filters: req.query.filters()?,
    };
    let mut out = b.list_images(&opts)?;
    untagged_placeholders(&mut out, req.version);
    if !req.version.at_least(1, 44) {
        for s in &mut out {
            s.virtual_size = Some(s.size);
        }
    }
    ok_shaped(&out, &shapes::IMAGE_LIST, req.version)
}

/// Below API 1.43 an image with neither tags nor digests is listed as
/// `<none>:<none>` / `<none>@<none>` (the docker CLI of that era printed
/// those); from 1.43 on both are `[]`.
pub fn untagged_placeholders(images: &mut [berth_api::models::ImageSummary], v: ApiVersion) {
    if v.at_least(1, 43) {
        return;
    }
    for i in images {
        if i.repo_tags.is_empty() && i.repo_digests.is_empty() {
            i.repo_tags = vec!["<none>:<none>".to_string()];
            i.repo_digests = vec!["<none>@<none>".to_string()];
        }
    }
}

pub async fn inspect<B: Backend>(b: &B, req: Req, name: &str) -> ApiResult {
    let mut v = b.inspect_image(name)?;
    if !req.version.at_least(1, 44) {
        v.inspect.virtual_size = v.inspect.size;
    }
    ok_shaped(&v, &shapes::IMAGE_INSPECT, req.version)
}

pub async fn history<B: Backend>(b: &B, req: Req, name: &str) -> ApiResult {
    ok_shaped(&b.image_history(name)?, &shapes::IMAGE_HISTORY, req.version)
}

pub async fn tag<B: Backend>(b: &B, req: Req, name: &str) -> ApiResult {
    let repo = req.query.get("repo").unwrap_or("");
    let tag = req.query.get("tag").unwrap_or("");
    b.tag_image(name, repo, tag)?;
    status_only(StatusCode::CREATED)
}

pub async fn delete<B: Backend>(b: Arc<B>, req: Req, name: &str) -> ApiResult {
    let opts = DeleteOptions {
        force: req.query.bool("force"),
        noprune: req.query.bool("noprune"),
    };
    let name = name.to_string();
    let out = blocking(move || b.delete_image(&name, &opts)).await?;
    ok_json(&out)
}

pub async fn prune<B: Backend>(b: Arc<B>, req: Req) -> ApiResult {
    let filters = req.query.filters()?;
    let out = blocking(move || b.prune_images(&filters)).await?;
    ok_shaped(&out, &shapes::IMAGE_PRUNE, req.version)
}

/// `GET /images/search?term=…&limit=…&filters=…`: the registry's v1
/// search, filtered by the daemon.
pub async fn search<B: Backend>(b: &B, req: Req) -> ApiResult {
    let term = req.query.get("term").unwrap_or("");
    let limit = match req.query.get("limit").filter(|l| !l.is_empty()) {
        None => registry::search::DEFAULT_LIMIT,
        // dockerd hands Go's untyped `strconv.Atoi` error on: a 500.
        Some(l) => l.parse().map_err(|_| {
            EngineError::internal(format!("strconv.Atoi: parsing {l:?}: invalid syntax"))
        })?,
    };
    let filters = req.query.get("filters").unwrap_or("");
    // For a search, undecodable credentials mean anonymous (as dockerd).
    let creds = registry_auth(&req).unwrap_or_default();
    ok_json(&b.search_images(term, limit, filters, &creds).await?)
}

/// The credentials of `X-Registry-Auth` (anonymous when absent).
fn registry_auth(req: &Req) -> Result<AuthConfig> {
    AuthConfig::from_header(
        req.headers
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    )
}

/// `GET /distribution/{name}/json`: the registry's descriptor and platforms
/// for a reference (tag `latest` when none), with the caller's credentials.
pub async fn distribution<B: Backend>(b: &B, req: Req, name: &str) -> ApiResult {
    let r = Reference::parse(name)?;
    let creds = registry_auth(&req)?;
    ok_json(&b.distribution_inspect(r, creds).await?)
}

/// `POST /images/{name}/push?tag=…`: a progress stream; every failure,
/// including "no such image", travels in `errorDetail` (as in moby, the
/// first line is already out by then).
pub async fn push<B: Backend>(b: &B, req: Req, name: &str) -> ApiResult {
    let mut r = Reference::parse(name)?;
    if let Some(tag) = req.query.get("tag").filter(|t| !t.is_empty()) {
        if !reference::valid_tag(tag) {
            return Err(ApiError::bad_request(format!(
                "invalid tag format: {tag:?}"
            )));
        }
        r.tag = Some(tag.to_string());
    }
    if r.digest.is_some() {
        return Err(ApiError::bad_request("cannot push a digest reference"));
    }
    let creds = registry_auth(&req)?;
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    let transfer = b.push_image(PushRequest {
        reference: r,
        creds,
    });
    tokio::spawn(async move {
        let out = Progress(tx);
        if let Err(e) = transfer(out.clone()).await {
            out.send(JsonMessage::error(e.to_string(), None)).await;
        }
    });
    Ok(resp)
}

/// `fromImage` (+ `tag`, which may be a digest): a pull. Errors before the
/// first manifest is in hand are plain HTTP errors; later ones travel in
/// `errorDetail`.
async fn pull<B: Backend>(b: &B, req: &Req, image: &str) -> ApiResult {
    let q = &req.query;
    let mut r = Reference::parse(image)?;
    if let Some(tag) = q.get("tag").filter(|t| !t.is_empty()) {
        if tag.contains(':') && reference::validate_digest(tag).is_ok() {
            r.tag = None;
            r.digest = Some(tag.to_string());
        } else if reference::valid_tag(tag) {
            r.tag = Some(tag.to_string());
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid tag format: {tag:?}"
            )));
        }
    }
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(Platform::parse(p)?),
        None => None,
    };
    let creds = registry_auth(req)?;
    let transfer = b
        .pull_image(PullRequest {
            reference: r,
            platform,
            creds,
        })
        .await?;
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    tokio::spawn(async move {
        let out = Progress(tx);
        if let Err(e) = transfer(out.clone()).await {
            out.send(JsonMessage::error(e.to_string(), None)).await;
        }
    });
    Ok(resp)
}

fn json_line_response(msg: &JsonMessage) -> ApiResult {
    let mut r = Response::new(full(msg.to_line()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `POST /images/create`: `fromImage` pulls from a registry; `fromSrc=-`
/// imports the body.
pub async fn create<B: Backend>(b: Arc<B>, mut req: Req) -> ApiResult {
    let q = req.query.clone();
    if let Some(image) = q.get("fromImage").filter(|s| !s.is_empty()) {
        return pull(&*b, &req, image).await;
    }
    let src = q.get("fromSrc").unwrap_or("");
    if src.is_empty() {
        return Err(ApiError::bad_request(
            "either fromSrc or fromImage must be given",
        ));
    }
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from {src:?} is not supported: send the archive as the request body (fromSrc=-)"
        )));
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        if !p.starts_with("linux") {
            return Err(ApiError::bad_request(format!("unsupported platform {p:?}")));
        }
    }
    let repo = q.get("repo").unwrap_or("");
    let tag = if repo.is_empty() {
        None
    } else {
        let r = Reference::parse_repo_tag(repo, q.get("tag").unwrap_or(""))?;
        if r.digest.is_some() {
            return Err(ApiError::bad_request("cannot import digest reference"));
        }
        Some(r)
    };
    let opts = ImportOptions {
        tag,
        changes: q.all("changes").to_vec(),
        message: q.get("message").unwrap_or("").to_string(),
        source: src.to_string(),
    };
    // An import refused early (a bad --change) still reads the upload, so
    // the client sees the error rather than a broken pipe.
    let mut reader = req.body_reader_draining(1 << 32);
    // Nothing is written before the import finishes, so a failure is a
    // proper status (400 for a bad or unsafe archive), as in Docker.
    let id = blocking(move || {
        let r = b.import_image(&mut reader, &opts);
        if r.is_err() {
            // Read the rest: answering while the client still uploads
            // would show it a broken pipe instead of the error.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
        r
    })
    .await?;
    json_line_response(&JsonMessage::status(id))
}

/// `POST /images/load`: a progress stream; errors after the 200 travel in
/// `errorDetail`, the only place the CLI looks.
pub async fn load<B: Backend>(b: Arc<B>, mut req: Req) -> ApiResult {
    // dockerd's default when the parameter is absent: no per-layer progress.
    let quiet = req.query.bool_or("quiet", true);
    let mut reader = req.body_reader();
    let (tx, resp) = stream(StatusCode::OK, "application/json");
    tokio::task::spawn_blocking(move || {
        let send = |m: JsonMessage| {
            let _ = tx.blocking_send(Bytes::from(m.to_line()));
        };
        let mut out = send;
        if let Err(e) = b.load_images(&mut reader, quiet, &mut out) {
            // Read the rest so the client, still uploading, sees the answer.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            out(JsonMessage::error(e.to_string(), None));
        }
    });
    Ok(resp)
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`.
pub async fn save<B: Backend>(b: Arc<B>, req: Req, one: Option<&str>) -> ApiResult {
    let names: Vec<String> = match one {
        Some(n) => vec![n.to_string()],
        None => req.query.all("names").to_vec(),
    };
    let plan = b.prepare_save(&names)?;
    let (tx, resp) = stream_fallible(StatusCode::OK, "application/x-tar");
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx);
        match b.write_save(&plan, &mut w) {
            Ok(()) => {
                let _ = w.flush();
            }
            Err(e) => {
                tracing::warn!(error = %e, "save stopped");
                w.fail(std::io::Error::other(e.to_string()));
            }
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use berth_api::models::ImageSummary;
    use http::Method;
    use serde_json::{json, Value};

    use super::*;
    use crate::server::testing::{answer, get, json, lines, req, with_body, Asked};

    /// A backend that records what it was asked and answers as the engine
    /// would.
    #[derive(Default)]
    struct Fake {
        asked: Asked,
    }

    fn summary(id: &str, tags: &[&str], labels: &[(&str, &str)]) -> ImageSummary {
        ImageSummary {
            id: id.into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
            containers: -1,
            size: 42,
            ..Default::default()
        }
    }

    impl Backend for Fake {
        type SavePlan = Vec<String>;
        fn list_images(&self, o: &ListOptions) -> Result<Vec<ImageSummary>> {
            self.asked.note(format!(
                "list all={} shared={} count={}",
                o.all, o.shared_size, o.count_containers
            ));
            Ok(vec![
                summary("sha256:aa", &["x:latest"], &[]),
                summary("sha256:bb", &[], &[("k", "v")]),
            ])
        }
        fn inspect_image(&self, name: &str) -> Result<ImageDetails> {
            Err(reference::no_such_image(name))
        }
        fn image_history(&self, _: &str) -> Result<Vec<HistoryResponseItem>> {
            Ok(vec![HistoryResponseItem {
                id: "<missing>".into(),
                ..Default::default()
            }])
        }
        fn tag_image(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
            self.asked.note(format!("tag {source} {repo} {tag}"));
            Ok(())
        }
        fn delete_image(
            &self,
            name: &str,
            o: &DeleteOptions,
        ) -> Result<Vec<ImageDeleteResponseItem>> {
            self.asked.note(format!(
                "delete {name} force={} noprune={}",
                o.force, o.noprune
            ));
            Ok(vec![
                ImageDeleteResponseItem {
                    untagged: Some(format!("{name}:latest")),
                    deleted: None,
                },
                ImageDeleteResponseItem {
                    untagged: None,
                    deleted: Some("sha256:aa".into()),
                },
            ])
        }
        fn prune_images(&self, f: &Filters) -> Result<ImagePruneResponse> {
            self.asked
                .note(format!("prune dangling={:?}", f.get_bool("dangling")));
            Ok(ImagePruneResponse::default())
        }
        fn import_image(&self, reader: &mut dyn Read, o: &ImportOptions) -> Result<String> {
            let mut body = String::new();
            reader.read_to_string(&mut body).unwrap();
            let tag = o.tag.as_ref().map(|r| r.familiar());
            self.asked.note(format!(
                "import {body:?} tag={tag:?} changes={:?}",
                o.changes
            ));
            Ok("sha256:cc".into())
        }
        fn load_images(
            &self,
            _: &mut dyn Read,
            quiet: bool,
            out: &mut dyn FnMut(JsonMessage),
        ) -> Result<()> {
            out(JsonMessage::stream(format!(
                "Loaded image: x:latest (quiet={quiet})\n"
            )));
            Err(EngineError::invalid("unexpected EOF"))
        }
        fn prepare_save(&self, names: &[String]) -> Result<Vec<String>> {
            match names.iter().find(|n| n.starts_with("missing")) {
                Some(n) => Err(reference::no_such_image(n)),
                None => Ok(names.to_vec()),
            }
        }
        fn write_save(&self, plan: &Vec<String>, w: &mut dyn Write) -> Result<()> {
            w.write_all(plan.join(",").as_bytes())?;
            Ok(())
        }
        async fn search_images(
            &self,
            term: &str,
            limit: i64,
            _: &str,
            _: &AuthConfig,
        ) -> Result<Vec<SearchResult>> {
            self.asked.note(format!("search {term} limit={limit}"));
            Ok(vec![])
        }
        async fn distribution_inspect(
            &self,
            r: Reference,
            _: AuthConfig,
        ) -> Result<DistributionInspect> {
            Err(EngineError::not_found(format!(
                "{} not found",
                r.familiar()
            )))
        }
        fn push_image(&self, req: PushRequest) -> Transfer {
            let name = req.reference.familiar();
            Box::new(move |out| {
                Box::pin(async move {
                    out.send(JsonMessage::status(format!(
                        "The push refers to repository [{name}]"
                    )))
                    .await;
                    Err(EngineError::not_found(format!("No such image: {name}")))
                })
            })
        }
        async fn pull_image(&self, req: PullRequest) -> Result<Transfer> {
            let name = req.reference.familiar();
            if name.starts_with("missing") {
                return Err(EngineError::not_found(format!(
                    "pull access denied for {name}, repository does not exist or may require 'docker login'"
                )));
            }
            Ok(Box::new(move |out| {
                Box::pin(async move {
                    out.send(JsonMessage::status(format!("Pulling from {name}")))
                        .await;
                    Ok(())
                })
            }))
        }
    }

    #[tokio::test]
    async fn list_writes_empty_labels_as_null_and_containers_as_minus_one() {
        let b = Fake::default();
        let (status, v) = json(list(&b, get("all=1")).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v[0]["Labels"], Value::Null, "{v}");
        assert_eq!(v[1]["Labels"], json!({"k": "v"}));
        assert_eq!(v[0]["Containers"], -1);
        assert_eq!(v[1]["RepoTags"], json!([]));
        assert_eq!(v[1]["RepoDigests"], json!([]));
        assert!(v[0].get("VirtualSize").is_none(), "{v}");
        assert_eq!(b.asked.all(), ["list all=true shared=false count=false"]);
    }

    #[tokio::test]
    async fn old_clients_get_virtual_size_and_none_placeholders() {
        let b = Fake::default();
        let r = req(Method::GET, "", ApiVersion::new(1, 41));
        let (_, v) = json(list(&b, r).await).await;
        assert_eq!(v[0]["VirtualSize"], 42);
        assert_eq!(v[0]["RepoTags"], json!(["x:latest"]));
        assert_eq!(v[1]["RepoTags"], json!(["<none>:<none>"]));
        assert_eq!(v[1]["RepoDigests"], json!(["<none>@<none>"]));
    }

    #[tokio::test]
    async fn a_missing_image_is_a_404_with_docker_s_message() {
        let (status, v) = json(inspect(&Fake::default(), get(""), "x").await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v, json!({"message": "No such image: x:latest"}));
        let (_, v) = json(history(&Fake::default(), get(""), "x").await).await;
        assert_eq!(v[0]["Tags"], Value::Null, "{v}");
        assert_eq!(v[0]["Id"], "<missing>");
    }

    #[tokio::test]
    async fn rmi_answers_untagged_and_deleted_items() {
        let b = Arc::new(Fake::default());
        let (status, v) = json(delete(b.clone(), get("force=1"), "x").await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v,
            json!([{"Untagged": "x:latest"}, {"Deleted": "sha256:aa"}])
        );
        let (_, v) = json(prune(b.clone(), get(r#"filters={"dangling":["false"]}"#)).await).await;
        assert_eq!(v, json!({"ImagesDeleted": null, "SpaceReclaimed": 0}));
        let (status, _, body) = answer(tag(&*b, get("repo=y&tag=1"), "x").await).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(body.is_empty());
        assert_eq!(
            b.asked.all(),
            [
                "delete x force=true noprune=false",
                "prune dangling=Ok(Some(false))",
                "tag x y 1"
            ]
        );
    }

    #[tokio::test]
    async fn import_reads_the_body_and_answers_one_status_line() {
        let b = Arc::new(Fake::default());
        let r = with_body(
            req(
                Method::POST,
                "fromSrc=-&repo=y&tag=2&changes=CMD%20sh",
                ApiVersion::new(1, 50),
            ),
            "tar",
        );
        let (status, v) = json(create(b.clone(), r).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, json!({"status": "sha256:cc"}));
        assert_eq!(
            b.asked.all(),
            [r#"import "tar" tag=Some("y:2") changes=["CMD sh"]"#]
        );
        let r = req(Method::POST, "", ApiVersion::new(1, 50));
        let (status, v) = json(create(b.clone(), r).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["message"], "either fromSrc or fromImage must be given");
    }

    #[tokio::test]
    async fn pull_fails_plainly_before_the_stream_and_push_in_it() {
        let b = Arc::new(Fake::default());
        let r = req(Method::POST, "fromImage=missing", ApiVersion::new(1, 50));
        let (status, v) = json(create(b.clone(), r).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("pull access denied for missing"));
        let r = req(Method::POST, "fromImage=y&tag=3", ApiVersion::new(1, 50));
        let (status, v) = lines(create(b.clone(), r).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, [json!({"status": "Pulling from y:3"})]);
        let r = req(Method::POST, "tag=bad%20tag", ApiVersion::new(1, 50));
        let (status, v) = json(push(&*b, r, "y").await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(v["message"], r#"invalid tag format: "bad tag""#);
        let r = req(Method::POST, "", ApiVersion::new(1, 50));
        let (status, v) = lines(push(&*b, r, "y").await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v[0]["status"], "The push refers to repository [y]");
        assert_eq!(v[1]["errorDetail"]["message"], "No such image: y");
        assert_eq!(v.len(), 2);
    }

    #[tokio::test]
    async fn load_reports_a_late_failure_in_error_detail() {
        let b = Arc::new(Fake::default());
        let r = req(Method::POST, "", ApiVersion::new(1, 50));
        let (status, v) = lines(load(b, r).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v[0]["stream"], "Loaded image: x:latest (quiet=true)\n");
        assert_eq!(v[1]["error"], "unexpected EOF");
        assert_eq!(v[1]["errorDetail"]["message"], "unexpected EOF");
    }

    #[tokio::test]
    async fn save_streams_a_tar_and_fails_early_for_a_missing_name() {
        let b = Arc::new(Fake::default());
        let (status, h, body) = answer(save(b.clone(), get("names=a&names=b"), None).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/x-tar");
        assert_eq!(&body[..], b"a,b");
        let (status, v) = json(save(b, get(""), Some("missing")).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["message"], "No such image: missing:latest");
    }

    #[tokio::test]
    async fn search_limit_errors_as_go_does() {
        let b = Fake::default();
        let (status, v) = json(search(&b, get("term=x&limit=ten")).await).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            v["message"],
            r#"strconv.Atoi: parsing "ten": invalid syntax"#
        );
        let (status, v) = json(search(&b, get("term=x")).await).await;
        assert_eq!((status, v), (StatusCode::OK, json!([])));
        assert_eq!(
            b.asked.all(),
            [format!(
                "search x limit={}",
                registry::search::DEFAULT_LIMIT
            )]
        );
        let (status, v) = json(distribution(&b, get(""), "x").await).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["message"], "x not found");
    }
}
