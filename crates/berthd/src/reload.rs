//! `SIGHUP`: reload `daemon.json`, as dockerd does.
//!
//! The file berthd started with is read again and merged with the same
//! command-line flags: an unreadable file, an unknown key, a key also given
//! as a flag or an invalid value refuses the whole reload (logged at
//! error), and the running settings stay. Otherwise the reloadable keys
//! (`engine::settings`) are swapped in at once, the log filter follows
//! `debug`/`log-level`, the result is logged (`Reloaded configuration:
//! {json}`) and a `daemon` `reload` event carries the values, with
//! dockerd's attribute names. As in dockerd, a reloadable key left out of
//! the file keeps its running value (`max-concurrent-*` go back to their
//! default), and a key that cannot be reloaded is not applied (berth warns
//! which). `authorization-plugins` are reloaded too: each must be found.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{read_file_config, DaemonConfig, FileConfig};
use crate::engine::registry::Registries;
use crate::engine::settings::Settings;
use crate::engine::Engine;

type LogHandle = reload::Handle<EnvFilter, Registry>;

static LOG_FILTER: OnceLock<LogHandle> = OnceLock::new();

/// Keeps the handle of the daemon's log filter (set by `daemon::init_logging`).
pub fn set_log_handle(h: LogHandle) {
    let _ = LOG_FILTER.set(h);
}

/// The filter a level stands for (the store's chatter stays at warn).
pub fn log_filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(format!("{level},redb=warn")).map_err(|e| e.to_string())
}

/// Reloads on every `SIGHUP` until the daemon exits: `hup` comes from
/// `hangups`, so one that arrived during start-up is taken now.
pub fn watch(engine: Arc<Engine>, mut hup: tokio::signal::unix::Signal) {
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let e = engine.clone();
            // File reads and the resolver are quick; keep them off the
            // runtime's workers all the same.
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(msg) = reload(&e) {
                    tracing::error!("{msg}");
                }
            })
            .await;
        }
    });
}

/// SIGHUP's handler, installed first thing so that a reload asked for
/// during start-up (systemd's `ExecReload`) does not kill the daemon: it
/// is taken once the engine is open.
pub fn hangups() -> std::io::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
}

/// One reload: everything is checked before anything changes.
pub fn reload(engine: &Engine) -> Result<Settings, String> {
    let cfg = &engine.config;
    tracing::info!(
        "Got signal to reload configuration, reloading from: {}",
        cfg.config_file.display()
    );
    let explicit = cfg.flags.config_file.is_some();
    let file = read_file_config(&cfg.config_file, explicit).map_err(|e| e.to_string())?;
    let merged = DaemonConfig::merge(cfg.flags.clone(), file.clone(), &cfg.config_file)
        .map_err(|e| e.to_string())?;
    let old = engine.live.get();
    let next = plan(&old, &file, &merged);
    let resolver = Registries::prepare_endpoints(
        &next.insecure_registries,
        &next.registry_mirrors,
        cfg.loopback_registries_insecure,
    )
    .map_err(|e| format!("Error reconfiguring the daemon: {e}"))?;
    // As dockerd, every authorization plugin must be there (dockerd exits
    // when one is not; berthd refuses the reload instead).
    for name in &next.authorization_plugins {
        engine
            .plugins
            .get(name, crate::engine::plugins::AUTHZ)
            .map_err(|e| format!("Error validating authorization plugin: {e}"))?;
    }
    let filter = log_filter(next.effective_log_level())
        .map_err(|e| format!("Error reconfiguring the daemon: {e}"))?;
    let fixed = not_reloadable(cfg, &merged);
    if !fixed.is_empty() {
        tracing::warn!(
            "configuration changes that need a restart of berthd were not applied: {}",
            fixed.join(", ")
        );
    }

    // Commit.
    engine.live.set(next.clone());
    engine.registries.commit_endpoints(resolver);
    if let Some(h) = LOG_FILTER.get() {
        if let Err(e) = h.reload(filter) {
            tracing::warn!("changing the log level: {e}");
        }
    }
    let json = serde_json::to_string(&next).unwrap_or_default();
    tracing::info!("Reloaded configuration: {json}");
    let mut attrs = attributes(&next);
    attrs.insert("name".into(), crate::engine::host::hostname());
    engine.events.publish("daemon", "reload", &engine.id, attrs);
    Ok(next)
}

/// The settings after a reload, from the running ones, the file as read
/// and the file merged with the flags (dockerd's `IsValueSet` rules).
pub fn plan(old: &Settings, file: &FileConfig, merged: &DaemonConfig) -> Settings {
    let mut s = old.clone();
    if file.debug.is_some() {
        s.debug = merged.debug;
    }
    if file.log_level.is_some() {
        s.log_level = merged.log_level.clone();
    }
    if file.labels.is_some() {
        s.labels = merged.labels.clone();
    }
    if file.live_restore.is_some() {
        s.live_restore = merged.live_restore;
    }
    if file.insecure_registries.is_some() {
        s.insecure_registries = merged.insecure_registries.clone();
    }
    if file.registry_mirrors.is_some() {
        s.registry_mirrors = merged.registry_mirrors.clone();
    }
    if file.authorization_plugins.is_some() {
        s.authorization_plugins = merged.authorization_plugins.clone();
    }
    if file.default_ulimits.is_some() {
        s.default_ulimits = merged.default_ulimits.clone();
    }
    // Reset to the default (or the flag's value), then the file's.
    s.max_concurrent_downloads = merged.max_concurrent_downloads.max(1);
    s.max_concurrent_uploads = merged.max_concurrent_uploads.max(1);
    s
}

/// The `reload` event's attributes, named and written as dockerd writes
/// them (lists as JSON arrays, booleans and numbers as text).
pub fn attributes(s: &Settings) -> HashMap<String, String> {
    let list = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    HashMap::from([
        ("debug".into(), s.debug.to_string()),
        ("labels".into(), list(&s.labels)),
        ("live-restore".into(), s.live_restore.to_string()),
        ("insecure-registries".into(), list(&s.insecure_registries)),
        ("registry-mirrors".into(), list(&s.registry_mirrors)),
        (
            "max-concurrent-downloads".into(),
            s.max_concurrent_downloads.to_string(),
        ),
        (
            "max-concurrent-uploads".into(),
            s.max_concurrent_uploads.to_string(),
        ),
    ])
}

/// The keys whose new value differs from the running one but that only a
/// restart applies.
pub fn not_reloadable(running: &DaemonConfig, new: &DaemonConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut check = |name: &'static str, changed: bool| {
        if changed {
            v.push(name);
        }
    };
    check("hosts", running.hosts != new.hosts);
    check("data-root", running.data_root != new.data_root);
    check("exec-root", running.exec_root != new.exec_root);
    check("pidfile", running.pidfile != new.pidfile);
    check(
        "default-address-pools",
        running.default_address_pools != new.default_address_pools,
    );
    check(
        "tls",
        running.tls.as_ref().map(|t| (&t.ca, &t.cert, &t.key))
            != new.tls.as_ref().map(|t| (&t.ca, &t.cert, &t.key)),
    );
    check("group", running.socket_group != new.socket_group);
    check("bridge", running.bridge != new.bridge);
    check(
        "firewall-table",
        running.firewall_table != new.firewall_table,
    );
    check("cgroup-parent", running.cgroup_parent != new.cgroup_parent);
    check(
        "storage-driver",
        running.storage_driver != new.storage_driver,
    );
    check("log-driver", running.log_driver != new.log_driver);
    check("log-opts", running.log_opts != new.log_opts);
    check("metrics-addr", running.metrics_addr != new.metrics_addr);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Flags;
    use std::path::Path;

    fn merged(file: &FileConfig, flags: Flags) -> Result<DaemonConfig, String> {
        DaemonConfig::merge(flags, file.clone(), Path::new("/d.json")).map_err(|e| e.to_string())
    }

    fn file(json: &str) -> FileConfig {
        serde_json::from_str(json).unwrap()
    }

    fn running() -> (DaemonConfig, Settings) {
        let c = merged(&FileConfig::default(), Flags::default()).unwrap();
        let s = Settings::of(&c);
        (c, s)
    }

    #[test]
    fn reloadable_keys_apply_and_absent_ones_keep_their_value() {
        let (_, mut old) = running();
        old.labels = vec!["a=1".into()];
        old.max_concurrent_downloads = 9;
        let f = file(
            r#"{"debug":true,"insecure-registries":["reg.test:5000"],"max-concurrent-uploads":2}"#,
        );
        let m = merged(&f, Flags::default()).unwrap();
        let s = plan(&old, &f, &m);
        assert!(s.debug);
        assert_eq!(s.effective_log_level(), "debug");
        assert_eq!(s.labels, vec!["a=1".to_string()], "absent: kept");
        assert_eq!(s.insecure_registries, vec!["reg.test:5000".to_string()]);
        assert_eq!(s.max_concurrent_downloads, 3, "absent: back to default");
        assert_eq!(s.max_concurrent_uploads, 2);
        let a = attributes(&s);
        assert_eq!(a["debug"], "true");
        assert_eq!(a["labels"], r#"["a=1"]"#);
        assert_eq!(a["insecure-registries"], r#"["reg.test:5000"]"#);
        assert_eq!(a["registry-mirrors"], "[]");
        assert_eq!(a["max-concurrent-uploads"], "2");
    }

    #[test]
    fn a_key_also_given_as_a_flag_refuses_the_reload() {
        let f = file(r#"{"labels":["x=1"]}"#);
        let flags = Flags {
            labels: vec!["y=2".into()],
            ..Default::default()
        };
        let e = merged(&f, flags).unwrap_err();
        assert!(
            e.contains("specified both as a flag and in the configuration file: labels"),
            "{e}"
        );
    }

    #[test]
    fn invalid_values_refuse_the_reload() {
        let f = file(r#"{"labels":["a=1","a=2"]}"#);
        let e = merged(&f, Flags::default()).unwrap_err();
        assert!(e.contains("conflict labels for a=2 and a=1"), "{e}");
        let f = file(r#"{"labels":["novalue"]}"#);
        assert!(merged(&f, Flags::default()).is_err());
        let f = file(r#"{"log-level":"loud"}"#);
        assert!(merged(&f, Flags::default()).is_err());
        assert!(Registries::prepare_endpoints(&[], &["ftp://m".into()], true).is_err());
    }

    #[test]
    fn non_reloadable_changes_are_named_not_applied() {
        let (c, old) = running();
        let f = file(
            r#"{"log-driver":"local","bridge":"other0","labels":["k=v"],"authorization-plugins":["z"]}"#,
        );
        let m = merged(&f, Flags::default()).unwrap();
        let fixed = not_reloadable(&c, &m);
        assert_eq!(fixed, vec!["bridge", "log-driver"]);
        let s = plan(&old, &f, &m);
        assert_eq!(s.labels, vec!["k=v".to_string()]);
        assert_eq!(s.authorization_plugins, vec!["z".to_string()]);
    }

    #[test]
    fn the_log_filter_follows_debug_then_log_level() {
        let (_, mut s) = running();
        assert_eq!(s.effective_log_level(), "info");
        s.log_level = "warn".into();
        assert_eq!(s.effective_log_level(), "warn");
        s.log_level = "fatal".into();
        assert_eq!(s.effective_log_level(), "error");
        assert!(log_filter(s.effective_log_level()).is_ok());
    }
}
