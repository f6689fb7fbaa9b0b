//! Headless Chromium driven over WebDriver: one `chromedriver` shared by the
//! tests of this binary (started on first use, killed with its process
//! group, browsers included, when the last test holding it ends), and one
//! browser session per test with a profile of its own.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use berth_tests::{bin_dir, net, scratch, wait_for};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};

/// The `chromedriver` process (its own process group: the browsers it
/// starts are in it too).
pub struct Driver {
    child: Child,
    pub port: u16,
    /// The browser binary found on `PATH`.
    chromium: PathBuf,
    /// HOME and XDG dirs of chromedriver and its browsers (Chromium writes
    /// its crash database and dconf cache there), removed with it.
    _home: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) with a negative pid signals the process group this
        // test made for chromedriver (process_group(0) below); no memory is
        // touched.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

static DRIVER: Mutex<Weak<Driver>> = Mutex::new(Weak::new());

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.exists())
}

/// The shared chromedriver, or `None` when Chromium is not installed and
/// `CI` is unset (a local run without a browser skips, saying why). In CI
/// a missing browser fails the test: `.ci/run` installs it.
pub fn driver() -> Option<Arc<Driver>> {
    let found = which("chromium").filter(|_| which("chromedriver").is_some());
    let Some(chromium) = found else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromedriver must be installed (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: chromium/chromedriver not installed (CI unset)");
        return None;
    };
    let mut slot = DRIVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = slot.upgrade() {
        return Some(d);
    }
    let port = net::free_port();
    let home = scratch();
    use std::os::unix::process::CommandExt;
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_CACHE_HOME", home.path().join(".cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromedriver starts");
    let d = Arc::new(Driver {
        child,
        port,
        chromium,
        _home: home,
    });
    let ready = wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && net_get_ok(port, "/status")
    });
    assert!(ready, "chromedriver did not answer /status in 20 s");
    *slot = Arc::downgrade(&d);
    Some(d)
}

fn net_get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    // The status line is enough (chromedriver may keep the connection).
    let mut b = [0u8; 12];
    s.read_exact(&mut b).is_ok() && &b[..] == b"HTTP/1.1 200"
}

/// Where the tests' screenshots go (`target/ui-screenshots/`).
pub fn screenshot_dir() -> PathBuf {
    let d = bin_dir()
        .parent()
        .map(|p| p.join("ui-screenshots"))
        .unwrap_or_else(|| PathBuf::from("ui-screenshots"));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// One browser session (a headless Chromium with a profile of its own),
/// closed on drop. Every call is bounded.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    _profile: tempfile::TempDir,
    _driver: Arc<Driver>,
}

const CALL: Duration = Duration::from_secs(30);

impl Browser {
    pub fn open(driver: &Arc<Driver>) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let profile = scratch();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": driver.chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,800",
                    "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-background-networking",
                    "--disable-breakpad", "--disable-crash-reporter",
                    "--enable-precise-memory-info",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{}", driver.port);
        let client = rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(60),
                    fantoccini::ClientBuilder::new(
                        hyper_util::client::legacy::connect::HttpConnector::new(),
                    )
                    .capabilities(caps)
                    .connect(&url),
                )
                .await
            })
            .expect("a browser session within 60 s")
            .expect("a browser session");
        let b = Browser {
            rt,
            client: Some(client),
            _profile: profile,
            _driver: driver.clone(),
        };
        // A 1280×800 viewport (the window's size counts its frame).
        let frame = b.js("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];");
        let dim = |i: usize| frame[i].as_u64().unwrap_or(0) as u32;
        b.run(
            "window size",
            b.c().set_window_size(1280 + dim(0), 800 + dim(1)),
        );
        b
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    fn run<T, E: std::fmt::Debug>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> T {
        match self
            .rt
            .block_on(async { tokio::time::timeout(CALL, f).await })
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("{what}: {e:?}\n{}", self.dump()),
            Err(_) => panic!("{what}: no answer in {CALL:?}"),
        }
    }

    pub fn goto(&self, url: &str) {
        self.run("goto", self.c().goto(url));
    }

    pub fn url(&self) -> String {
        self.run("current url", self.c().current_url()).to_string()
    }

    /// Runs `script` (a function body: `return …`) in the page.
    pub fn js(&self, script: &str) -> Value {
        self.run("execute", self.c().execute(script, vec![]))
    }

    /// Runs `script` with a callback as its last argument and waits for it.
    pub fn js_async(&self, script: &str) -> Value {
        self.run("execute_async", self.c().execute_async(script, vec![]))
    }

    /// Polls `script` (a function body) every 100 ms until it returns a
    /// truthy value, which it returns; panics with the page's state after
    /// `limit`.
    pub fn wait_js(&self, what: &str, limit: Duration, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if start.elapsed() > limit {
                let shot = self.screenshot(&format!("failed-{}", slug(what)));
                panic!(
                    "waited {limit:?} for {what} (last value {v}); screenshot {}\n{}",
                    shot.display(),
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for an element matching `css`.
    pub fn wait_css(&self, css: &str, limit: Duration) {
        let q = serde_json::to_string(css).expect("json");
        self.wait_js(
            &format!("element {css}"),
            limit,
            &format!("return !!document.querySelector({q});"),
        );
    }

    /// Waits for `body[data-ready="1"]`.
    pub fn wait_ready(&self) {
        self.wait_css("body[data-ready=\"1\"]", Duration::from_secs(20));
    }

    /// A real click (WebDriver's element click) on the first match of `css`.
    pub fn click(&self, css: &str) {
        let c = self.c();
        self.run("click", async {
            let e = c.find(Locator::Css(css)).await?;
            e.click().await
        });
    }

    /// Keys typed into the first match of `css` (WebDriver's send keys).
    pub fn type_into(&self, css: &str, keys: &str) {
        let c = self.c();
        self.run("send keys", async {
            let e = c.find(Locator::Css(css)).await?;
            e.send_keys(keys).await
        });
    }

    /// Keys sent to whatever has the focus (WebDriver key codes: Tab is
    /// `\u{E004}`, Enter `\u{E007}`).
    pub fn press(&self, keys: &str) {
        let c = self.c();
        self.run("keys", async {
            let e = c.active_element().await?;
            e.send_keys(keys).await
        });
    }

    /// Resizes the window by (dw, dh) pixels.
    pub fn resize_by(&self, dw: i64, dh: i64) {
        let (w, h) = self.run("window size", self.c().get_window_size());
        let w = (w as i64 + dw).max(200) as u32;
        let h = (h as i64 + dh).max(200) as u32;
        self.run("window size", self.c().set_window_size(w, h));
    }

    /// A Chrome DevTools Protocol command through chromedriver
    /// (`goog/cdp/execute`); its result.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        let c = Cdp {
            cmd: cmd.to_string(),
            params,
        };
        self.run("cdp", self.c().issue_cmd(c))
    }

    /// Saves a PNG of the viewport as `target/ui-screenshots/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let path = screenshot_dir().join(format!("{name}.png"));
        let Some(c) = self.client.as_ref() else {
            return path;
        };
        let shot = self
            .rt
            .block_on(async { tokio::time::timeout(CALL, c.screenshot()).await });
        if let Ok(Ok(png)) = shot {
            let _ = std::fs::write(&path, png);
            eprintln!("screenshot: {}", path.display());
        }
        path
    }

    /// The URL and the start of the page's HTML (for failure messages).
    pub fn dump(&self) -> String {
        let Some(c) = self.client.as_ref() else {
            return String::new();
        };
        let got = self.rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                c.execute(
                    "return location.href + '\\n' + document.documentElement.outerHTML.slice(0, 6000);",
                    vec![],
                ),
            )
            .await
        });
        match got {
            Ok(Ok(Value::String(s))) => format!("---- page ----\n{s}"),
            other => format!("---- page unavailable: {other:?}"),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), c.close()).await });
        }
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect()
}

#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}
