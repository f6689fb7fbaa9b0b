//! The container routes on a fake backend: the wire details clients rely
//! on, without an engine.

use berth_api::models::ChangeType;
use berth_api::version::ApiVersion;
use http::Method;
use serde_json::json;

use super::*;
use crate::engine::EngineError;
use crate::server::testing::{self, answer, get, lines, with_body, Asked};

#[test]
fn legacy_aliases_add_short_id_and_hostname_on_user_networks() {
    let mut v = json!({
        "Id": "0123456789abcdef",
        "Config": {"Hostname": "web"},
        "NetworkSettings": {"Networks": {
            "bridge": {"Aliases": null},
            "app": {"Aliases": ["db", "web"]},
            "other": {"Aliases": null},
        }},
    });
    legacy_aliases(&mut v);
    let n = &v["NetworkSettings"]["Networks"];
    assert_eq!(n["bridge"]["Aliases"], json!(null));
    assert_eq!(n["app"]["Aliases"], json!(["db", "web", "0123456789ab"]));
    assert_eq!(n["other"]["Aliases"], json!(["0123456789ab", "web"]));
}

/// A backend with a running container, `web`, and a stopped one, `idle`
/// (which has no changes), that records what it was asked.
#[derive(Default)]
struct Fake {
    asked: Asked,
}

impl Fake {
    fn find(&self, key: &str) -> Result<bool> {
        match key {
            "web" => Ok(true),
            "idle" => Ok(false),
            _ => Err(EngineError::not_found(format!("No such container: {key}"))),
        }
    }
    fn running(&self, key: &str) -> Result<()> {
        if self.find(key)? {
            Ok(())
        } else {
            Err(EngineError::conflict(format!(
                "Container {key} is not running"
            )))
        }
    }
}

impl Backend for Fake {
    fn create_container(
        &self,
        opts: CreateOptions,
        body: ContainerCreateBody,
    ) -> Result<(String, Vec<String>)> {
        self.asked.note(format!(
            "create name={:?} image={:?}",
            opts.name, body.image
        ));
        Ok(("c0ffee".into(), Vec::new()))
    }
    fn prepare_ahead(self: &Arc<Self>, id: &str) {
        self.asked.note(format!("prepare {id}"));
    }
    fn inspect_container(&self, key: &str, _: bool) -> Result<ContainerInspectResponse> {
        self.find(key)?;
        Ok(ContainerInspectResponse {
            id: Some("c0ffee".into()),
            name: Some(format!("/{key}")),
            ..Default::default()
        })
    }
    async fn start_container(self: &Arc<Self>, key: &str) -> Result<()> {
        self.find(key).map(drop)
    }
    async fn stop_container(&self, key: &str, _: Option<i64>, _: Option<&str>) -> Result<()> {
        self.find(key).map(drop)
    }
    async fn restart_container(
        self: &Arc<Self>,
        key: &str,
        _: Option<i64>,
        _: Option<&str>,
    ) -> Result<()> {
        self.find(key).map(drop)
    }
    async fn kill_container(&self, key: &str, _: Option<&str>) -> Result<()> {
        self.find(key).map(drop)
    }
    async fn pause_container(&self, key: &str, _: bool) -> Result<()> {
        self.find(key).map(drop)
    }
    async fn remove_container(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        self.find(key)?;
        if !force {
            return Err(EngineError::conflict(format!(
                "cannot remove container \"/{key}\": container is running: stop the container before removing or force remove"
            )));
        }
        self.asked
            .note(format!("remove {key} force={force} v={volumes}"));
        Ok(())
    }
    fn remove_link(&self, name: &str) -> Result<()> {
        self.asked.note(format!("unlink {name}"));
        Ok(())
    }
    fn rename_container(&self, key: &str, _: &str) -> Result<()> {
        self.find(key).map(drop)
    }
    fn list_containers(
        &self,
        all: bool,
        _: Option<i64>,
        _: bool,
        _: &Filters,
    ) -> Result<Vec<ContainerSummary>> {
        self.asked.note(format!("list all={all}"));
        Ok(Vec::new())
    }
    async fn prune_containers(&self, _: &Filters) -> Result<(Vec<String>, i64)> {
        self.asked.note("prune");
        Ok((Vec::new(), 0))
    }
    fn top(&self, key: &str, ps_args: &str) -> Result<ContainerTopResponse> {
        self.running(key)?;
        self.asked.note(format!("top {ps_args}"));
        Ok(ContainerTopResponse {
            titles: Some(vec!["PID".into(), "CMD".into()]),
            processes: Some(vec![vec!["1".into(), "sleep 60".into()]]),
        })
    }
    fn wait_container(
        &self,
        key: &str,
        cond: WaitCondition,
    ) -> Result<impl Future<Output = i64> + Send + 'static> {
        self.find(key)?;
        self.asked.note(format!("wait {cond:?}"));
        Ok(std::future::ready(3))
    }
    async fn resize_container(&self, key: &str, _: u16, _: u16) -> Result<()> {
        self.running(key)
    }
    fn container_logs(
        self: &Arc<Self>,
        key: &str,
        _: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Bytes>)> {
        self.find(key)?;
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Bytes::from_static(b"hello\n"));
        Ok((true, rx))
    }
    fn attach_container(self: &Arc<Self>, key: &str, _: AttachOptions) -> Result<AttachSession> {
        self.find(key)?;
        Err(EngineError::conflict(
            "You cannot attach to a stopped container, start it first",
        ))
    }
    fn container_stats(
        self: &Arc<Self>,
        key: &str,
        _: bool,
        _: bool,
    ) -> Result<mpsc::Receiver<Bytes>> {
        self.find(key)?;
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(Bytes::from_static(b"{\"read\":\"x\"}\n"));
        Ok(rx)
    }
    async fn update_container(&self, key: &str, _: ContainerUpdateBody) -> Result<Vec<String>> {
        self.find(key)?;
        Ok(Vec::new())
    }
    async fn export_container(self: &Arc<Self>, key: &str) -> Result<mpsc::Receiver<Bytes>> {
        self.find(key)?;
        Ok(mpsc::channel(1).1)
    }
    fn container_changes(&self, key: &str) -> Result<Option<Vec<FilesystemChange>>> {
        if !self.find(key)? {
            return Ok(None);
        }
        Ok(Some(vec![FilesystemChange {
            path: "/tmp".into(),
            kind: ChangeType::_0,
        }]))
    }
    async fn commit_container(self: &Arc<Self>, key: &str, o: CommitOptions) -> Result<String> {
        self.find(key)?;
        self.asked
            .note(format!("commit {key} repo={} pause={}", o.repo, o.pause));
        Ok("sha256:feed".into())
    }
}

fn post(query: &str, body: &str) -> Req {
    with_body(
        testing::req(Method::POST, query, ApiVersion::new(1, 50)),
        body.to_string(),
    )
}

#[tokio::test]
async fn a_missing_container_is_a_404_with_dockers_message() {
    let b = Arc::new(Fake::default());
    let (status, v) = testing::json(inspect(&*b, get(""), "nope").await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v, json!({"message": "No such container: nope"}));
    for r in [
        start(&b, get(""), "nope").await,
        stop(&*b, get("t=1"), "nope").await,
        kill(&*b, get(""), "nope").await,
        rename(&*b, get("name=x"), "nope").await,
        wait(&*b, get(""), "nope").await,
        top(&*b, get(""), "nope").await,
        logs(&b, get("stdout=1"), "nope").await,
        stats(&b, get(""), "nope").await,
        export(&b, get(""), "nope").await,
        changes(&*b, get(""), "nope").await,
        attach(&b, get("stream=1"), "nope").await,
        commit(&b, post("container=nope", "")).await,
    ] {
        assert_eq!(answer(r).await.0, StatusCode::NOT_FOUND);
    }
    let (status, v) = testing::json(inspect(&*b, get(""), "web").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["Name"], "/web");
    assert_eq!(
        answer(start(&b, get(""), "web").await).await.0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn create_answers_201_with_warnings_as_an_array_and_prepares_the_start() {
    let b = Arc::new(Fake::default());
    let r = create(&b, post("name=web", r#"{"Image":"busybox"}"#)).await;
    let (status, v) = testing::json(r).await;
    assert_eq!(status, StatusCode::CREATED);
    // `[]`, never `null`: the CLI prints each warning.
    assert_eq!(v, json!({"Id": "c0ffee", "Warnings": []}));
    assert_eq!(
        b.asked.all(),
        [
            "create name=Some(\"web\") image=Some(\"busybox\")",
            "prepare c0ffee"
        ]
    );
    // A value the typed body cannot hold: dockerd's 400, nothing created.
    let body = r#"{"Image":"busybox","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#;
    let (status, v) = testing::json(create(&b, post("", body)).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "invalid restart policy 'sometimes'");
    assert_eq!(b.asked.all().len(), 2);
}

#[tokio::test]
async fn removing_a_running_container_needs_force_and_a_link_is_only_unlinked() {
    let b = Fake::default();
    let (status, v) = testing::json(remove(&b, get(""), "web").await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        v["message"],
        "cannot remove container \"/web\": container is running: stop the container before removing or force remove"
    );
    let r = remove(&b, get("force=1&v=1"), "web").await;
    assert_eq!(answer(r).await.0, StatusCode::NO_CONTENT);
    let r = remove(&b, get("link=1"), "web/db").await;
    assert_eq!(answer(r).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        b.asked.all(),
        ["remove web force=true v=true", "unlink web/db"]
    );
}

#[tokio::test]
async fn wait_sends_error_null_before_api_1_42_and_refuses_an_unknown_condition() {
    let b = Fake::default();
    let old = testing::req(Method::POST, "", ApiVersion::new(1, 41));
    let (status, v) = lines(wait(&b, old, "web").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, [json!({"Error": null, "StatusCode": 3})]);
    let r = wait(&b, get("condition=next-exit"), "web").await;
    let (_, headers, body) = answer(r).await;
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(&body[..], b"{\"StatusCode\":3}\n");
    let (status, v) = testing::json(wait(&b, get("condition=soon"), "web").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "invalid condition: \"soon\"");
    // The bad condition never reached the backend.
    assert_eq!(b.asked.all(), ["wait NotRunning", "wait NextExit"]);
}

#[tokio::test]
async fn top_answers_titles_and_processes_and_409_when_not_running() {
    let b = Fake::default();
    let (status, v) = testing::json(top(&b, get("ps_args=-ef"), "web").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v,
        json!({"Titles": ["PID", "CMD"], "Processes": [["1", "sleep 60"]]})
    );
    let (status, v) = testing::json(top(&b, get(""), "idle").await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(v["message"], "Container idle is not running");
    assert_eq!(b.asked.all(), ["top -ef"]);
}

#[tokio::test]
async fn changes_is_null_when_there_are_none_and_kinds_are_numbers() {
    let b = Fake::default();
    let (status, _, body) = answer(changes(&b, get(""), "idle").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.trim_ascii(), b"null");
    let (_, v) = testing::json(changes(&b, get(""), "web").await).await;
    assert_eq!(v, json!([{"Path": "/tmp", "Kind": 0}]));
}

#[tokio::test]
async fn prune_and_update_send_null_for_empty_lists() {
    let b = Fake::default();
    let (status, v) = testing::json(prune(&b, post("", "")).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, json!({"ContainersDeleted": null, "SpaceReclaimed": 0}));
    let (status, v) = testing::json(update(&b, post("", r#"{"Memory":0}"#), "web").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v, json!({"Warnings": null}));
    let r = update(
        &b,
        post("", r#"{"RestartPolicy":{"Name":"sometimes"}}"#),
        "web",
    )
    .await;
    assert_eq!(answer(r).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn logs_stream_raw_for_a_tty_and_stats_without_stream_is_one_document() {
    let b = Arc::new(Fake::default());
    let (status, headers, body) = answer(logs(&b, get("stdout=1"), "web").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/vnd.docker.raw-stream");
    assert_eq!(&body[..], b"hello\n");
    let (status, headers, body) = answer(stats(&b, get("stream=0"), "web").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(&body[..], b"{\"read\":\"x\"}\n");
}

#[tokio::test]
async fn a_refused_attach_is_text_on_a_raw_stream_and_commit_needs_a_container() {
    let b = Arc::new(Fake::default());
    // As moby, which has hijacked the connection by then: the status, the
    // raw-stream type and the message as text.
    let r = attach(&b, get("stream=1"), "idle").await;
    let (status, headers, body) = answer(r).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers["content-type"], "application/vnd.docker.raw-stream");
    assert_eq!(
        &body[..],
        b"You cannot attach to a stopped container, start it first\r\n"
    );
    let (status, v) = testing::json(commit(&b, post("", "")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "container is required");
    let (status, v) = testing::json(commit(&b, post("container=web&repo=x", "null")).await).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v, json!({"Id": "sha256:feed"}));
    assert_eq!(b.asked.all(), ["commit web repo=x pause=true"]);
}
