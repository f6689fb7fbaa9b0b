//! The dashboard (`berth ui`, issue 23) in a real browser: headless Chromium
//! from Debian over WebDriver (`chromedriver`, one per test binary), against
//! a berthd of each test's own, with containers made by the real docker CLI.
//! Plain HTTP checks what a browser would not send (no token, a foreign
//! `Origin`). Screenshots go to `target/ui-screenshots/`.

#[path = "ui/browser.rs"]
mod browser;
#[path = "ui/dashboard.rs"]
mod dashboard;
#[path = "ui/foreign.rs"]
mod foreign;
#[path = "ui/paint.rs"]
mod paint;

use std::time::Duration;

use berth_tests::{daemon, scratch, Daemon, LocalRegistry};
use browser::Browser;
use dashboard::{assert_refused, Ui};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn row(id: &str) -> String {
    format!("[data-testid=\"container-row\"][data-id=\"{id}\"]")
}

fn wait_state(b: &Browser, id: &str, state: &str) {
    let css = serde_json::to_string(&format!("{} [data-testid=\"container-state\"]", row(id)))
        .expect("json");
    b.wait_js(
        &format!("container {} shown {state}", &id[..12]),
        WAIT,
        &format!(
            "const e = document.querySelector({css}); return !!e && e.textContent.trim() === {};",
            serde_json::to_string(state).expect("json")
        ),
    );
}

/// `docker run -d` of a sleeping busybox; its full ID.
fn run_sleeper(d: &Daemon, name: &str) -> String {
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--stop-timeout",
        "1",
        "busybox",
        "sleep",
        "300",
    ])
    .trim()
    .to_string()
}

fn running(d: &Daemon, id: &str) -> bool {
    d.docker_ok(&["inspect", "-f", "{{.State.Running}}", id])
        .trim()
        == "true"
}

/// A container's page, waited for.
fn open_container(b: &Browser, ui: &Ui, id: &str) {
    b.goto(&ui.page(&format!("#/containers/{id}")));
    b.wait_ready();
    b.wait_css(
        &format!("[data-testid=\"container-page\"][data-id=\"{id}\"]"),
        WAIT,
    );
}

#[test]
fn the_dashboard_lists_the_tests_containers_and_serves_nothing_without_the_token() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let up = run_sleeper(&d, "ui-list-up");
    let made = d
        .docker_ok(&["create", "--name", "ui-list-made", "busybox", "true"])
        .trim()
        .to_string();
    // Two services of a Compose project (its labels), one publishing a port.
    let web = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "shop-web-1",
            "-p",
            "127.0.0.1::80",
            "--label",
            "com.docker.compose.project=shop",
            "--label",
            "com.docker.compose.service=web",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
        ])
        .trim()
        .to_string();
    let db = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "shop-db-1",
            "--stop-timeout",
            "1",
            "--label",
            "com.docker.compose.project=shop",
            "--label",
            "com.docker.compose.service=db",
            "busybox",
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);

    b.goto(&ui.url);
    b.wait_ready();
    wait_state(&b, &up, "running");
    wait_state(&b, &made, "created");
    for id in [&web, &db] {
        b.wait_css(
            &format!(
                "[data-testid=\"compose-group\"][data-project=\"shop\"] {}",
                row(id)
            ),
            WAIT,
        );
    }
    let name = b.js(&format!(
        "return document.querySelector({}).dataset.name;",
        serde_json::to_string(&row(&up)).expect("json")
    ));
    assert_eq!(name, Value::String("ui-list-up".into()));
    b.screenshot("containers");
    // A Compose group folds and unfolds.
    let toggle = "[data-testid=\"compose-group\"][data-project=\"shop\"] button[data-testid=\"compose-toggle\"]";
    let web_row = serde_json::to_string(&row(&web)).expect("json");
    let shown = format!(
        "const r = document.querySelector({web_row}); return !!r && r.getClientRects().length > 0;"
    );
    b.click(toggle);
    b.wait_js(
        "the shop rows folded",
        WAIT,
        &format!("return !(() => {{ {shown} }})();"),
    );
    b.click(toggle);
    b.wait_js("the shop rows shown again", WAIT, &shown);
    // The search box narrows the list.
    b.type_into("input[data-testid=\"container-search\"]", "shop-");
    b.wait_js(
        "only the shop rows",
        WAIT,
        "const ns = [...document.querySelectorAll('[data-testid=\"container-row\"]')].map(r => r.dataset.name).sort();
         return ns.join(',') === 'shop-db-1,shop-web-1';",
    );

    // The page and its headers.
    let page = ui.req("GET", &format!("/?token={}", ui.token), &[], b"");
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").unwrap_or_default().to_string();
    assert!(
        cookie.starts_with(&format!("berth_ui={}", ui.token)),
        "{cookie}"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "cookie without {attr}: {cookie}");
    }
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'self'"), "CSP: {csp}");
    // No inline or eval'd scripts (inline styles may be: xterm.js's).
    let scripts = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src "))
        .unwrap_or("default-src 'self'");
    assert!(
        !scripts.contains("unsafe-inline") && !scripts.contains("unsafe-eval"),
        "CSP: {csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page
        .header("cache-control")
        .unwrap_or_default()
        .contains("no-store"));

    // Without the token nothing is served.
    let wrong = "A".repeat(ui.token.len());
    let c = ui.cookie();
    let bad_cookie = format!("berth_ui={wrong}");
    let api = "/api/engine/containers/json?all=1";
    for (what, path, headers) in [
        ("GET /", "/".to_string(), vec![]),
        ("GET / wrong token", format!("/?token={wrong}"), vec![]),
        (
            "GET / wrong cookie",
            "/".into(),
            vec![("Cookie", bad_cookie.as_str())],
        ),
        ("GET /index.html", "/index.html".into(), vec![]),
        ("GET /assets/app.js", "/assets/app.js".into(), vec![]),
        (
            "GET /assets/app.js wrong cookie",
            "/assets/app.js".into(),
            vec![("Cookie", bad_cookie.as_str())],
        ),
        ("GET api", api.into(), vec![]),
        (
            "GET api cookie only",
            api.into(),
            vec![("Cookie", c.as_str())],
        ),
        (
            "GET api ?token only",
            format!("{api}&token={}", ui.token),
            vec![],
        ),
        (
            "GET api wrong header",
            api.into(),
            vec![("X-Berth-Token", wrong.as_str())],
        ),
    ] {
        let r = ui.req("GET", &path, &headers, b"");
        assert_refused(&r, what, &[401, 403]);
    }
    // With it, the assets (by cookie) and the API (by header) are served.
    let js = ui.req("GET", "/assets/app.js", &[("Cookie", c.as_str())], b"");
    assert_eq!(js.status, 200, "{}", String::from_utf8_lossy(&js.body));
    let list = ui.api("GET", "/containers/json?all=1", None);
    assert_eq!(list.status, 200);
    let ids: Vec<String> = berth_tests::body_json(&list.body)
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["Id"].as_str().map(str::to_string))
        .collect();
    assert!(ids.contains(&up) && ids.contains(&made), "{ids:?}");
}

#[test]
fn start_and_stop_from_the_page_show_through_the_events_stream() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let id = d
        .docker_ok(&[
            "create",
            "--name",
            "ui-lifecycle",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    // More running rows than a browser opens connections to one origin
    // (6): live rows must not starve the page's other requests.
    for i in 0..8 {
        run_sleeper(&d, &format!("ui-busy-{i}"));
    }
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    b.goto(&ui.url);
    b.wait_ready();
    wait_state(&b, &id, "created");
    // Set on the window: a reload or navigation would lose it.
    b.js("window.__berthTestMarker = 'kept'; return true;");
    let url = b.url();

    b.click(&format!("{} button[data-action=\"start\"]", row(&id)));
    wait_state(&b, &id, "running");
    assert!(running(&d, &id));

    b.click(&format!("{} button[data-action=\"stop\"]", row(&id)));
    b.wait_css(
        "[data-testid=\"confirm\"] button[data-testid=\"confirm-ok\"]",
        WAIT,
    );
    // Nothing happens before the confirmation.
    assert!(running(&d, &id), "stopped before the confirmation");
    b.click("[data-testid=\"confirm\"] button[data-testid=\"confirm-ok\"]");
    wait_state(&b, &id, "exited");
    assert!(!running(&d, &id));

    // A state change a docker CLI makes shows too (only the events stream
    // can tell the page).
    d.docker_ok(&["start", &id]);
    wait_state(&b, &id, "running");

    // Pause and unpause need no confirmation; remove does.
    b.click(&format!("{} button[data-action=\"pause\"]", row(&id)));
    wait_state(&b, &id, "paused");
    b.click(&format!("{} button[data-action=\"unpause\"]", row(&id)));
    wait_state(&b, &id, "running");
    b.click(&format!("{} button[data-action=\"remove\"]", row(&id)));
    b.wait_css(
        "[data-testid=\"confirm\"] button[data-testid=\"confirm-cancel\"]",
        WAIT,
    );
    b.click("[data-testid=\"confirm\"] button[data-testid=\"confirm-cancel\"]");
    b.wait_js(
        "the confirmation gone",
        WAIT,
        "return !document.querySelector('[data-testid=\"confirm\"]');",
    );
    assert!(running(&d, &id), "cancel removed the container");
    b.click(&format!("{} button[data-action=\"remove\"]", row(&id)));
    b.wait_css(
        "[data-testid=\"confirm\"] button[data-testid=\"confirm-ok\"]",
        WAIT,
    );
    b.click("[data-testid=\"confirm\"] button[data-testid=\"confirm-ok\"]");
    let css = serde_json::to_string(&row(&id)).expect("json");
    b.wait_js(
        "the row gone",
        WAIT,
        &format!("return !document.querySelector({css});"),
    );
    assert!(!d.docker(&["inspect", &id]).status.success(), "still there");

    assert_eq!(
        b.js("return window.__berthTestMarker || null;"),
        Value::String("kept".into()),
        "the page reloaded"
    );
    assert_eq!(b.url(), url, "the page navigated");
}

#[test]
fn the_terminal_runs_what_is_typed() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let id = run_sleeper(&d, "ui-terminal");
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    open_container(&b, &ui, &id);
    b.click("button[data-tab=\"terminal\"]");
    b.wait_css("[data-testid=\"terminal\"][data-state=\"open\"]", WAIT);
    b.wait_css("[data-testid=\"terminal\"] .xterm-helper-textarea", WAIT);
    // The shell's prompt first, then the command.
    b.wait_js(
        "a prompt",
        WAIT,
        "const r = document.querySelector('[data-testid=\"terminal\"] .xterm-rows'); return !!r && r.textContent.includes('#');",
    );
    b.type_into(
        "[data-testid=\"terminal\"] .xterm-helper-textarea",
        "echo $((6*7))\u{E007}",
    );
    b.wait_js(
        "42 on a row of its own",
        WAIT,
        "const r = document.querySelector('[data-testid=\"terminal\"] .xterm-rows');
         return !!r && [...r.children].some(c => c.textContent.trim() === '42');",
    );
    b.screenshot("container-terminal");

    // Leaving the tab ends the shell (no exec outlives its terminal).
    let shells = |d: &Daemon| {
        let ids = d.docker_ok(&["inspect", "-f", "{{json .ExecIDs}}", &id]);
        let ids: Vec<String> = serde_json::from_str(ids.trim()).unwrap_or_default();
        ids.iter()
            .filter(|e| {
                let (_, _, b) = d.raw("GET", &format!("/exec/{e}/json"), None);
                serde_json::from_slice::<Value>(&b).is_ok_and(|v| v["Running"] == true)
            })
            .count()
    };
    assert!(
        shells(&d) >= 1,
        "no running exec while the terminal is open"
    );
    // The terminal follows the window's size (exec resize).
    let term = "[data-testid=\"terminal\"] .xterm-helper-textarea";
    let size_after = |b: &Browser, tag: &str| -> (u64, u64) {
        b.type_into(term, &format!("echo {tag} $(stty size)\u{E007}"));
        let got = b.wait_js(
            &format!("stty size after {tag}"),
            WAIT,
            &format!(
                "const r = document.querySelector('[data-testid=\"terminal\"] .xterm-rows');
                 const l = r && [...r.children].map(c => c.textContent.trim()).find(t => /^{tag} \\d+ \\d+$/.test(t));
                 return l || null;"
            ),
        );
        let v: Vec<u64> = got
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        (v[0], v[1])
    };
    let (rows, cols) = size_after(&b, "before");
    b.resize_by(-400, -300);
    // The resize reaches the shell a moment later: ask again until it has.
    let mut now = (rows, cols);
    for i in 0..10 {
        now = size_after(&b, &format!("after{i}"));
        if now.0 < rows && now.1 < cols {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        now.0 < rows && now.1 < cols,
        "terminal {rows}x{cols} then {}x{} after shrinking the window",
        now.0,
        now.1
    );
    b.click("button[data-tab=\"logs\"]");
    let gone =
        berth_tests::wait_for_polling(Duration::from_millis(200), Duration::from_secs(15), || {
            shells(&d) == 0
        });
    assert!(gone, "the terminal's shell outlived its tab");
}

#[test]
fn logs_follow_shows_a_line_written_after_the_page_opened() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "--name",
            "ui-logs",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "echo first-line; exec sleep 300",
        ])
        .trim()
        .to_string();
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    open_container(&b, &ui, &id);
    b.click("button[data-tab=\"logs\"]");
    b.wait_js(
        "the first line in the logs",
        WAIT,
        "const e = document.querySelector('[data-testid=\"logs\"]'); return !!e && e.textContent.includes('first-line');",
    );
    assert_eq!(
        b.js("const e = document.querySelector('input[data-testid=\"logs-follow\"]'); return e ? e.checked : null;"),
        Value::Bool(true),
        "follow is on by default"
    );
    let marker = format!("marker-{}", &berth_tests::random_hex()[..8]);
    d.docker_ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        &format!("echo {marker} > /proc/1/fd/1"),
    ]);
    b.wait_js(
        "the line written after the page opened",
        WAIT,
        &format!(
            "const e = document.querySelector('[data-testid=\"logs\"]'); return !!e && e.textContent.includes('{marker}');"
        ),
    );
    b.screenshot("container-logs");
    // Timestamps on demand, and a download link.
    b.click("input[data-testid=\"logs-timestamps\"]");
    b.wait_js(
        "timestamps in the logs",
        WAIT,
        "const e = document.querySelector('[data-testid=\"logs\"]'); return !!e && /\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d[.0-9]*Z first-line/.test(e.textContent);",
    );
    b.wait_css("a[data-testid=\"logs-download\"]", WAIT);
}

#[test]
fn inspect_top_diff_and_files_tabs_show_the_container() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let id = run_sleeper(&d, "ui-tabs");
    d.docker_ok(&["exec", &id, "sh", "-c", "echo hi > /ui-made-this"]);
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    open_container(&b, &ui, &id);
    for (tab, hook, text) in [
        ("inspect", "inspect", "ui-tabs"),
        ("top", "top", "sleep 300"),
        ("diff", "diff", "/ui-made-this"),
    ] {
        b.click(&format!("button[data-tab=\"{tab}\"]"));
        b.wait_js(
            &format!("{text} in the {tab} tab"),
            WAIT,
            &format!(
                "const e = document.querySelector('[data-testid=\"{hook}\"]'); return !!e && e.textContent.includes('{text}');"
            ),
        );
    }
    b.click("button[data-tab=\"files\"]");
    b.wait_css(
        "[data-testid=\"files\"] [data-testid=\"file-entry\"][data-path=\"/etc\"]",
        WAIT,
    );
}

#[test]
fn the_stats_charts_get_points() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    // A little CPU, block I/O and memory now and then, for the picture.
    let id = d
        .docker_ok(&[
            "run", "-d", "--name", "ui-stats", "--stop-timeout", "1", "busybox", "sh", "-c",
            "while :; do dd if=/dev/urandom of=/tmp/f bs=64k count=40 2>/dev/null; sync; sleep 0.5; done",
        ])
        .trim()
        .to_string();
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    open_container(&b, &ui, &id);
    b.click("button[data-tab=\"stats\"]");
    for chart in ["chart-cpu", "chart-mem"] {
        b.wait_js(
            &format!("{chart} with more than 2 points"),
            Duration::from_secs(30),
            &format!(
                "const e = document.querySelector('[data-testid=\"{chart}\"]'); return !!e && Number(e.dataset.points) > 2;"
            ),
        );
    }
    // A few more seconds of history for the picture (not needed by the
    // check); `BERTH_UI_SHOT_HISTORY=45` for the README's.
    let history: u64 = std::env::var("BERTH_UI_SHOT_HISTORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    b.wait_js(
        "more CPU points",
        Duration::from_secs(history + 30),
        &format!(
            "return Number(document.querySelector('[data-testid=\"chart-cpu\"]').dataset.points) > {history};"
        ),
    );
    b.screenshot("container-stats");
}

#[test]
fn a_pull_from_a_local_registry_shows_its_layers_and_final_status() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let dir = scratch();
    let reg = LocalRegistry::start(dir.path()).expect("docker-registry runs (CI installs it)");
    let image = format!("127.0.0.1:{}/ui/bb:1", reg.port);
    // Two layers: busybox's and one committed on top.
    d.docker_ok(&[
        "run",
        "--name",
        "ui-layer",
        "busybox",
        "sh",
        "-c",
        "echo two > /layer2",
    ]);
    d.docker_ok(&["commit", "ui-layer", &image]);
    d.docker_ok(&["rm", "ui-layer"]);
    d.docker_ok(&["push", &image]);
    d.docker_ok(&["rmi", &image, "busybox:latest"]);

    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    b.goto(&ui.page("#/images"));
    b.wait_ready();
    b.wait_css("input[data-testid=\"pull-input\"]", WAIT);
    b.type_into("input[data-testid=\"pull-input\"]", &image);
    b.click("button[data-testid=\"pull-submit\"]");
    let want = format!("Status: Downloaded newer image for {image}");
    b.wait_js(
        "the pull's final status",
        Duration::from_secs(60),
        &format!(
            "const e = document.querySelector('[data-testid=\"pull-status\"]'); return !!e && e.textContent.trim().endsWith({});",
            serde_json::to_string(&want).expect("json")
        ),
    );
    let layers = b.js(
        "return [...document.querySelectorAll('[data-testid=\"pull-progress\"] [data-testid=\"pull-layer\"]')].map(e => e.dataset.layer);",
    );
    let layers = layers.as_array().cloned().unwrap_or_default();
    assert_eq!(layers.len(), 2, "one pull-layer row per layer: {layers:?}");
    assert!(
        layers
            .iter()
            .all(|l| l.as_str().is_some_and(|s| !s.is_empty())),
        "{layers:?}"
    );
    assert_eq!(
        b.js("const e = document.querySelector('[data-testid=\"pull-status\"]'); return e.dataset.error || null;"),
        Value::Null
    );
    let id = d
        .docker_ok(&["image", "inspect", "-f", "{{.Id}}", &image])
        .trim()
        .to_string();
    b.wait_css(
        &format!("[data-testid=\"image-row\"][data-id=\"{id}\"]"),
        WAIT,
    );
    b.screenshot("images");
}

#[test]
fn cross_site_requests_are_refused() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let id = run_sleeper(&d, "ui-csrf");
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    // The page first, so the browser holds the dashboard's cookie.
    b.goto(&ui.url);
    b.wait_ready();

    let evil = foreign::Foreign::start();
    b.goto(&format!("{}/", evil.origin));
    let stop = format!("{}/api/engine/containers/{id}/stop", ui.origin);
    let kill = format!("{}/api/engine/containers/{id}/kill", ui.origin);
    let got = b.js_async(&format!(
        "const done = arguments[arguments.length - 1];
         const post = u => fetch(u, {{method: 'POST', credentials: 'include', mode: 'no-cors'}})
             .then(r => r.type, e => 'error: ' + e);
         Promise.all([post({stop:?}), post({kill:?})]).then(done);"
    ));
    eprintln!("no-cors fetches: {got}");
    // Form posts (urlencoded and text/plain JSON-lookalike) into a frame.
    b.js(&format!(
        "for (const [enc, n, v] of [['application/x-www-form-urlencoded', 't', '1'],
                                    ['text/plain', '{{\"Signal\":\"', 'KILL\"}}']]) {{
           const f = document.createElement('form');
           const fr = document.createElement('iframe');
           fr.name = 'sink' + enc.length; document.body.appendChild(fr);
           f.method = 'POST'; f.action = {kill:?}; f.enctype = enc; f.target = fr.name;
           const i = document.createElement('input'); i.name = n; i.value = v; f.appendChild(i);
           document.body.appendChild(f); f.submit();
         }}
         return true;"
    ));
    // A WebSocket from the foreign page, even with the token.
    let exec = ui.api(
        "POST",
        &format!("/containers/{id}/exec"),
        Some(r#"{"Cmd":["sh"],"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true}"#),
    );
    assert_eq!(exec.status, 201, "{}", String::from_utf8_lossy(&exec.body));
    let exec_id = berth_tests::body_json(&exec.body)["Id"]
        .as_str()
        .expect("an exec id")
        .to_string();
    let ws_path = format!("/api/ws/exec/{exec_id}?token={}", ui.token);
    let ws_url = format!("ws://127.0.0.1:{}{ws_path}", ui.port);
    let ws = b.js_async(&format!(
        "const done = arguments[arguments.length - 1];
         const ws = new WebSocket({ws_url:?});
         ws.onopen = () => {{ ws.close(); done('open'); }};
         ws.onerror = () => done('refused');
         setTimeout(() => done('timeout'), 10000);"
    ));
    assert_eq!(
        ws,
        Value::String("refused".into()),
        "a foreign page's WebSocket"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        running(&d, &id),
        "a cross-site request stopped the container"
    );

    // What a browser would not send, with a plain client.
    let c = ui.cookie();
    let post = format!("/api/engine/containers/{id}/stop");
    let r = ui.req("POST", &post, &[("Cookie", c.as_str())], b"");
    assert_refused(&r, "POST with the cookie, without the header", &[401, 403]);
    let r = ui.req(
        "POST",
        &post,
        &[
            ("X-Berth-Token", &ui.token),
            ("Origin", "http://evil.example"),
        ],
        b"",
    );
    assert_refused(&r, "POST with the header and a foreign Origin", &[403]);
    let r = ui.req(
        "POST",
        &post,
        &[
            ("X-Berth-Token", &ui.token),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"t=1",
    );
    assert_refused(&r, "a form post with the header", &[403]);
    assert_eq!(
        ui.ws_status(&ws_path, Some("http://evil.example")),
        403,
        "a WebSocket with a foreign Origin"
    );
    let no_token = format!("/api/ws/exec/{exec_id}");
    assert_eq!(
        ui.ws_status(&no_token, Some(&ui.origin)),
        401,
        "a WebSocket without the token"
    );
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends
    // its own Host (and, being same-origin to itself, no Origin).
    for path in [
        format!("/?token={}", ui.token),
        "/api/engine/containers/json".into(),
    ] {
        let st = ui.status_with_host(&path, &format!("evil.example:{}", ui.port));
        assert!(
            st == 403 || st == 421 || st == 400,
            "{path} with a foreign Host: {st}"
        );
    }
    assert_eq!(
        ui.status_with_host("/api/engine/_ping", &format!("localhost:{}", ui.port)),
        200,
        "a loopback name is fine"
    );
    assert!(running(&d, &id), "a refused request stopped the container");

    // The same requests made properly work (so the refusals above mean
    // something).
    assert_eq!(ui.ws_status(&ws_path, Some(&ui.origin)), 101);
    let r = ui.req(
        "POST",
        &post,
        &[("X-Berth-Token", &ui.token), ("Origin", &ui.origin)],
        b"",
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    assert!(!running(&d, &id));
}

#[test]
fn the_network_picture_shows_which_container_sits_on_which_network() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let net = format!("uinet{}", &berth_tests::random_hex()[..6]);
    d.docker_ok(&["network", "create", &net]);
    let a = run_sleeper(&d, "ui-net-a");
    let both = run_sleeper(&d, "ui-net-both");
    d.docker_ok(&["network", "connect", &net, &both]);
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    b.goto(&ui.page("#/networks"));
    b.wait_ready();
    let graph = "svg[data-testid=\"network-graph\"]";
    for n in ["bridge", net.as_str()] {
        b.wait_css(
            &format!("{graph} g[data-testid=\"net-node\"][data-network=\"{n}\"]"),
            WAIT,
        );
    }
    for id in [&a, &both] {
        b.wait_css(
            &format!("{graph} g[data-testid=\"ctr-node\"][data-id=\"{id}\"]"),
            WAIT,
        );
    }
    // a on bridge, both on bridge and the new network: three edges at least.
    b.wait_js(
        "three edges",
        WAIT,
        "return document.querySelectorAll('svg[data-testid=\"network-graph\"] [data-testid=\"net-edge\"]').length >= 3;",
    );
    b.screenshot("networks");
}

#[test]
fn the_volumes_and_host_pages_show_what_the_daemon_has() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let vol = format!("uivol{}", &berth_tests::random_hex()[..6]);
    d.docker_ok(&["volume", "create", &vol]);
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    b.goto(&ui.page("#/volumes"));
    b.wait_ready();
    b.wait_css(
        &format!("[data-testid=\"volume-row\"][data-name=\"{vol}\"]"),
        WAIT,
    );
    // Containers started before the page opens: berth's own metrics
    // (`/_berth/metrics` through the proxy) count them.
    let started = 3;
    for i in 0..started {
        run_sleeper(&d, &format!("ui-metrics-{i}"));
    }
    b.goto(&ui.page("#/host"));
    b.wait_ready();
    for hook in [
        "host-info",
        "df-chart",
        "event-timeline",
        "berth-metrics",
        "metric-start-p50",
    ] {
        b.wait_css(&format!("[data-testid=\"{hook}\"]"), WAIT);
    }
    let at_least = |hook: &str, min: f64| {
        b.wait_js(
            &format!("{hook} at least {min}"),
            WAIT,
            &format!(
                "const e = document.querySelector('[data-testid=\"{hook}\"]'); return !!e && e.dataset.value !== '' && Number(e.dataset.value) >= {min};"
            ),
        );
    };
    at_least("metric-start-count", started as f64);
    at_least("metric-shims", started as f64);
    // More than nothing: a shim's resident memory is megabytes.
    at_least("metric-shim-memory", 1.0);
    at_least("metric-start-p50", 0.000_001);
    let shown =
        b.js("return document.querySelector('[data-testid=\"metric-shim-memory\"]').textContent;");
    assert!(
        shown.as_str().is_some_and(|t| t.contains("B")),
        "shim memory shown as {shown}"
    );
    assert!(
        b.js("return !!document.querySelector('[data-testid=\"berth-metrics-unavailable\"]');")
            == Value::Bool(false)
    );
    // Read again 5 s later: the chart gets its second point.
    b.wait_js(
        "a second scrape on the start-latency chart",
        WAIT,
        "const e = document.querySelector('[data-testid=\"metric-start-chart\"]'); return !!e && Number(e.dataset.points) >= 2;",
    );
    // The timeline is live: an event after the page opened shows.
    let net = format!("uievt{}", &berth_tests::random_hex()[..6]);
    d.docker_ok(&["network", "create", &net]);
    b.wait_js(
        "the new network in the event timeline",
        WAIT,
        &format!(
            "const e = document.querySelector('[data-testid=\"event-timeline\"]'); return !!e && e.textContent.includes('{net}');"
        ),
    );
    b.screenshot("host");
    // Volumes are removed with the daemon's scratch directory; the
    // network by the daemon's teardown.
    d.docker_ok(&["volume", "rm", &vol]);
}

#[test]
fn the_browser_harness_drives_chromium() {
    // Apart from the dashboard: when this fails, the browser set-up is
    // broken, not the app.
    let Some(drv) = browser::driver() else { return };
    let page = foreign::Foreign::start();
    let b = Browser::open(&drv);
    b.goto(&format!("{}/", page.origin));
    b.wait_js(
        "the page's title",
        WAIT,
        "return document.title === 'elsewhere';",
    );
    assert_eq!(
        b.js("return [window.innerWidth, window.innerHeight];"),
        serde_json::json!([1280, 800])
    );
}

#[test]
fn odd_paths_get_json_errors_and_the_server_stays_up() {
    // No browser: what a hostile local client might send.
    let d = daemon();
    let ui = Ui::start(&d);
    let t = ui.token.clone();
    let c = ui.cookie();
    let auth = [("X-Berth-Token", t.as_str()), ("Cookie", c.as_str())];
    for path in [
        "/api/engine/../../etc/passwd",
        "/api/engine/%2e%2e/%2e%2e/etc/passwd",
        "/api/engine/containers%2fjson",
        "/api/engine/containers/..%2f..%2fimages/json",
        "/api/engine/./_ping",
        "/assets/../../../../etc/passwd",
        "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/assets/..%2f..%2f..%2fetc/passwd",
        "/api/nothing-here",
        "/api/ws/exec/nonexistent",
    ] {
        let r = ui.req("GET", path, &auth, b"");
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            (400..500).contains(&r.status),
            "{path}: status {} body {body}",
            r.status
        );
        assert!(!body.contains("root:"), "{path} served a host file: {body}");
        assert_refused(&r, path, &[r.status]);
    }
    // A token far too long, and a header flood: refused, not a crash.
    let long = "x".repeat(64 * 1024);
    let r = ui.req("GET", "/api/engine/_ping", &[("X-Berth-Token", &long)], b"");
    assert!((400..500).contains(&r.status), "{}", r.status);
    let r = ui.api("GET", "/_ping", None);
    assert_eq!(r.status, 200, "the server still answers");
    assert_eq!(String::from_utf8_lossy(&r.body), "OK");
}

#[test]
fn the_pages_are_reachable_from_the_keyboard() {
    let Some(drv) = browser::driver() else { return };
    let d = daemon();
    let ui = Ui::start(&d);
    let b = Browser::open(&drv);
    b.goto(&ui.url);
    b.wait_ready();
    // Tab from the top of the page to the images link, then Enter.
    let mut reached = false;
    for _ in 0..30 {
        b.press("\u{E004}");
        let nav = b.js("const a = document.activeElement; return a && a.dataset ? a.dataset.nav || null : null;");
        if nav == Value::String("images".into()) {
            reached = true;
            break;
        }
    }
    assert!(reached, "30 tabs did not reach a[data-nav=images]");
    b.press("\u{E007}");
    b.wait_js(
        "the images page",
        WAIT,
        "return location.hash === '#/images' && document.body.dataset.ready === '1';",
    );
}
