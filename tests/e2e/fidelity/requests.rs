//! Path segments decoded once, and streamed endpoints that fail with a status
//! before streaming.

use super::*;

/// Path segments are percent-decoded exactly once, as Go's router does.
#[test]
fn path_segments_are_decoded_once() {
    let d = daemon();
    d.docker_ok(&["network", "create", "test 01"]);
    let (st, _, b) = d.raw("GET", "/networks/test%2001", None);
    assert_eq!((st, body_json(&b)["Name"].as_str()), (200, Some("test 01")));
    let (st, _, b) = d.raw("GET", "/networks/test%252001", None);
    assert_eq!(
        (st, body_json(&b)["message"].as_str()),
        (404, Some("network test%2001 not found"))
    );
    // The CLI encodes the space itself.
    assert_eq!(
        d.docker_ok(&["network", "inspect", "-f", "{{.Name}}", "test 01"])
            .trim(),
        "test 01"
    );
    d.docker_ok(&["network", "rm", "test 01"]);
    d.docker_ok(&["create", "--name", "c1", "busybox", "true"]);
    let (st, _, b) = d.raw("GET", "/containers/%631/json", None);
    assert_eq!((st, body_json(&b)["Name"].as_str()), (200, Some("/c1")));
    let (st, _, b) = d.raw("GET", "/containers/a%2Fb/json", None);
    assert_eq!(
        (st, body_json(&b)["message"].as_str()),
        (404, Some("No such container: a/b"))
    );
    d.docker_ok(&["volume", "create", "vol1"]);
    let (st, _, b) = d.raw("GET", "/volumes/%76ol1", None);
    assert_eq!((st, body_json(&b)["Name"].as_str()), (200, Some("vol1")));
    let (st, _, b) = d.raw("GET", "/volumes/a%252Fb", None);
    assert_eq!(
        (st, body_json(&b)["message"].as_str()),
        (404, Some("get a%2Fb: no such volume"))
    );
    d.docker_ok(&["tag", "busybox", "127.0.0.1:5000/app:v1"]);
    for p in [
        "127.0.0.1%3A5000%2Fapp:v1",
        "127.0.0.1:5000/app:v1",
        "127.0.0.1%3A5000/app%3Av1",
    ] {
        let (st, _, b) = d.raw("GET", &format!("/images/{p}/json"), None);
        assert_eq!(st, 200, "{p}");
        assert!(
            body_json(&b)["RepoTags"]
                .to_string()
                .contains("127.0.0.1:5000/app:v1"),
            "{p}"
        );
    }
    // Decoded once: `%252F` is a literal `%2F`, not a valid reference.
    let (st, _, b) = d.raw("GET", "/images/127.0.0.1%3A5000%252Fapp:v1/json", None);
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&b));
    assert!(body_json(&b)["message"]
        .as_str()
        .unwrap()
        .contains("invalid reference format"));
    let (st, _, _) = d.raw("DELETE", "/images/127.0.0.1%3A5000%2Fapp:v1", None);
    assert_eq!(st, 200);
    d.docker_ok(&["rm", "c1"]);
    d.docker_ok(&["volume", "rm", "vol1"]);
}

fn assert_error(
    d: &Daemon,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    status: u16,
    message: &str,
) {
    let (st, head, b) = d.raw(method, path, body);
    assert_eq!(
        st,
        status,
        "{method} {path}: {head}\n{}",
        String::from_utf8_lossy(&b)
    );
    assert_eq!(
        header(&head, "Content-Type"),
        Some("application/json"),
        "{method} {path}"
    );
    assert!(
        header(&head, "Transfer-Encoding").is_none(),
        "{method} {path}: streamed: {head}"
    );
    let m = body_json(&b)["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        m.contains(message),
        "{method} {path}: {m:?} lacks {message:?}"
    );
}

/// Streamed endpoints refuse what they cannot serve with a status and a
/// JSON message before any stream starts (statuses and messages as
/// dockerd's, except where noted).
#[test]
fn streamed_endpoints_fail_before_streaming() {
    let d = daemon();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ln",
        "--log-driver",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&["create", "--name", "st", "busybox", "true"]);
    let reading = "configured logging driver does not support reading";
    assert_error(
        &d,
        "GET",
        "/containers/nope/logs?stdout=1",
        None,
        404,
        "No such container: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/ln/logs?stdout=1",
        None,
        501,
        reading,
    );
    assert_error(
        &d,
        "GET",
        "/containers/ln/logs?stdout=1&follow=1",
        None,
        501,
        reading,
    );
    let o = d.docker(&["logs", "ln"]);
    assert!(
        !o.status.success() && stderr(&o).contains(reading),
        "{}",
        stderr(&o)
    );
    // A refused attach: dockerd's status, raw-stream type and text message.
    for upgrade in [true, false] {
        let r = Raw::send(
            &d,
            "POST",
            "/containers/nope/attach?stream=1&stdout=1",
            b"",
            upgrade,
        );
        assert_eq!(r.status, 404, "{}", r.head);
        assert!(
            r.head.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{}",
            r.head
        );
        assert_eq!(
            r.header("Content-Type"),
            Some("application/vnd.docker.raw-stream")
        );
        assert_eq!(r.body(), b"No such container: nope\r\n");
    }
    let r = Raw::send(&d, "POST", "/exec/nope/start", b"{}", true);
    assert_eq!(r.status, 404, "{}", r.head);
    assert_error(
        &d,
        "POST",
        "/exec/nope/start",
        Some(b"{}"),
        404,
        "No such exec instance: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/nope/stats?stream=0",
        None,
        404,
        "No such container: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/nope/stats",
        None,
        404,
        "No such container: nope",
    );
    // A stopped container's one-shot stats: a sized 200 of zeros.
    let (st, head, b) = d.raw("GET", "/containers/st/stats?stream=0", None);
    assert_eq!(st, 200);
    assert!(header(&head, "Content-Length").is_some(), "{head}");
    assert_eq!(body_json(&b)["read"], "0001-01-01T00:00:00Z");
    assert_error(
        &d,
        "GET",
        "/containers/nope/export",
        None,
        404,
        "No such container: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/nope/archive?path=/",
        None,
        404,
        "No such container: nope",
    );
    assert_error(
        &d,
        "GET",
        "/containers/st/archive?path=/nonexist",
        None,
        404,
        "Could not find the file /nonexist in container st",
    );
    assert_error(
        &d,
        "PUT",
        "/containers/st/archive?path=/nonexist",
        Some(b""),
        404,
        "Could not find the file /nonexist in container st",
    );
    // Events: bad filters are a 400 (dockerd 20.10 said 500 for bad JSON).
    assert_error(&d, "GET", "/events?filters=notjson", None, 400, "");
    assert_error(
        &d,
        "GET",
        "/events?filters=%7B%22bogus%22%3A%7B%22x%22%3Atrue%7D%7D",
        None,
        400,
        "bogus",
    );
    assert_error(&d, "GET", "/events?since=abc", None, 400, "");
    // Pull of a bad reference, save of a missing image.
    assert_error(
        &d,
        "POST",
        "/images/create?fromImage=a%3A%3Ab",
        None,
        400,
        "invalid reference format",
    );
    assert_error(
        &d,
        "POST",
        "/images/create?fromImage=busybox&tag=UP%3Ax",
        None,
        400,
        "invalid tag format",
    );
    assert_error(
        &d,
        "GET",
        "/images/nope/get",
        None,
        404,
        "No such image: nope",
    );
    assert_error(
        &d,
        "GET",
        "/images/get?names=busybox&names=nope",
        None,
        404,
        "No such image: nope",
    );
    // Push of a missing image: dockerd streams its first line, then the error.
    let (st, _, b) = d.raw("POST", "/images/nope/push", None);
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&b).contains(
        r#""errorDetail":{"message":"An image does not exist locally with the tag: nope"}"#
    ));
    // Build: a failure before any output is the status (dockerd: 500;
    // berth answers a context that is no archive with a 400, the
    // request's fault).
    assert_error(&d, "POST", "/build", Some(b"notatar"), 400, "");
    let ctx = fixtures::archive_of(&[("Dockerfile".into(), b"FROM busybox\nRUN true\n".to_vec())]);
    assert_error(
        &d,
        "POST",
        "/build?dockerfile=nope",
        Some(&ctx),
        500,
        "Cannot locate specified Dockerfile: nope",
    );
    let o = d
        .docker_cmd()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-f", "nope", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map(|mut c| {
            c.stdin.take().unwrap().write_all(&ctx).unwrap();
            finish(c, Duration::from_secs(60))
        })
        .unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("Cannot locate specified Dockerfile: nope"),
        "{}",
        stderr(&o)
    );
    // The container stopped after the execs were made: dockerd forgets
    // the one never started (404) and refuses the finished one (409).
    d.docker_ok(&["run", "-d", "--name", "gone", "busybox", "sleep", "300"]);
    let unstarted = create_exec(&d, "gone", false, "true");
    let finished = create_exec(&d, "gone", false, "true");
    let r = Raw::send(&d, "POST", &format!("/exec/{finished}/start"), b"{}", true);
    assert_eq!(r.status, 101);
    r.body();
    let cid = d.docker_ok(&["inspect", "-f", "{{.Id}}", "gone"]);
    d.docker_ok(&["kill", "gone"]);
    let r = Raw::send(&d, "POST", &format!("/exec/{unstarted}/start"), b"{}", true);
    assert_eq!(r.status, 404, "{}", r.head);
    assert_error(
        &d,
        "GET",
        &format!("/exec/{unstarted}/json"),
        None,
        404,
        &format!("No such exec instance: {unstarted}"),
    );
    assert_error(
        &d,
        "POST",
        &format!("/exec/{finished}/start"),
        Some(b"{}"),
        409,
        &format!("Container {} is not running: Exited (137)", cid.trim()),
    );
    d.docker_ok(&["rm", "-f", "ln", "st", "gone"]);
}
