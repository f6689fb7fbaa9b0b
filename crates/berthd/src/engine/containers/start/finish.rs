//! Stage 6 of a start: the networks are joined (in the namespace made
//! meanwhile), the `/etc` files that depend on them are written, and the
//! prepared shim is told to go; attach clients that came early are
//! connected first, so they get the stream from the first byte.

use std::sync::Arc;

use berth_api::shim::Request;

use super::super::{now, shim, Container, Paths, Record};
use super::etc_files::{hosts_file, resolv_conf, write_in_place};
use super::{start_lap, Prepared};
use crate::engine::{containers::Containers, EngineError, Result};

impl Containers {
    /// The rest of a start: network namespace and networks, the files that
    /// depend on them, then the container itself. A failure drops the
    /// prepared shim, which exits without creating anything.
    pub(super) async fn finish_start(
        self: &Arc<Self>,
        c: &Arc<Container>,
        r: &Record,
        p: &Paths,
        prep: Prepared,
    ) -> Result<(i32, String)> {
        let t0 = std::time::Instant::now();
        let lap = |what: &str| start_lap(&r.id, t0, what);
        let Prepared {
            launched,
            netns,
            mode,
            host_net,
            embedded,
            hostname,
            link_hosts,
        } = prep;
        let ready = async {
            if let Some(n) = netns {
                n.ready().await?;
            }
            let mut r = r.clone();
            use crate::engine::networks::Mode;
            match crate::engine::networks::mode_of(&mode) {
                Mode::Networks => {
                    let (eps, ports) = self.attach_networks(&r.id, &r, &p.netns).await?;
                    r.endpoints = eps;
                    r.ports = Some(ports);
                    let mut rec = c.lock();
                    rec.endpoints = r.endpoints.clone();
                    rec.ports = r.ports.clone();
                }
                Mode::None | Mode::Host => {
                    let mut rec = c.lock();
                    crate::engine::networks::join_without_interface(&mut rec.endpoints);
                    r.endpoints = rec.endpoints.clone();
                    self.networks.attach_endpoints(&r.id, &r.name, &r.endpoints);
                }
                Mode::Container(_) => {}
            }
            lap("network");
            if mode.starts_with("container:") {
                // dockerd records the joined container's name as this one's.
                c.lock().config.hostname = Some(hostname.clone());
            }
            self.write_etc(&r, p, &hostname, &link_hosts, host_net, embedded)?;
            Ok::<(), EngineError>(())
        }
        .await;
        if let Err(e) = ready {
            // Gone before a retried start launches a new shim on its socket.
            launched.abandon().await;
            return Err(e);
        }
        let pid = launched.go().await?;

        lap("shim");
        // Attach clients that came before start get the stream from the first byte.
        let pending: Vec<super::super::attach::Pending> =
            std::mem::take(&mut *c.pending.lock().unwrap_or_else(|x| x.into_inner()));
        for pa in pending {
            pa.connect(&p.socket).await;
        }
        let reply = shim::call(&p.socket, &Request::Start).await.map_err(|e| {
            // The process could not start: make sure the shim goes.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            shim::start_error(&e.to_string(), shim::kind_of(&e))
        })?;
        lap("started");
        let started_at = reply.state.and_then(|s| s.started_at).unwrap_or_else(now);
        Ok((pid, started_at))
    }

    /// The container's `/etc/hostname`, `/etc/hosts` and `resolv.conf`
    /// (its own unless it shares another container's), rewritten in place.
    pub(super) fn write_etc(
        &self,
        r: &Record,
        p: &Paths,
        hostname: &str,
        link_hosts: &str,
        host_net: bool,
        embedded: bool,
    ) -> Result<()> {
        write_in_place(&p.hostname, &format!("{hostname}\n"))?;
        write_in_place(
            &p.hosts,
            &hosts_file(
                r,
                &self.own_hosts_lines(r),
                link_hosts,
                self.networks.default_gateway(),
                host_net,
            ),
        )?;
        write_in_place(&p.resolv, &resolv_conf(r, embedded, host_net))
    }
}
